"""`edgekit fit` on every kind of task, to a microcontroller profile (stm32l4r5), with the metric before/after.

    nice -n 10 .venv/bin/python benchmarks/fit_tasks.py [--epochs 15] [--only anomaly,segment,detect,binding]

Cases (data generated here, teachers trained here; see tests/workflows/fit_task_helpers.py):
  anomaly   MLPerf-Tiny-style: a dense autoencoder 128-64-16-64-128 trained on normal machine vibration;
            validation holds 30 % injected faults (impacts, loose part, rub) with y = 0/1: metric anomaly AUC
  segment   a 3-class per-pixel segmenter on 16x16 shapes: metric mean IoU against the labels
  detect    a two-head detector (class softmax + box regression): metric worst-head fidelity to the teacher
  binding   the same anomaly fit at --max-accuracy-drop 0 (expect exit 3 naming accuracy), then 0.05
Flash budgets are a share of each teacher's int8 .tflite; every other budget is the profile's default.
Figures: teacher = the original model in float; final = the delivered int8 .tflite through LiteRT, on the
validation data the fit also selected on (no separate test split here). This host: 2 shared x86 cores; the
MCU figures are the exported file's size and the TFLM arena bisected on this host, not a board.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "workflows"))

from fit_task_helpers import (
    anomaly_teacher,
    detection_teacher,
    machine_signals,
    objects,
    segmentation_teacher,
    shapes,
)

DEVICE = "stm32l4r5"


def _int8_bytes(model, x) -> int:
    from edgekit.export.tflite import convert

    return len(convert(model, "int8", representative_data=x[:100]).tflite_bytes)


def _fit(name, teacher, train, val, share, epochs, max_drop, out):
    from edgekit.workflows.fit import fit
    from edgekit.workflows.fit.pipeline import FitDoesNotFitError

    limit = int(share * _int8_bytes(teacher, train[0] if isinstance(train, tuple) else train))
    start = time.time()
    try:
        r = fit(teacher, DEVICE, train, val=val, out_dir=out, epochs=epochs, max_flash=limit,
                max_accuracy_drop=max_drop, quiet=True)
        status = "fits (exit 0)"
    except FitDoesNotFitError as err:
        r, status = err.result, f"exit 3: {str(err).split(':')[0]}"
    flash = next(b.measured for b in r.budgets if b.budget == "flash_bytes")
    final = "-" if r.final_accuracy is None else f"{r.final_accuracy:.4f}"
    print(f"| {name} | {r.accuracy_metric} | {r.teacher_accuracy:.4f} | {final} | {max_drop:g} | "
          f"{flash if flash is not None else '-'} / {limit} | {len(r.attempts)} | {status} | "
          f"{time.time() - start:.0f} |", flush=True)
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--only", default="anomaly,segment,detect,binding")
    args = parser.parse_args()
    only = set(args.only.split(","))
    root = Path(tempfile.mkdtemp(prefix="edgekit-fit-tasks-"))
    print("| case | metric | teacher | final int8 | allowed drop | flash B (measured / limit) | attempts | "
          "result | s |\n|---|---|---:|---:|---:|---:|---:|---|---:|", flush=True)
    if only & {"anomaly", "binding"}:
        x_normal, _ = machine_signals(1000, 0.0, seed=1)
        x_val, faults = machine_signals(400, 0.3, seed=2)
        ae = anomaly_teacher(x_normal, epochs=30)
        if "anomaly" in only:
            _fit("anomaly autoencoder", ae, x_normal, (x_val, faults), 0.4, args.epochs, 0.02, root / "anomaly")
        if "binding" in only:
            _fit("anomaly, tight budget", ae, x_normal, (x_val, faults), 0.4, args.epochs, 0.0, root / "tight")
            _fit("anomaly, looser budget", ae, x_normal, (x_val, faults), 0.4, args.epochs, 0.05, root / "loose")
    if "segment" in only:
        x, y = shapes(600, seed=3)
        seg = segmentation_teacher(x[:500], y[:500], epochs=10)
        _fit("segmenter", seg, (x[:500], y[:500]), (x[500:], y[500:]), 0.5, args.epochs, 0.05, root / "segment")
    if "detect" in only:
        x, classes, boxes = objects(600, seed=5)
        det = detection_teacher(x[:500], classes[:500], boxes[:500], epochs=15)
        _fit("two-head detector", det, x[:500], x[500:], 0.4, args.epochs, 0.1, root / "detect")
    print(f"outputs and reports: {root}")


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
