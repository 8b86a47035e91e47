"""Predicted vs real: TFLite Micro arena (int8) and .tflite file size (every precision) on a model zoo.

    .venv/bin/python benchmarks/ram_model.py                 # convert, measure, print both tables
    .venv/bin/python benchmarks/ram_model.py --save r.json   # keep the measurements
    .venv/bin/python benchmarks/ram_model.py --load r.json   # re-predict from kept measurements

Arena: `edgekit.costmodel.size.estimate_tflm_arena` against the smallest arena TFLite Micro allocates and
invokes the int8 model with (`edgekit.runners.tflm.measure_arena`, bisection to the byte on this
64-bit host). Flash: `estimate_tflite_bytes` against `len(convert(model, precision))`. Biases and BatchNorm
statistics get random values first, as a trained model has (the converter drops all-zero dense
biases). The zoo is the
latency benchmark's (benchmarks/latency_model.py: EVAL_ZOO), none of which the size model was fitted on
except where noted in edgekit/size_model.py. Goal: arena within 5 %.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from latency_model import build_graphs

from edgekit.costmodel.size import estimate_tflite_bytes, estimate_tflm_arena

PRECISIONS = ("float32", "float16", "dynamic_int8", "int8")
ARENA_TOLERANCE = 0.05


def randomize_biases(model, seed: int = 0) -> None:
    """Give biases and BatchNorm statistics trained-looking values: the converter drops an all-zero
    fully-connected bias, which untrained models have and trained ones do not."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        names = [w.name.split("/")[-1].split(":")[0] for w in layer.weights]
        for i, name in enumerate(names):
            if name in ("bias", "beta", "moving_mean"):
                weights[i] = rng.normal(0, 0.1, weights[i].shape).astype(weights[i].dtype)
        layer.set_weights(weights)


def measure(models) -> dict:
    from edgekit.export.tflite import convert
    from edgekit.runners.tflm import measure_arena

    sizes: dict[str, dict[str, int]] = {}
    arenas: dict[str, int] = {}
    arenas_int8_io: dict[str, int] = {}
    for name, model in models.items():
        randomize_biases(model)
        sizes[name] = {}
        for precision in PRECISIONS:
            tflite = convert(model, precision).tflite_bytes
            sizes[name][precision] = len(tflite)
            if precision == "int8":
                t0 = time.perf_counter()
                arenas[name] = measure_arena(tflite).arena_bytes
                arenas_int8_io[name] = measure_arena(
                    convert(model, "int8", int8_io=True).tflite_bytes
                ).arena_bytes
                print(
                    f"  {name}: arena {arenas[name]} B (float I/O), {arenas_int8_io[name]} B (int8 I/O) in "
                    f"{time.perf_counter() - t0:.1f} s",
                    file=sys.stderr,
                )
    return {
        "tflite_bytes": sizes,
        "tflm_arena_bytes": arenas,
        "tflm_arena_bytes_int8_io": arenas_int8_io,
        "measured_at": time.strftime("%Y-%m-%d %H:%M"),
    }


def report(graphs, measured: dict) -> None:
    for key, float_io, label in (
        ("tflm_arena_bytes_int8_io", False, "int8 I/O (edgekit export's TFLM default)"),
        ("tflm_arena_bytes", True, "float I/O"),
    ):
        if key not in measured:
            continue
        print(f"\nTFLite Micro arena (int8 model, {label}), predicted vs measured by bisection\n")
        print("| model | measured B | predicted B | head (activations) B | tail B | error |")
        print("|---|---|---|---|---|---|")
        errors = []
        for name, graph in graphs.items():
            real = measured[key].get(name)
            if real is None:
                continue
            est = estimate_tflm_arena(graph, float_io=float_io)
            err = est.arena_bytes / real - 1
            errors.append(err)
            flag = "" if abs(err) <= ARENA_TOLERANCE else " *"
            print(
                f"| {name} | {real:,} | {est.arena_bytes:,} | {est.head_bytes:,} | {est.tail_bytes:,} | "
                f"{err * 100:+.1f} %{flag} |"
            )
        within = sum(abs(e) <= ARENA_TOLERANCE for e in errors)
        print(
            f"\narena ({label}): {within}/{len(errors)} within +-5 %, median |error| "
            f"{sorted(abs(e) for e in errors)[len(errors) // 2] * 100:.1f} %, max |error| "
            f"{max(abs(e) for e in errors) * 100:.1f} %"
        )

    print("\n.tflite size, predicted vs real conversion\n")
    print("| model | " + " | ".join(f"{p} real / error" for p in PRECISIONS) + " |")
    print("|---|" + "---|" * len(PRECISIONS))
    by_precision: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    for name, graph in graphs.items():
        real = measured["tflite_bytes"].get(name)
        if not real:
            continue
        cells = []
        for precision in PRECISIONS:
            est = estimate_tflite_bytes(graph, precision).flash_bytes
            err = est / real[precision] - 1
            by_precision[precision].append(err)
            cells.append(f"{real[precision]:,} / {err * 100:+.1f} %")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print()
    for precision, errs in by_precision.items():
        if errs:
            print(
                f"{precision}: median |error| {sorted(abs(e) for e in errs)[len(errs) // 2] * 100:.1f} %, "
                f"max {max(abs(e) for e in errs) * 100:.1f} %, within +-5 %: "
                f"{sum(abs(e) <= 0.05 for e in errs)}/{len(errs)}"
            )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", help="write the measurements to this JSON file")
    parser.add_argument("--load", help="use measurements from this JSON file")
    args = parser.parse_args(argv)
    models, graphs = build_graphs()
    if args.load:
        measured = json.loads(Path(args.load).read_text())
    else:
        measured = measure(models)
        if args.save:
            Path(args.save).write_text(json.dumps(measured, indent=1))
    report(graphs, measured)
    return 0


if __name__ == "__main__":
    sys.exit(main())
