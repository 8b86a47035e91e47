"""Per-layer precisions in the cost model: int16x8 rates, QUANTIZE / DEQUANTIZE at every boundary, 2-byte arena."""

from __future__ import annotations

import pytest

from edgekit.costmodel.analysis import analyze_graph
from edgekit.costmodel.int16_rates import LITERT_REFERENCE_16X8_PER_CYCLE, int16x8_cost_model
from edgekit.costmodel.latency import estimate_for_profile
from edgekit.costmodel.precision_map import activation_peak_bytes, precision_graph
from edgekit.costmodel.predict import predicted_costs
from edgekit.ir.graph import Graph, Node, Tensor, Weight
from edgekit.profiles import load_profile


def _dense_chain(widths=(8, 16, 16, 1), names=("a", "b", "c")) -> Graph:
    tensors = [Tensor(f"t{i}", (w,)) for i, w in enumerate(widths)]
    nodes = [Node(n, "Dense", (f"t{i}",), (f"t{i + 1}",), {"units": widths[i + 1]},
                  (Weight(f"{n}/k", (widths[i], widths[i + 1]), "kernel"), Weight(f"{n}/b", (widths[i + 1],), "bias")))
             for i, n in enumerate(names)]
    return Graph.build(tensors, nodes, ["t0"], [f"t{len(names)}"])


def test_conversions_are_inserted_once_per_tensor_and_type_read():
    g = _dense_chain()
    kinds = lambda lp, **kw: [op.kind for op in precision_graph(g, "int8", lp, **kw).ops]
    assert kinds({}) == ["QUANTIZE", "FULLY_CONNECTED", "FULLY_CONNECTED", "FULLY_CONNECTED", "DEQUANTIZE"]
    assert kinds({"b": "int16x8"}) == ["QUANTIZE", "FULLY_CONNECTED", "QUANTIZE", "FULLY_CONNECTED", "QUANTIZE",
                                       "FULLY_CONNECTED", "DEQUANTIZE"]
    # a float first layer reads the float input directly; a float last layer writes the float output
    assert kinds({"a": "float32", "c": "float32"}) == ["FULLY_CONNECTED", "QUANTIZE", "FULLY_CONNECTED",
                                                       "DEQUANTIZE", "FULLY_CONNECTED"]
    # integer I/O: input and output stored at the adjacent layers' types, no conversion at the edges
    assert kinds({"a": "int16x8"}, float_io=False) == ["FULLY_CONNECTED", "QUANTIZE", "FULLY_CONNECTED",
                                                       "FULLY_CONNECTED"]
    assert kinds({}, float_io=False) == ["FULLY_CONNECTED"] * 3
    pg = precision_graph(g, "int8", {"b": "int16x8"})
    assert [pg.precisions[i] for i, op in enumerate(pg.ops) if not op.layer] == ["float32", "int16x8", "int16x8",
                                                                                 "float32"]


def test_a_16x8_layer_and_its_conversions_are_priced_from_the_int8_rates_on_cmsis_nn():
    profile = load_profile("stm32h743")  # conv/dense/elementwise int8 230M/200M/60M, 600 MB/s, 3 us per op
    g = _dense_chain()
    int8 = estimate_for_profile(g, profile, "int8")
    mixed = estimate_for_profile(g, profile, "int8", layer_precisions={"b": "int16x8"})
    assert mixed.latency_ms > int8.latency_ms
    ops = [(kind, layer) for kind, layer, _ in mixed.per_op_ms]
    assert ops == [("QUANTIZE", ""), ("FULLY_CONNECTED", "a"), ("QUANTIZE", ""), ("FULLY_CONNECTED", "b"),
                   ("QUANTIZE", ""), ("FULLY_CONNECTED", "c"), ("DEQUANTIZE", "")]
    ms = [m for _, _, m in mixed.per_op_ms]
    # int8 -> int16 of b's 16 inputs: 16 elements at the int16x8 (= int8) elementwise rate beat 48 B / bandwidth
    assert ms[2] == pytest.approx((16 / 60e6 + 3e-6) * 1e3)
    # b at 16x8: 256 MACs at the dense int8 rate + 16 outputs; 2-byte activations and int64 biases are moved
    # (64 B + 256 B kernel + 128 B bias = 448 B < the compute time)
    assert ms[3] == pytest.approx((256 / 200e6 + 16 / 60e6 + 3e-6) * 1e3)
    assert mixed.per_layer_ms["a"] == pytest.approx(int8.per_layer_ms["a"])
    assert mixed.latency_ms - int8.latency_ms == pytest.approx(ms[2] + ms[4] + ms[3] - int8.per_layer_ms["b"])


def test_int16x8_rates_follow_the_runtimes_kernels():
    h743, _ = int16x8_cost_model(load_profile("stm32h743"))
    assert h743.macs_per_s["conv"]["int16x8"] == h743.macs_per_s["conv"]["int8"]  # CMSIS-NN s16
    esp, basis = int16x8_cost_model(load_profile("esp32-s3"))
    assert esp.macs_per_s["conv"]["int16x8"] == esp.macs_per_s["conv"]["float32"] and "reference" in basis
    host_profile = load_profile("host")
    host, basis = int16x8_cost_model(host_profile)
    assert host.macs_per_s["dense"]["int16x8"] == pytest.approx(LITERT_REFERENCE_16X8_PER_CYCLE["dense"] * 2600e6)
    assert host.macs_per_s["conv"]["int16x8"] < host.macs_per_s["conv"]["float32"] / 20
    assert host_profile.cost_model.macs_per_s["conv"].get("int16x8") is None   # the profile itself is unchanged


def test_int16_activations_take_two_bytes_in_the_arena():
    g = _dense_chain((64, 64, 64), ("a", "b"))
    peak = {name: activation_peak_bytes(precision_graph(g, "int8", lp, float_io=False))
            for name, lp in (("int8", {}), ("int16", {"a": "int16x8", "b": "int16x8"}))}
    assert peak == {"int8": 128, "int16": 256}
    profile = load_profile("stm32h743")
    analysis = analyze_graph(g)
    uniform = predicted_costs(analysis, profile, "int8")
    mixed = predicted_costs(analysis, profile, "int8", layer_precisions={"a": "int16x8"})
    # float I/O: the peak is at the first QUANTIZE, the float input (256 B) next to its copy for a: 64 B at
    # int8, 128 B at int16
    growth = activation_peak_bytes(precision_graph(g, "int8", {"a": "int16x8"}))
    growth -= activation_peak_bytes(precision_graph(g, "int8"))
    assert growth == 64 and mixed["ram_bytes"][0] - uniform["ram_bytes"][0] == growth
    assert mixed["latency_ms"][0] > uniform["latency_ms"][0] and "int16x8" in mixed["latency_ms"][1]
