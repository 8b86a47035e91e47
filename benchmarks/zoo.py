"""The keras.applications zoo x edgekit's commands, through the real CLI, written to benchmarks/ZOO.md.

    nice -n 10 .venv/bin/python benchmarks/zoo.py --budget-min 30            # everything that fits in 30 min
    .venv/bin/python benchmarks/zoo.py --models MobileNetV2 --commands inspect,export-int8

Each model is built with weights=None (random weights, no network) at a small input size, saved as a
tf_keras .h5 with a calibration / training set of random images (labels from a fixed rule), and every
command runs as `edgekit ...` in its own subprocess with a timeout. A cell holds the exit code, wall
time and size, or the one-line reason edgekit gave for refusing. A cell whose process died on a
signal or printed a Python traceback is marked CRASH: the zoo's point is that there are none.
Models run in order and cells are written after each command, so a time-boxed run still leaves a
readable partial table (cells not reached say so).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EDGEKIT = [sys.executable, "-m", "edgekit.cli.main"]
# name -> (constructor kwargs); small inputs keep conversion and TFLM fast on a 2-core host.
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
COMMANDS = {
    "inspect": lambda m, d, o: ["inspect", m, "--json"],
    "prune-0.5": lambda m, d, o: ["prune", m, "--ratio", "0.5", "--out", f"{o}/pruned.h5"],
    "export-float32": lambda m, d, o: ["export", m, "-o", f"{o}/f32.tflite", "-p", "float32", "--data", d],
    "export-float16": lambda m, d, o: ["export", m, "-o", f"{o}/f16.tflite", "-p", "float16", "--data", d],
    "export-dynamic_int8": lambda m, d, o: ["export", m, "-o", f"{o}/dyn.tflite", "-p", "dynamic_int8", "--data", d],
    "export-int8": lambda m, d, o: ["export", m, "-o", f"{o}/int8.tflite", "-p", "int8", "--data", d],
    "export-mcu": lambda m, d, o: ["export", m, "-o", f"{o}/mcu/model.tflite", "--device", "stm32h743", "--data", d],
    "plan-phone": lambda m, d, o: ["plan", m, "--device", "pixel7", "--out", f"{o}/plan_phone.json"],
    "plan-mcu": lambda m, d, o: ["plan", m, "--device", "stm32h743", "--out", f"{o}/plan_mcu.json"],
    "distill": lambda m, d, o: ["distill", m, "--data", d, "--out", f"{o}/student.h5", "--width", "0.5",
                                "--epochs", "1"],
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?\s*(?:B|KB|KiB|MB|MiB|GB))\b")


def build(name: str, workdir: Path) -> tuple[str, str, int]:
    """Save the model and its data; (model path, data path, parameter count)."""
    code = f"""
import numpy as np
from edgekit._tf import tf_keras
keras = tf_keras()
keras.utils.set_random_seed(0)
kwargs = {MODELS[name]!r}
model = getattr(keras.applications, {name!r})(weights=None, classes={CLASSES}, **kwargs)
model.save({str(workdir / 'model.h5')!r})
rng = np.random.default_rng(0)
x = rng.uniform(0, 255 if {name!r}.startswith(("EfficientNet", "ConvNeXt", "RegNet")) else 1,
                size=(96, *kwargs["input_shape"])).astype("float32")
y = (x[:, : x.shape[1] // 2].mean((1, 2, 3)) > x[:, x.shape[1] // 2:].mean((1, 2, 3))).astype("int64")
y = y * 2 + (x[..., 0].mean((1, 2)) > x[..., 1].mean((1, 2)))
np.savez({str(workdir / 'data.npz')!r}, x=x, y=y)
print(model.count_params())
"""
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=ROOT,
                          timeout=600)
    if done.returncode != 0:
        raise RuntimeError(_last_line(done.stderr))
    return str(workdir / "model.h5"), str(workdir / "data.npz"), int(done.stdout.split()[-1])


def run_cell(args: list[str], timeout_s: float) -> tuple[str, float]:
    start = time.perf_counter()
    try:
        done = subprocess.run([*EDGEKIT, *args], check=False, capture_output=True, text=True, cwd=ROOT,
                              timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return f"TIMEOUT after {timeout_s:.0f} s", time.perf_counter() - start
    seconds = time.perf_counter() - start
    text = done.stdout + done.stderr
    if done.returncode < 0 or "Traceback (most recent call last)" in text:
        return f"CRASH ({done.returncode}): {_last_line(text)}", seconds
    if done.returncode != 0:
        return f"exit {done.returncode}: {_last_line(done.stderr).removeprefix('edgekit: error: ')}", seconds
    return f"ok{_summary(args, done.stdout)}", seconds


def _summary(args: list[str], stdout: str) -> str:
    out = next((args[i + 1] for i, a in enumerate(args) if a in ("-o", "--out")), None)
    if out and os.path.isfile(out):
        return f", {os.path.getsize(out) / 1024:.0f} KiB"
    if args[0] == "inspect":
        import json

        try:
            report = json.loads(stdout)
            params = report.get("params") or report.get("totals", {}).get("params")
            return f", {params} params" if params is not None else ""
        except ValueError:
            return ""
    return ""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "no output")[:220].replace("|", "/")


def write_markdown(path: Path, rows: dict, commands: list[str], header: str) -> None:
    lines = [header, "", "| model | params | " + " | ".join(commands) + " |",
             "|---|---|" + "---|" * len(commands)]
    for name, row in rows.items():
        cells = [row.get(c, "not run (time box)") for c in commands]
        lines.append(f"| {name} | {row.get('params', '?')} | " + " | ".join(cells) + " |")
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--commands", default=",".join(COMMANDS))
    parser.add_argument("--budget-min", type=float, default=60.0, help="stop starting cells after this")
    parser.add_argument("--timeout-s", type=float, default=900.0, help="per cell")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "ZOO.md"))
    options = parser.parse_args()
    models, commands = options.models.split(","), options.commands.split(",")
    deadline = time.monotonic() + options.budget_min * 60
    rows: dict[str, dict[str, str]] = {name: {} for name in models}
    header = (f"# edgekit x keras.applications (weights=None, {CLASSES} classes)\n\n"
              f"Written by `benchmarks/zoo.py` on {time.strftime('%Y-%m-%d')}, host: 2 shared x86 cores, no GPU, no "
              "device (MCU = TFLM on the host). Each cell: exit, wall seconds, output size or the refusal. "
              "CRASH = a signal or a traceback (none should appear).")
    with tempfile.TemporaryDirectory(prefix="edgekit-zoo-") as tmp:
        for name in models:
            if time.monotonic() > deadline:
                break
            workdir = Path(tmp) / name
            (workdir / "mcu").mkdir(parents=True)
            try:
                model, data, params = build(name, workdir)
                rows[name]["params"] = str(params)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                rows[name] = {c: f"build failed: {exc}" for c in commands}
                continue
            for command in commands:
                if time.monotonic() > deadline:
                    break
                outcome, seconds = run_cell(COMMANDS[command](model, data, str(workdir)), options.timeout_s)
                rows[name][command] = f"{outcome} ({seconds:.0f} s)"
                print(f"{name:18s} {command:20s} {rows[name][command]}", flush=True)
                write_markdown(Path(options.out), rows, commands, header)
    write_markdown(Path(options.out), rows, commands, header)
    return 0


if __name__ == "__main__":
    sys.exit(main())
