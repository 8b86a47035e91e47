"""Calibration: the least-squares fit on synthetic timings with known parameters, profile writing, and one
small real timing run through LiteRT (slow)."""

from __future__ import annotations

import math
from types import MappingProxyType

import numpy as np
import pytest
from test_latency import IRNet, conv1d_net, ds_cnn

from edgekit.costmodel.latency import KernelTraits, op_workloads, predict_seconds
from edgekit.costmodel.rate_fitting import FittedCostModel, TimedModel, fit_cost_model, with_precision_copy
from edgekit.errors import BadInputError
from edgekit.profiles import load_profile, profiles_dir
from edgekit.workflows.calibrate import cost_model_yaml, schema_has_per_inference_overhead, write_profile

TRAITS = KernelTraits(channel_multiple=16, int8_input_channel_group=8)
PRECISIONS = ("float32", "int8")


def _rates(**by_class):
    return MappingProxyType({c: MappingProxyType(dict(zip(PRECISIONS, r))) for c, r in by_class.items()})


TRUE = FittedCostModel(
    per_op_overhead_us=0.03,
    memory_bandwidth_mb_s=150e3,
    runtime_overhead_ram_bytes=1 << 20,
    macs_per_s=_rates(conv=(120e9, 480e9), depthwise=(60e9, 70e9), dense=(35e9, 300e9)),
    ops_per_s=_rates(pooling=(15e9, 25e9), elementwise=(15e9, 13e9)),
    per_inference_overhead_us=0.4,
)


def _benchmarks():
    """One-layer IR models like edgekit.workflows.microbenchmarks.MICRO_BENCHMARKS, no TensorFlow needed."""
    graphs = {}
    for hw, cin, cout, k in (
        (32, 16, 16, 3),
        (16, 32, 64, 3),
        (8, 128, 128, 3),
        (32, 3, 16, 3),
        (16, 64, 64, 1),
        (32, 16, 48, 1),
        (8, 256, 256, 1),
    ):
        graphs[f"conv{k}_{hw}_{cin}_{cout}"] = IRNet((hw, hw, cin)).conv(cout, k=k).graph()
    for hw, c in ((48, 16), (16, 64), (8, 256)):
        graphs[f"dw_{hw}_{c}"] = IRNet((hw, hw, c)).depthwise().graph()
    for n_in, n_out in ((64, 64), (512, 256), (1024, 128), (200, 10)):
        graphs[f"dense_{n_in}_{n_out}"] = IRNet((n_in,)).dense(n_out).graph()
    for length, c in ((40, 64), (128, 16)):
        graphs[f"maxpool1d_{length}_{c}"] = IRNet((length, c)).maxpool1d().graph()
    for hw, c in ((8, 128), (16, 64)):
        graphs[f"gap_{hw}_{c}"] = IRNet((hw, hw, c)).gap().graph()
    graphs["sigmoid_4096"] = IRNet((4096,)).add("Activation", (4096,), {"activation": "sigmoid"}).graph()
    graphs["tiny_dense"] = IRNet((4,)).dense(4).graph()
    return graphs


def _timed(model, noise: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for name, graph in _benchmarks().items():
        for precision in PRECISIONS:
            seconds = predict_seconds(op_workloads(graph, precision, TRAITS), model, precision)
            out.append(TimedModel(name, precision, graph, seconds * 1e3 * math.exp(rng.normal(0, noise))))
    return out


def test_fit_recovers_known_parameters_from_a_far_away_start():
    base = load_profile("stm32l4r5").cost_model  # a microcontroller: every rate 1000x too slow
    fit = fit_cost_model(_timed(TRUE, noise=0.01), PRECISIONS, base, TRAITS)
    got = fit.cost_model
    assert fit.rms_log_error < 0.03
    assert got.per_inference_overhead_us == pytest.approx(0.4, rel=0.1)
    for precision in PRECISIONS:
        assert got.macs_per_s["conv"][precision] == pytest.approx(TRUE.macs_per_s["conv"][precision], rel=0.1)
        assert got.macs_per_s["depthwise"][precision] == pytest.approx(
            TRUE.macs_per_s["depthwise"][precision], rel=0.15
        )
    # whole models it never saw are predicted as the true parameters predict them
    for graph in (ds_cnn(32), ds_cnn(64, resolution=48), conv1d_net(32)):
        for precision in PRECISIONS:
            work = op_workloads(graph, precision, TRAITS)
            assert predict_seconds(work, got, precision) == pytest.approx(
                predict_seconds(work, TRUE, precision), rel=0.05
            )


def test_fit_without_a_per_inference_overhead_pins_it_and_fits_worse():
    timed = _timed(TRUE, noise=0.0)
    base = load_profile("host").cost_model
    free = fit_cost_model(timed, PRECISIONS, base, TRAITS)
    pinned = fit_cost_model(timed, PRECISIONS, base, TRAITS, fixed_overhead=False)
    assert pinned.cost_model.per_inference_overhead_us < 1e-3
    assert free.rms_log_error < 0.01 < pinned.rms_log_error
    assert free.share_within(0.10) == 1.0


def test_fit_points_are_the_predictions_of_the_fitted_model():
    timed = _timed(TRUE, noise=0.05, seed=3)
    fit = fit_cost_model(timed, ("int8",), load_profile("host").cost_model, TRAITS)
    assert len(fit.points) == len(timed) // 2 and {p.precision for p in fit.points} == {"int8"}
    point = fit.points[0]
    model = next(t for t in timed if t.name == point.name and t.precision == "int8")
    assert point.measured_ms == model.latency_ms
    assert point.predicted_ms == pytest.approx(
        predict_seconds(op_workloads(model.graph, "int8", TRAITS), fit.cost_model, "int8") * 1e3
    )
    assert fit.share_within(10.0) == 1.0 and 0.0 <= fit.share_within(0.01) < 1.0


def test_float16_rates_copied_from_float32():
    copied = with_precision_copy(TRUE, "float16", "float32")
    assert copied.macs_per_s["conv"]["float16"] == TRUE.macs_per_s["conv"]["float32"]
    assert copied.ops_per_s["pooling"]["float16"] == TRUE.ops_per_s["pooling"]["float32"]
    assert copied.macs_per_s["conv"]["int8"] == TRUE.macs_per_s["conv"]["int8"]


def test_write_profile_replaces_only_the_cost_model(tmp_path):
    base_path = profiles_dir() / "host.yaml"
    model = with_precision_copy(TRUE, "float16", "float32")
    out = write_profile(
        base_path,
        tmp_path / "host.yaml",
        model,
        ("float32", "int8", "float16"),
        "test fit on synthetic timings",
        threads=2,
    )
    profile = load_profile(out)
    cm = profile.cost_model
    assert cm.per_op_overhead_us == pytest.approx(0.03, rel=1e-3)
    assert cm.memory_bandwidth_mb_s == pytest.approx(150e3, rel=1e-3)
    assert cm.macs_per_s["conv"]["int8"] == pytest.approx(480e9, rel=1e-3)
    assert cm.ops_per_s["elementwise"]["float16"] == pytest.approx(15e9, rel=1e-3)
    assert cm.runtime_overhead_ram_bytes == 1 << 20
    assert profile.sources["cost_model"] == "test fit on synthetic timings"
    assert profile.cpu.threads == 2
    before = base_path.read_text().split("\ncost_model:")[0]
    assert out.read_text().split("\ncost_model:")[0] == before.replace("  threads: 1\n", "  threads: 2\n", 1)
    assert (
        "per_inference_overhead_us" in cost_model_yaml(model, PRECISIONS, "x")
    ) == schema_has_per_inference_overhead()


def test_write_profile_leaves_the_file_alone_when_the_result_is_invalid(tmp_path):
    target = tmp_path / "host.yaml"
    target.write_text("keep me\n")
    # host supports float16 too: a cost model without float16 rates does not validate
    with pytest.raises(BadInputError, match="float16"):
        write_profile(profiles_dir() / "host.yaml", target, TRUE, PRECISIONS, "incomplete")
    assert target.read_text() == "keep me\n"
    assert list(tmp_path.iterdir()) == [target]


@pytest.mark.slow
def test_real_timing_run_through_litert():
    from edgekit.workflows.microbenchmarks import MicroBenchmark, measure_micro_benchmarks, time_tflite_models

    small = MicroBenchmark("dense_16_16", "dense", (16,), {"units": 16})
    large = MicroBenchmark("conv3x3_32x32x16_32", "conv2d", (32, 32, 16), {"filters": 32, "kernel_size": 3})
    timed = measure_micro_benchmarks([small, large], ("float32", "int8"), threads=1, rounds=3)
    by_key = {(t.name, t.precision): t for t in timed}
    assert set(by_key) == {(b.name, p) for b in (small, large) for p in ("float32", "int8")}
    for t in timed:
        assert t.timing.min_ms <= t.timing.p10_ms <= t.timing.p50_ms
        assert t.latency_ms == t.timing.p10_ms and t.timing.invokes >= 9
        assert [w.kind for w in op_workloads(t.graph, "float32")] == (
            ["FULLY_CONNECTED"] if t.name == small.name else ["CONV_2D"]
        )
    # 4.7 M MACs take far longer than 256: the conv is at least 10x slower at either precision
    for precision in ("float32", "int8"):
        assert by_key[(large.name, precision)].latency_ms > 10 * by_key[(small.name, precision)].latency_ms
    # int8 convolution is faster than float32 on this host's VNNI kernels
    assert by_key[(large.name, "int8")].latency_ms < by_key[(large.name, "float32")].latency_ms
    assert time_tflite_models({}, rounds=1) == {}
