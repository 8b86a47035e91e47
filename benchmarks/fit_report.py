"""Settings, row types and Markdown output of benchmarks/fit_vs_baselines.py (how rows are made: its docstring)."""

from __future__ import annotations

import datetime
import os
import platform
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.fair_baselines import QAT_EPOCHS

FLASH_FRACTION = 0.25
SPARSITY = 0.8
TEACHER_EPOCHS = 20
TFMOT_EPOCHS = TEACHER_EPOCHS  # fine-tuning to convergence: the teacher's own budget (benchmarks/fair_baselines.py)
DEFAULT_EPOCHS = 60
ALSO_EPOCHS = ()
SEED = 0   # the teacher's and calibration's seed; the compression rows run once per --seeds entry
ROUNDS = 5            # interleaved host-latency rounds
RUNS_PER_ROUND = 100
GOAL_POINTS = 1.0     # fit within 1 point of the teacher
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
TITLES = {"mnist1d": "MNIST-1D (10,000 samples, seed 42; test 2000)",
          "digits": "scikit-learn digits 8x8 (test 360)",
          "shapes32": "Shapes32 32x32x3, generated (6000 images, seed 0; test 1200)"}


@dataclass
class Row:
    name: str
    accuracy: float | None           # int8, test split, LiteRT
    float_accuracy: float | None     # Keras model, test split
    tflite_bytes: int | None
    arena_bytes: int | None
    host_p50_ms: float | None
    device_ms: float | None
    device_mj: float | None
    ram_bytes: int | None
    ram_by: str
    params: int | None
    over: list[str] = field(default_factory=list)   # budgets broken ("flash 9.1 KiB > 8.8 KiB")
    note: str = ""

    @property
    def fits(self) -> bool | None:
        return None if self.accuracy is None else not self.over


@dataclass
class Table:
    dataset: str
    profile: str
    runtime: str
    limits: dict
    teacher_float: float
    teacher_int8_bytes: int
    rows: list[Row]
    notes: list[str]
    epochs: int
    fit_distillation: str = "-"            # "best 32 of 37 run"
    scratch_best_epoch: int | None = None
    seed: int = SEED


@dataclass
class SweepRow:
    dataset: str
    profile: str
    epochs: int
    teacher_float: float
    fit_accuracy: float | None
    fit_fits: bool | None
    fit_epochs: str          # "best 32 of 37 run"
    scratch_accuracy: float | None
    scratch_best_epoch: int | None


# -------------------------------------------------------------------------------------------- output


def _num(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def markdown(table: Table) -> str:
    from edgekit.budgets import BUDGET_LABELS, format_budget

    budgets = ", ".join(f"{BUDGET_LABELS[k]} {format_budget(k, v)}" for k, v in table.limits.items() if v)
    lines = [f"### {TITLES[table.dataset]} on {table.profile} ({table.runtime})", "",
             (f"Teacher: float test accuracy {100 * table.teacher_float:.2f} %, int8 file "
              f"{table.teacher_int8_bytes:,} B. Budgets: {budgets} (flash = {FLASH_FRACTION:.0%} of the teacher's "
              f"int8 file; the rest are {table.profile}'s defaults). Epochs: fit {table.epochs}, scratch "
              f"{table.epochs}, tfmot fine-tune {TFMOT_EPOCHS}, QAT {QAT_EPOCHS}. Seed {table.seed}."), "",
             ("| row | int8 acc % | float acc % | params | TFLite bytes (% of teacher) | TFLM arena B | RAM B "
              "| host p50 µs | device ms (pred.) | device mJ (pred.) | fits |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in table.rows:
        share = None if r.tflite_bytes is None else r.tflite_bytes / table.teacher_int8_bytes
        size = "-" if r.tflite_bytes is None else f"{r.tflite_bytes:,} ({share:.0%})"
        fits = {None: "-", True: "yes"}.get(r.fits, "no: " + "; ".join(r.over))
        ram = "-" if r.ram_bytes is None else f"{r.ram_bytes:,} ({r.ram_by})"
        lines.append(f"| {r.name} | {_pct(r.accuracy)} | {_pct(r.float_accuracy)} | {_num(r.params, ',')} | {size} | "
                     f"{_num(r.arena_bytes, ',')} | {ram} | {_num(_us(r.host_p50_ms), '.1f')} | "
                     f"{_num(r.device_ms, '.3g')} | {_num(r.device_mj, '.3g')} | {fits} |")
    lines.append("")
    lines += [f"- {r.name}: {r.note}" for r in table.rows if r.note]
    lines += [f"- {n}" for n in table.notes]
    lines.append(f"- **{verdict(table)}**")
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return _num(None if value is None else 100 * value, ".2f")


def _us(ms: float | None) -> float | None:
    return None if ms is None else 1000 * ms


def _gap(value: float | None, reference: float | None) -> str:
    return "-" if value is None or reference is None else f"{100 * (value - reference):+.2f}"


def verdict(table: Table) -> str:
    """The issue's goal: fit fits at 25 % of the teacher's int8 size, within 1 point of the teacher (float and int8).

    The scratch student's loss ("about 3 points" in the issue) is reported beside it, not part of the test.
    """
    by = {r.name: r for r in table.rows}
    teacher, fitted, scratch = by["teacher int8 PTQ (a)"], by["edgekit fit"], by.get("scratch student (c)")
    if fitted.accuracy is None:
        return "goal NOT met: edgekit fit produced no model"
    within = min(fitted.accuracy - table.teacher_float, fitted.accuracy - teacher.accuracy) >= -GOAL_POINTS / 100
    text = (f"fit {'fits' if fitted.fits else 'does NOT fit'} at {fitted.tflite_bytes / table.teacher_int8_bytes:.1%}"
            f" of the teacher's int8 size ({fitted.tflite_bytes / table.limits['flash_bytes']:.0%} of the flash "
            f"budget); {_gap(fitted.accuracy, table.teacher_float)} points vs the float "
            f"teacher, {_gap(fitted.accuracy, teacher.accuracy)} vs its int8 PTQ "
            f"({'within' if within else 'NOT within'} {GOAL_POINTS:g})")
    if scratch is not None and scratch.accuracy is not None:
        text += (f"; the scratch student: {_gap(scratch.accuracy, table.teacher_float)} vs the float teacher, "
                 f"so fit is {_gap(fitted.accuracy, scratch.accuracy)} points vs scratch")
    return f"goal {'met' if fitted.fits and within else 'NOT met'}: {text}"


def summary(tables: list[Table], sweep: list[SweepRow]) -> str:
    lines = ["## Summary", "",
             ("Test accuracy in points against the float teacher; int8 files; flash budget 25 % of the teacher's "
              "int8 file."), "",
             ("| data set | device | epochs | teacher % | fit % (size) | fit - teacher | scratch - teacher | "
              "fit - scratch | tfmot - teacher (teacher's size) | goal |"),
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for t in tables:
        by = {r.name: r for r in t.rows}
        fitted, scratch = by["edgekit fit"], by.get("scratch student (c)")
        tfmot = next(r for r in t.rows if r.name.startswith("tfmot"))
        size = "-" if fitted.tflite_bytes is None else f"{fitted.tflite_bytes / t.teacher_int8_bytes:.0%}"
        scratch_acc = None if scratch is None else scratch.accuracy
        lines.append(f"| {t.dataset} | {t.profile} | {t.epochs} | {_pct(t.teacher_float)} | "
                     f"{_pct(fitted.accuracy)} ({size}) | {_gap(fitted.accuracy, t.teacher_float)} | "
                     f"{_gap(scratch_acc, t.teacher_float)} | {_gap(fitted.accuracy, scratch_acc)} | "
                     f"{_gap(tfmot.accuracy, t.teacher_float)} | "
                     f"{verdict(t).split(':')[0].removeprefix('goal ')} |")
    if sweep:
        lines += ["", "### Epoch budget sensitivity (fit and the scratch student only, int8 test accuracy)", "",
                  ("| data set | device | epochs | fit % | fit distillation epochs | scratch % (best epoch) | "
                   "fit - teacher | scratch - teacher |"),
                  "|---|---|---:|---:|---|---:|---:|---:|"]
        for s in sorted(sweep, key=lambda s: (s.dataset, s.profile, s.epochs)):
            lines.append(f"| {s.dataset} | {s.profile} | {s.epochs} | {_pct(s.fit_accuracy)} | {s.fit_epochs} | "
                         f"{_pct(s.scratch_accuracy)} ({_num(s.scratch_best_epoch, 'd')}) | "
                         f"{_gap(s.fit_accuracy, s.teacher_float)} | {_gap(s.scratch_accuracy, s.teacher_float)} |")
    return "\n".join(lines)


def header(command: str, seconds: float, epochs: int, also: list[int], loads: tuple[str, str],
           seeds: list[int]) -> str:
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    also_text = f"; fit and the scratch student are repeated at {', '.join(map(str, also))} epochs" if also else ""
    return "\n".join([
        "# edgekit fit vs baselines", "",
        f"Produced by `{command}` on {now}, in {seconds / 60:.1f} minutes.", "",
        (f"Machine: 2-core x86 ({platform.machine()}), shared with other jobs (load average {loads[0]} at the "
         f"start, {loads[1]} at the end); Python {platform.python_version()}. "
         "**Host latency is LiteRT on this x86 machine, not device latency**: device latency and energy are "
         "edgekit's cost-model predictions for the profile, not measurements on a phone or a board."), "",
        (f"Epoch budget: {epochs} for fit's distillation and for the scratch student{also_text}; "
         f"{TEACHER_EPOCHS} for the teacher, {TFMOT_EPOCHS} of fine-tuning for tfmot sparsity, {QAT_EPOCHS} for "
         f"tfmot QAT. Seeds {', '.join(map(str, seeds))} for every compression row (the teacher: seed {SEED}); "
         "the seeds summary gives mean [min, max], the per-table figures are one seed's."), "",
        "How each row is made and measured: the docstring of `benchmarks/fit_vs_baselines.py`.", ""])


def write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _load() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "?"
