"""The keras.applications zoo x edgekit's commands, through the real CLI; results -> benchmarks/ZOO.md.

    nice -n 10 .venv/bin/python benchmarks/zoo.py --formats h5 --budget-min 60
    .venv/bin/python benchmarks/zoo.py --models MobileNetV2 --formats keras --commands inspect,export-int8

Each model is built with weights=None (random weights, no network) at a small input size and
`classifier_activation=None` (a logits head: with random weights a softmax head collapses every
activation to ~1/classes and TensorFlow Lite Micro's int8 SOFTMAX rightly refuses the tiny input scale,
so an MCU cell would measure nothing), saved as a tf_keras `.h5` or a Keras 3 `.keras` file, with a
calibration / training set of random images (labels from a fixed rule). Every command runs as
`edgekit ... --json` in its own subprocess with a timeout. A cell holds the exit code, wall time and a
figure, or the one-line reason edgekit gave for refusing; a process that died on a signal or printed a
Python traceback is CRASH (the zoo's point is that there are none).

Cells are stored in benchmarks/zoo_results/<tag>.json after each command, so several runs (one per
format, re-runs of single rows after a fix) merge into one table; ZOO.md is rendered from all of them
(newest cell wins) by benchmarks/zoo_report.py.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zoo_report import RESULTS_DIR, render

ROOT = Path(__file__).resolve().parents[1]
TREE = ROOT  # where `python -m edgekit...` runs (its cwd comes first on sys.path)
EDGEKIT = [sys.executable, "-m", "edgekit.cli.main"]
# name -> constructor kwargs; small inputs keep conversion and TFLM fast on a 2-core host.
MODELS = {
    "MobileNet": {"input_shape": (96, 96, 3), "alpha": 0.25},
    "MobileNetV2": {"input_shape": (96, 96, 3), "alpha": 0.35},
    "MobileNetV3Small": {"input_shape": (96, 96, 3)},
    "MobileNetV3Large": {"input_shape": (96, 96, 3)},
    "EfficientNetB0": {"input_shape": (96, 96, 3)},
    "EfficientNetV2B0": {"input_shape": (96, 96, 3)},
    "RegNetX002": {"input_shape": (96, 96, 3)},
    "ResNet50": {"input_shape": (64, 64, 3)},
    "ResNet50V2": {"input_shape": (64, 64, 3)},
    "DenseNet121": {"input_shape": (64, 64, 3)},
    "NASNetMobile": {"input_shape": (96, 96, 3)},
    "Xception": {"input_shape": (96, 96, 3)},
    "InceptionV3": {"input_shape": (96, 96, 3)},
    "ConvNeXtTiny": {"input_shape": (64, 64, 3)},
}
CLASSES = 4
# Models that rescale 0..255 pixels themselves (a Rescaling / Normalization layer inside).
RAW_PIXELS = ("EfficientNet", "ConvNeXt", "RegNet")


def _export(precision: str, name: str):
    return lambda m, d, o: ["export", m, "-o", f"{o}/{name}.tflite", "-p", precision, "--data", d, "--json"]


COMMANDS = {
    "inspect": lambda m, d, o: ["inspect", m, "--json"],
    "prune-0.5": lambda m, d, o: ["prune", m, "--ratio", "0.5", "--out", f"{o}/pruned{Path(m).suffix}", "--json"],
    "pruned-litert": lambda m, d, o: ["export", f"{o}/pruned{Path(m).suffix}", "-o", f"{o}/pruned.tflite",
                                      "-p", "float32", "--data", d, "--json"],
    "export-float32": _export("float32", "f32"),
    "export-float16": _export("float16", "f16"),
    "export-dynamic": _export("dynamic_int8", "dyn"),
    "export-int8": _export("int8", "int8"),
    "export-mcu": lambda m, d, o: ["export", m, "-o", f"{o}/mcu/model.tflite", "--device", "stm32h743", "--data", d,
                                   "--json"],
    "plan-pixel7": lambda m, d, o: ["plan", m, "--device", "pixel7", "--out", f"{o}/plan_phone.json", "--json"],
    "plan-mcu": lambda m, d, o: ["plan", m, "--device", "stm32h743", "--out", f"{o}/plan_mcu.json", "--json"],
    "distill": lambda m, d, o: ["distill", m, "--data", d, "--out", f"{o}/student{Path(m).suffix}", "--width", "0.5",
                                "--epochs", "1", "--json", "--quiet"],
}

_BUILD = """
import ast, os, sys
import numpy as np
fmt, name, workdir, classes = sys.argv[1], sys.argv[2], sys.argv[4], int(sys.argv[5])
kwargs = ast.literal_eval(sys.argv[3])
if fmt == "h5":
    from edgekit._tf import tf_keras
    keras = tf_keras()
else:
    import keras  # Keras 3: TF_USE_LEGACY_KERAS is unset in this process
    assert keras.__version__.startswith("3"), keras.__version__
keras.utils.set_random_seed(0)
model = getattr(keras.applications, name)(weights=None, classes=classes, classifier_activation=None, **kwargs)
rng = np.random.default_rng(0)
high = 255 if name.startswith(tuple(sys.argv[6].split(","))) else 1
x = rng.uniform(0, high, size=(96, *kwargs["input_shape"])).astype("float32")
# Random weights shrink activations layer after layer until every logit is ~0 (int8 then rounds them all
# equal). Set each BatchNormalization's moving statistics to its batch statistics on the data (momentum 0,
# one training-mode pass), as training would: activations stay unit-scale and the logits differ.
norms = [layer for layer in model.layers if type(layer).__name__ == "BatchNormalization"]
momenta = [layer.momentum for layer in norms]
for layer in norms:
    layer.momentum = 0.0
model(x[:64], training=True)
for layer, momentum in zip(norms, momenta):
    layer.momentum = momentum
model.save(os.path.join(workdir, "model." + fmt))
y = (x[:, : x.shape[1] // 2].mean((1, 2, 3)) > x[:, x.shape[1] // 2:].mean((1, 2, 3))).astype("int64")
y = y * 2 + (x[..., 0].mean((1, 2)) > x[..., 1].mean((1, 2)))
np.savez(os.path.join(workdir, "data.npz"), x=x, y=y)
print(model.count_params())
"""


def build(name: str, fmt: str, workdir: Path) -> tuple[str, str, int]:
    """Save the model (tf_keras .h5 or Keras 3 .keras) and its data; (model path, data path, params)."""
    env = dict(os.environ)
    env.pop("TF_USE_LEGACY_KERAS", None)
    argv = [fmt, name, repr(MODELS[name]), str(workdir), str(CLASSES), ",".join(RAW_PIXELS)]
    done = subprocess.run([sys.executable, "-c", _BUILD, *argv],
                          check=False, capture_output=True, text=True, cwd=TREE, timeout=600, env=env)
    if done.returncode != 0:
        raise RuntimeError(_last_line(done.stderr))
    return str(workdir / f"model.{fmt}"), str(workdir / "data.npz"), int(done.stdout.split()[-1])


def run_cell(args: list[str], timeout_s: float) -> dict:
    """One CLI run -> {"status": ok|refused|crash|timeout, "exit", "seconds", "detail"}."""
    start, cpu_start = time.perf_counter(), _children_cpu_s()
    try:
        done = subprocess.run([*EDGEKIT, *args], check=False, capture_output=True, text=True, cwd=TREE,
                              timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "exit": None, "seconds": time.perf_counter() - start,
                "detail": f"TIMEOUT after {timeout_s:.0f} s"}
    seconds = time.perf_counter() - start
    text = done.stdout + done.stderr
    cell = {"exit": done.returncode, "seconds": seconds, "cpu_seconds": _children_cpu_s() - cpu_start}
    if done.returncode < 0 or done.returncode not in (0, 2, 3, 130) or "Traceback (most recent call last)" in text:
        return {**cell, "status": "crash", "detail": f"CRASH ({done.returncode}): {_last_line(text)}"}
    if done.returncode != 0:
        return {**cell, "status": "refused",
                "detail": f"exit {done.returncode}: " + _last_line(done.stderr).removeprefix("edgekit: error: ")}
    return {**cell, "status": "ok", "detail": _summary(args, done.stdout)}


def _children_cpu_s() -> float:
    """User + system CPU seconds of every reaped child process (the CLI and the workers it waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _summary(args: list[str], stdout: str) -> str:
    """The figure a cell shows: params, sizes, the check, the plan's choice."""
    try:
        report = json.loads(stdout[stdout.index("{"):])
    except ValueError:
        report = {}
    out = next((args[i + 1] for i, a in enumerate(args) if a in ("-o", "--out")), None)
    size = f"{os.path.getsize(out) / 1024:.0f} KiB" if out and os.path.isfile(out) else "no file"
    if args[0] == "inspect":
        return f"{report.get('params', report.get('totals', {}).get('params', '?'))} params"
    if args[0] == "prune":
        frozen = report.get("frozen") or []
        tail = f", {len(frozen)} frozen (e.g. {frozen[0].get('node')}: {frozen[0].get('reason')})" if frozen else ""
        return (f"{os.path.getsize(args[1]) / 1024:.0f} -> {size}, params {report.get('params_before')} -> "
                f"{report.get('params_after')}{tail}")
    if args[0] == "export":
        check = report.get("check") or {}
        agree = check.get("top1_agreement")
        error = check.get("max_abs_error")
        error = f", max abs error {error:.3g}" if isinstance(error, (int, float)) else ""
        return f"{size}, top-1 agreement {agree:.2f}{error}" if isinstance(agree, (int, float)) else size
    if args[0] == "plan":
        chosen = report.get("chosen") or {}
        return f"{chosen.get('kind', '?')} {chosen.get('precision', '?')}: {str(chosen.get('description', ''))[:60]}"
    if args[0] == "distill":
        student = report.get("student") or {}
        return f"{size}, student params {student.get('params')}"
    return size


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "no output")[:300].replace("|", "/")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--commands", default=",".join(COMMANDS))
    parser.add_argument("--formats", default="h5,keras", help="h5 (tf_keras) and/or keras (Keras 3)")
    parser.add_argument("--budget-min", type=float, default=60.0, help="stop starting cells after this")
    parser.add_argument("--timeout-s", type=float, default=240.0, help="per cell")
    parser.add_argument("--tag", default=None, help="results file name (default: the formats and the time)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "ZOO.md"))
    parser.add_argument("--tree", default=str(ROOT), help="run edgekit from this copy of the repository "
                        "(e.g. a snapshot of the last commit, so edits in progress do not leak into cells)")
    options = parser.parse_args()
    global TREE
    TREE = Path(options.tree)
    models, commands, formats = (options.models.split(","), options.commands.split(","), options.formats.split(","))
    deadline = time.monotonic() + options.budget_min * 60
    RESULTS_DIR.mkdir(exist_ok=True)
    results_path = RESULTS_DIR / f"{options.tag or '-'.join(formats) + time.strftime('-%H%M%S')}.json"
    cells: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="edgekit-zoo-") as tmp:
        for fmt in formats:
            for name in models:
                if time.monotonic() > deadline:
                    break
                workdir = Path(tmp) / f"{name}-{fmt}"
                (workdir / "mcu").mkdir(parents=True)
                base = {"model": name, "format": fmt, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
                try:
                    model, data, params = build(name, fmt, workdir)
                    cells.append({**base, "command": "params", "status": "ok", "detail": str(params),
                                  "model_bytes": os.path.getsize(model)})
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    missing = "has no attribute" in str(exc)  # e.g. Keras 3's applications have no RegNet
                    cells.append({**base, "command": "params", "status": "skipped" if missing else "crash",
                                  "detail": f"not in this Keras: {exc}" if missing else f"build failed: {exc}"})
                    continue
                for command in commands:
                    if time.monotonic() > deadline:
                        break
                    if command == "pruned-litert" and not os.path.exists(f"{workdir}/pruned{Path(model).suffix}"):
                        continue  # prune-0.5 did not finish: nothing to export
                    cell = run_cell(COMMANDS[command](model, data, str(workdir)), options.timeout_s)
                    cells.append({**base, "command": command, **cell})
                    print(f"{name:18s} {fmt:6s} {command:15s} {cell['status']:8s} {cell['seconds']:5.0f} s "
                          f"{cell['detail']}", flush=True)
                    tmp_path = results_path.with_suffix(".tmp")
                    tmp_path.write_text(json.dumps(cells, indent=1))
                    os.replace(tmp_path, results_path)
                    render(Path(options.out), list(MODELS))
    render(Path(options.out), list(MODELS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
