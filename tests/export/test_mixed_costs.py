"""The cost model's QUANTIZE / DEQUANTIZE count matches the mixed files ai-edge-quantizer writes, and integer I/O
(edgekit.export.aeq_recipes, integer_io) drops only the edge conversions without changing an output."""

from __future__ import annotations

import numpy as np
import pytest
from test_mixed import upsampling_regressor, wide_range_regressor

MAPS = ({}, {"wide": "int16x8"}, {"wide": "int16x8", "hidden": "int16x8"}, {"up": "float32", "wide": "int16x8"},
        {"wide": "float32", "hidden": "int16x8"}, {"head": "float32"})


def _ops(tflite_bytes: bytes) -> list[tuple[str, str]]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite_bytes)
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    return [(op["op_name"], np.dtype(details[int(op["outputs"][0])]["dtype"]).name)
            for op in interpreter._get_ops_details()]


@pytest.fixture(scope="module")
def upsampler():
    from edgekit.export.layer_outputs import match_tensors
    from edgekit.export.tflite import convert

    model = upsampling_regressor()
    float_bytes = convert(model, "float32").tflite_bytes
    matched, _ = match_tensors(model, float_bytes)
    aliases = {t.layer: t.tensor_name for t in matched if f"/{t.layer}/" not in t.tensor_name.split(";")[0]}
    x = np.random.default_rng(0).standard_normal((200, 8)).astype(np.float32)
    return model, float_bytes, aliases, x


@pytest.mark.parametrize("integer_io", [False, True])
def test_predicted_conversions_are_the_ones_in_the_quantised_file(upsampler, integer_io):
    from edgekit.costmodel.precision_map import precision_graph
    from edgekit.export.aeq_recipes import quantize_per_layer
    from edgekit.ir.from_keras import from_keras

    model, float_bytes, aliases, x = upsampler
    graph = from_keras(model)
    for precisions in MAPS:
        real = _ops(quantize_per_layer(float_bytes, precisions, x, tensor_names=aliases, integer_io=integer_io))
        predicted = precision_graph(graph, "int8", precisions, float_io=not integer_io)
        conversions = [(op.kind, predicted.tensor_storage[op.outputs[0]]) for op in predicted.conversions]
        real_conversions = [(kind, {"int16": "int16x8"}.get(dtype, dtype)) for kind, dtype in real
                            if kind in ("QUANTIZE", "DEQUANTIZE")]
        assert sorted(conversions) == sorted(real_conversions), precisions
        assert len(predicted.ops) == len(real), precisions


def test_integer_io_changes_no_output_on_either_runtime(upsampler):
    from edgekit.export.aeq_recipes import quantize_per_layer
    from edgekit.export.layer_outputs import tflite_intermediates

    _, float_bytes, aliases, x = upsampler
    kinds = {}
    for precisions in ({"wide": "int16x8"}, {"head": "float32"}):
        float_io = quantize_per_layer(float_bytes, precisions, x, tensor_names=aliases)
        integer_io = quantize_per_layer(float_bytes, precisions, x, tensor_names=aliases, integer_io=True)
        kinds[tuple(precisions)] = (_ops(integer_io)[0], _ops(integer_io)[-1])
        for runtime in ("litert", "tflm"):
            _, a = tflite_intermediates(float_io, x[:40], [], runtime)
            _, b = tflite_intermediates(integer_io, x[:40], [], runtime)
            np.testing.assert_array_equal(a, b)
    # the first op reads the int16 input directly; a float head writes the float output directly
    assert kinds[("wide",)][0] == ("FULLY_CONNECTED", "int16") and kinds[("wide",)][1][1] == "int8"
    assert kinds[("head",)][-1] == ("FULLY_CONNECTED", "float32")


def test_choice_prices_the_mixed_model_with_its_conversions():
    """choose_mixed's latency is the cost model's for the chosen map, conversions included."""
    from edgekit.costmodel.latency import estimate_for_profile
    from edgekit.export.mixed import mixed_for_device
    from edgekit.ir.from_keras import from_keras
    from edgekit.profiles import load_profile

    model = wide_range_regressor()
    x = np.random.default_rng(0).standard_normal((400, 8)).astype(np.float32)
    profile = load_profile("stm32h743")
    plan = mixed_for_device(model, x[:350], x[350:], profile, calibration_samples=200)
    assert plan.integer_io and plan.raised and plan.output.relative_rms < plan.int8_output.relative_rms / 5
    expected = estimate_for_profile(from_keras(model), profile, "int8", layer_precisions=plan.raised, float_io=False)
    assert plan.latency_ms == pytest.approx(expected.latency_ms) and plan.latency_ms > plan.int8_latency_ms
    in_file = [kind for kind, _ in _ops(plan.tflite_bytes) if kind in ("QUANTIZE", "DEQUANTIZE")]
    assert sorted(plan.conversions) == sorted(in_file) and plan.conversion_ms > 0
