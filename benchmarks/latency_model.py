"""Predicted vs measured host latency on an evaluation zoo the calibration never saw.

    .venv/bin/python benchmarks/latency_model.py                      # convert, time, predict, print
    .venv/bin/python benchmarks/latency_model.py --save m.json        # also keep the measurements
    .venv/bin/python benchmarks/latency_model.py --load m.json        # re-predict from kept measurements
    .venv/bin/python benchmarks/latency_model.py --profile my.yaml    # predict with another profile
    .venv/bin/python benchmarks/latency_model.py --calibration c.json # also with the full cost model
        # of `edgekit calibrate --json > c.json` (per-inference overhead included)
    .venv/bin/python benchmarks/latency_model.py --same-session       # also time the calibration
        # micro-benchmarks interleaved with the zoo, fit on them alone, predict the zoo (no session drift)

Models (`EVAL_ZOO`): MobileNet V1/V2 at several widths and resolutions, ResNet-8, DS-CNN, Conv1D nets, MLPs
and two small branchy nets, each converted at float32 and int8 (float16 with --precisions). None is a
calibration micro-benchmark (edgekit.workflows.microbenchmarks.MICRO_BENCHMARKS are one-layer models). Each model is
timed
through LiteRT (XNNPACK, the profile's thread count), all models interleaved over many rounds; the figure
is the 10th percentile of its single invokes, as in calibration, and the smallest of `--repeats` timing
passes (default 2); the spread between passes shows how stable the machine was.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edgekit.costmodel.latency import KernelTraits, estimate_for_profile, estimate_latency, op_workloads
from edgekit.profiles import load_profile

# name -> (zoo builder, keyword arguments)
EVAL_ZOO: dict[str, tuple[str, dict]] = {
    "mobilenet_v1_0.25_96": ("mobilenet_v1", {"alpha": 0.25, "resolution": 96}),
    "mobilenet_v1_0.5_128": ("mobilenet_v1", {"alpha": 0.5, "resolution": 128}),
    "mobilenet_v1_1.0_128": ("mobilenet_v1", {"alpha": 1.0, "resolution": 128}),
    "mobilenet_v2_0.35_96": ("mobilenet_v2", {"alpha": 0.35, "resolution": 96}),
    "mobilenet_v2_0.5_128": ("mobilenet_v2", {"alpha": 0.5, "resolution": 128}),
    "mobilenet_v2_1.0_160": ("mobilenet_v2", {"alpha": 1.0, "resolution": 160}),
    "resnet8": ("resnet8", {}),
    "dscnn_64": ("dscnn", {"width": 64}),
    "dscnn_172": ("dscnn", {"width": 172}),
    "conv1d_32": ("conv1d", {"width": 32}),
    "conv1d_64_bn": ("conv1d", {"width": 64, "batchnorm": True}),
    "mlp_64_128_64": ("mlp", {}),
    "autoencoder_640": (
        "dense_autoencoder",
        {"inputs": 640, "hidden": (128, 128, 128, 128, 8, 128, 128, 128, 128)},
    ),
    "xception_like": ("xception_like", {}),
    "concat_se": ("concat_se", {}),
}
TOLERANCE = 0.10
MICRO_PRECISIONS = ("float32", "int8")


def build_graphs():
    from edgekit.examples import zoo
    from edgekit.ir.from_keras import from_keras

    models = {name: zoo.build(builder, **kwargs) for name, (builder, kwargs) in EVAL_ZOO.items()}
    return models, {name: from_keras(m) for name, m in models.items()}


def micro_graphs():
    from edgekit.ir.from_keras import from_keras
    from edgekit.workflows.microbenchmarks import MICRO_BENCHMARKS, build_micro_benchmark

    models = {b.name: build_micro_benchmark(b) for b in MICRO_BENCHMARKS}
    return models, {name: from_keras(m) for name, m in models.items()}


def measure(models, precisions, threads: int, rounds: int, repeats: int, micro_models=None) -> dict:
    """{"latency_ms": {"name:precision": [ms per pass]}, ...}; micro-benchmarks under "micro_latency_ms"."""
    from edgekit.export.tflite import convert
    from edgekit.workflows.microbenchmarks import time_tflite_models

    tflite = {}
    for name, model in models.items():
        for precision in precisions:
            t0 = time.perf_counter()
            tflite[f"{name}:{precision}"] = convert(model, precision).tflite_bytes
            print(f"  converted {name} {precision} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    for name, model in (micro_models or {}).items():
        for precision in MICRO_PRECISIONS:
            tflite[f"micro/{name}:{precision}"] = convert(model, precision).tflite_bytes
    runs: dict[str, list[float]] = {k: [] for k in tflite}
    for r in range(repeats):
        t0 = time.perf_counter()
        for k, t in time_tflite_models(tflite, threads=threads, rounds=rounds, seed=r).items():
            runs[k].append(t.latency_ms)
        print(f"  timing pass {r + 1}/{repeats}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return {
        "latency_ms": {k: v for k, v in runs.items() if not k.startswith("micro/")},
        "micro_latency_ms": {k[len("micro/") :]: v for k, v in runs.items() if k.startswith("micro/")},
        "threads": threads,
        "rounds": rounds,
        "measured_at": time.strftime("%Y-%m-%d %H:%M"),
    }


def same_session_model(measured: dict, profile):
    """Fit the cost model on the micro-benchmarks timed in the same passes as the zoo."""
    from edgekit.costmodel.rate_fitting import TimedModel, fit_cost_model

    _, graphs = micro_graphs()
    timed = [
        TimedModel(key.rsplit(":", 1)[0], key.rsplit(":", 1)[1], graphs[key.rsplit(":", 1)[0]], min(ms))
        for key, ms in measured["micro_latency_ms"].items()
    ]
    fit = fit_cost_model(timed, MICRO_PRECISIONS, profile.cost_model, KernelTraits.from_profile(profile))
    print(
        f"same-session fit on {len(timed)} micro-benchmarks: RMS log error {fit.rms_log_error:.3f}, "
        f"{fit.share_within(TOLERANCE) * 100:.0f} % within +-10 %, per-inference overhead "
        f"{fit.cost_model.per_inference_overhead_us:.3g} us"
    )
    return fit.cost_model


def calibration_model(calibration: dict):
    """The full cost model in `edgekit calibrate --json` output, per-inference overhead included."""
    from edgekit.costmodel.rate_fitting import FittedCostModel

    c = calibration.get("full_fit", calibration)["cost_model"]
    return FittedCostModel(
        per_op_overhead_us=c["per_op_overhead_us"],
        memory_bandwidth_mb_s=c["memory_bandwidth_mb_s"],
        macs_per_s=c["macs_per_s"],
        ops_per_s=c["ops_per_s"],
        runtime_overhead_ram_bytes=c["runtime_overhead_ram_bytes"],
        per_inference_overhead_us=c["per_inference_overhead_us"],
    )


def report(graphs, measured: dict, profile, precisions, extra_models: dict) -> dict[str, dict[str, float]]:
    """Print the table; returns {predictor: {precision: share within +-10 %}}."""
    traits = KernelTraits.from_profile(profile)
    predictors = {f"{profile.name} profile": lambda g, p: estimate_for_profile(g, profile, p).latency_ms}
    for label, model in extra_models.items():
        predictors[label] = _predictor(model, profile.power, traits)
    passes = len(next(iter(measured["latency_ms"].values())))
    print(
        f"\nHost latency, predicted vs measured (LiteRT/XNNPACK, {measured['threads']} thread, p10 of all "
        f"invokes, min over {passes} timing passes, {measured['measured_at']}); profile: {profile.path}\n"
    )
    header = "| model | precision | MACs | ops | measured ms | passes spread |" + "".join(
        f" {label} ms | error |" for label in predictors
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    errors: dict[str, dict[str, list[float]]] = {label: {p: [] for p in precisions} for label in predictors}
    for name, graph in graphs.items():
        macs = sum(w.macs for w in op_workloads(graph, "float32"))
        for precision in precisions:
            runs = measured["latency_ms"].get(f"{name}:{precision}")
            if not runs:
                continue
            meas, spread = min(runs), max(runs) / min(runs) - 1
            row = (
                f"| {name} | {precision} | {macs / 1e6:.2f} M | {len(op_workloads(graph, precision))} | "
                f"{meas:.4f} | {spread * 100:.1f} % |"
            )
            for label, predict in predictors.items():
                pred = predict(graph, precision)
                err = pred / meas - 1
                errors[label][precision].append(err)
                row += f" {pred:.4f} | {err * 100:+.1f} %{'' if abs(err) <= TOLERANCE else ' *'} |"
            print(row)
    shares = {label: _summary(label, errs) for label, errs in errors.items()}
    spreads = sorted(max(r) / min(r) - 1 for r in measured["latency_ms"].values() if len(r) > 1)
    if spreads:
        print(
            f"\nmeasurement stability: between timing passes the same model differed by median "
            f"{_median(spreads) * 100:.1f} %, max {spreads[-1] * 100:.1f} %"
        )
    return shares


def _predictor(cost_model, power, traits):
    return lambda graph, precision: (
        estimate_latency(graph, None, cost_model, power, precision, traits).latency_ms
    )


def _summary(label: str, errors: dict[str, list[float]]) -> dict[str, float]:
    shares = {}
    print(f"\n{label}:")
    for precision, errs in errors.items():
        if errs:
            within = sum(abs(e) <= TOLERANCE for e in errs)
            shares[precision] = within / len(errs)
            print(
                f"  {precision}: {within}/{len(errs)} within +-10 % ({shares[precision] * 100:.0f} %), "
                f"median "
                f"|error| {_median([abs(e) for e in errs]) * 100:.1f} %, max |error| "
                f"{max(abs(e) for e in errs) * 100:.1f} %"
            )
    every = [e for errs in errors.values() for e in errs]
    shares["all"] = sum(abs(e) <= TOLERANCE for e in every) / len(every)
    print(
        f"  all: {sum(abs(e) <= TOLERANCE for e in every)}/{len(every)} within +-10 % "
        f"({shares['all'] * 100:.0f} %), RMS log error "
        f"{math.sqrt(sum(math.log1p(e) ** 2 for e in every) / len(every)):.3f}"
    )
    return shares


def _median(values):
    values = sorted(values)
    return values[len(values) // 2] if values else math.nan


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--profile", default="host", help="device profile (name or YAML path) to predict with"
    )
    parser.add_argument("--precisions", default="float32,int8")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--save", help="write the measurements to this JSON file")
    parser.add_argument("--load", help="use measurements from this JSON file instead of timing")
    parser.add_argument(
        "--calibration", help="`edgekit calibrate --json` output: also predict with its cost model"
    )
    parser.add_argument(
        "--same-session",
        action="store_true",
        help="also time the micro-benchmarks with the zoo and predict from a fit on them",
    )
    args = parser.parse_args(argv)
    precisions = tuple(args.precisions.split(","))
    profile = load_profile(args.profile)
    models, graphs = build_graphs()
    if args.load:
        measured = json.loads(Path(args.load).read_text())
    else:
        micro = micro_graphs()[0] if args.same_session else None
        measured = measure(models, precisions, profile.cpu.threads, args.rounds, args.repeats, micro)
        if args.save:
            Path(args.save).write_text(json.dumps(measured, indent=1))
    extra = {}
    if args.calibration:
        extra["calibration"] = calibration_model(json.loads(Path(args.calibration).read_text()))
    if measured.get("micro_latency_ms"):
        extra["same-session fit"] = same_session_model(measured, profile)
    report(graphs, measured, profile, precisions, extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
