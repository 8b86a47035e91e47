"""edgekit fit vs the usual ways to shrink a model, on a phone and a microcontroller, in one run.

    .venv/bin/python benchmarks/fit_vs_baselines.py                    # both data sets, both profiles
    .venv/bin/python benchmarks/fit_vs_baselines.py --datasets digits --profiles pixel7 --no-write

Data: MNIST-1D (10,000 samples, seed 42: 7200 train / 800 val / 2000 test) and scikit-learn's 8x8 digits
(1293 / 144 / 360). Teachers: the recipe of benchmarks/distill.py (Conv 64-64-64 + BN, Flatten, Dense
logits; Adam 3e-3 cosine, batch 64, best validation epoch kept), trained for TEACHER_EPOCHS.

The flash budget of every table is 25 % of the teacher's int8 .tflite (as `convert` writes it); the other
budgets are the profile's defaults. Rows, each one int8 .tflite file:
  teacher int8 PTQ     (a) the teacher, full-integer post-training quantisation
  tfmot 80% + int8     (b) tfmot magnitude pruning to 80 % unstructured sparsity, TFMOT_EPOCHS of
                       fine-tuning (Adam 1e-3, polynomial schedule from 0 %, the tfmot guide's recipe),
                       strip_pruning, int8: same tensors, so the teacher's size
  scratch student      (c) the architecture edgekit fit chose, weights re-initialised (clone_model),
                       trained on hard labels only for the same epoch budget (edgekit's trainer with
                       alpha=1, so optimiser, schedule and best-epoch rule are fit's), int8 PTQ
  edgekit fit          fit(teacher, profile, train, val=val, max_flash=25 %), its <out>/model.tflite
On a TFLite Micro profile fit strips names and metadata from its file (edgekit.export.strip); the
baselines' files are stripped the same way there, so sizes compare compression, not metadata.

Columns: int8 acc = top-1 on the held-out TEST split through LiteRT on the row's file (fit early-stops on
the validation split and never sees test); float acc = the row's Keras model (for fit: its model.h5) before
conversion; TFLite bytes = the file; TFLM arena = edgekit.runners.tflm.measure_arena (bisected minimum);
host p50 = LiteRT, 1 thread, XNNPACK, batch 1, median of ROUNDS interleaved rounds of p50s (this x86
machine, NOT the device); device ms / mJ = edgekit's cost model (`predicted_costs`) for the row's Keras
model at int8; fits = every budget of the profile: flash as the file's size, RAM as TFLM arena + the
profile's runtime overhead (MCU) or predicted (phone), latency and energy predicted.

Epochs: DEFAULT_EPOCHS (60) for fit's distillation and for the scratch student, and the two repeated at
ALSO_EPOCHS (20, the teacher's budget) for a sensitivity table. At 20 epochs the scratch student's best
validation epoch is its last one (still learning); 60 keeps the whole run near 5 minutes on 2 shared
cores, well under the 15 allowed. fit's trainer stops after 5 epochs without a better validation score
(its default patience); the scratch student is given all its epochs (patience = epochs), which can only
help the baseline.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gzip
import hashlib
import os
import platform
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.distill import build_digits_teacher
from benchmarks.distill import train_teacher as train_teacher_best_epoch

FLASH_FRACTION = 0.25
SPARSITY = 0.8
TFMOT_EPOCHS = 2
TFMOT_LEARNING_RATE = 1e-3  # the tfmot guide's: Adam's default, 2 epochs
TEACHER_EPOCHS = 20
DEFAULT_EPOCHS = 60
ALSO_EPOCHS = (20,)
SEED = 0
ROUNDS = 5            # interleaved host-latency rounds
RUNS_PER_ROUND = 100
GOAL_POINTS = 1.0     # fit within 1 point of the teacher
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
TITLES = {"mnist1d": "MNIST-1D (10,000 samples, seed 42; test 2000)",
          "digits": "scikit-learn digits 8x8 (test 360)"}


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


# --------------------------------------------------------------------------------------------- pieces


def load_split(name: str):
    from edgekit.examples.datasets import load_digits_split, load_mnist1d

    return load_mnist1d(n_samples=10000, seed=42) if name == "mnist1d" else load_digits_split(seed=0)


def make_teacher(name: str, split):
    """benchmarks/distill.py's teacher for the data set, trained on hard labels (best validation epoch)."""
    from edgekit._tf import tf_keras
    from edgekit.examples.mnist1d_teacher import build_teacher

    tf_keras().utils.set_random_seed(SEED)
    teacher = build_teacher(width=64, depth=3) if name == "mnist1d" else build_digits_teacher(width=64)
    train_teacher_best_epoch(teacher, split, TEACHER_EPOCHS, seed=SEED)
    return teacher


def int8_file(model, split) -> bytes:
    from edgekit.export.tflite import convert

    return convert(model, "int8", representative_data=np.asarray(split.x_train), seed=SEED).tflite_bytes


def for_runtime(tflite: bytes, runtime: str) -> bytes:
    """What fit ships for the runtime: stripped of names and metadata for TFLite Micro, as converted otherwise."""
    if runtime != "tflm":
        return tflite
    from edgekit.export.strip import strip_for_mcu

    return strip_for_mcu(tflite).tflite_bytes


def accuracy_of(outputs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(outputs, axis=-1) == labels))


def tfmot_sparse(teacher, split):
    from edgekit.prune.sparsity import sparsify

    result = sparsify(teacher, SPARSITY, pattern="unstructured", data=(np.asarray(split.x_train),
                      np.asarray(split.y_train)), epochs=TFMOT_EPOCHS, learning_rate=TFMOT_LEARNING_RATE, seed=SEED)
    return result.model, result.sparsity


def scratch_student(architecture, teacher, split, epochs: int):
    """`architecture` re-initialised and trained on hard labels with fit's trainer, all `epochs` allowed."""
    from edgekit._tf import tf_keras
    from edgekit.distill import distill

    keras = tf_keras()
    keras.utils.set_random_seed(SEED)
    student = keras.models.clone_model(architecture)  # fresh initialisers, no weights shared
    result = distill(teacher, student, split.x_train, split.y_train, split.x_val, split.y_val, alpha=1.0,
                     epochs=epochs, patience=epochs, seed=SEED, verbose=0)
    return result.student, result.best_epoch


def run_fit(teacher, split, profile_name: str, max_flash: int, epochs: int, out_dir: Path, quiet: bool):
    """(FitResult or None, fitted Keras model or None, .tflite bytes or None, failure message)."""
    from edgekit.errors import DoesNotFitError
    from edgekit.model_io import load_model
    from edgekit.workflows.fit import fit

    try:
        with contextlib.redirect_stdout(sys.stderr):  # Keras prints epochs to stdout; keep it for the tables
                result = fit(teacher, profile_name, (np.asarray(split.x_train), np.asarray(split.y_train)),
                         val=(np.asarray(split.x_val), np.asarray(split.y_val)), out_dir=out_dir, epochs=epochs,
                         max_accuracy_drop=0.01, seed=SEED, quiet=quiet, max_flash=max_flash)
    except DoesNotFitError as err:
        return getattr(err, "result", None), None, None, f"fit: does not fit: {err}"
    except ImportError as err:  # a part of fit missing from this build (e.g. MCU export): say so, go on
        return None, None, None, f"fit failed: {err}"
    model = load_model(out_dir / "model.h5").keras_model
    return result, model, (out_dir / "model.tflite").read_bytes(), ""


class Measurer:
    """Accuracy, TFLM arena and predicted costs per row; figures of identical files are measured once."""

    def __init__(self, split, profile, limits: dict) -> None:
        self.split, self.profile, self.limits = split, profile, limits
        self._arena: dict[str, int | str] = {}

    def arena(self, tflite: bytes) -> int | str:
        from edgekit.errors import EdgekitError
        from edgekit.runners.tflm import measure_arena

        key = hashlib.sha256(tflite).hexdigest()
        if key not in self._arena:
            try:
                self._arena[key] = measure_arena(tflite).arena_bytes
            except EdgekitError as exc:  # a row whose file TFLM refuses still gets its other figures
                self._arena[key] = f"TFLM: {' '.join(str(exc).split())[:120]}"
        return self._arena[key]

    def row(self, name: str, model, tflite: bytes, note: str = "") -> Row:
        from edgekit.costmodel.analysis import analyze_graph
        from edgekit.costmodel.predict import predicted_costs
        from edgekit.ir.from_keras import from_keras
        from edgekit.runners.litert import predict

        x_test, y_test = np.asarray(self.split.x_test), np.asarray(self.split.y_test)
        accuracy = accuracy_of(predict(tflite, x_test), y_test)
        float_accuracy = accuracy_of(model.predict(x_test, batch_size=256, verbose=0), y_test)
        costs = predicted_costs(analyze_graph(from_keras(model)), self.profile, "int8")
        arena = self.arena(tflite)
        notes = [note] if note else []
        if isinstance(arena, str):
            notes.append(arena)
            arena = None
        if self.profile.runtime == "tflm":
            overhead = self.profile.cost_model.runtime_overhead_ram_bytes
            ram, ram_by = (arena + overhead if arena is not None else None), "arena + overhead"
        else:
            ram, ram_by = int(costs["ram_bytes"][0]), "predicted"
        row = Row(name, accuracy, float_accuracy, len(tflite), arena, None, costs["latency_ms"][0],
                  costs["energy_mj"][0], ram, ram_by, model.count_params(), note="; ".join(notes))
        row.over = self.over_budget(row)
        return row

    def over_budget(self, row: Row) -> list[str]:
        from edgekit.budgets import BUDGET_LABELS, format_budget

        values = {"flash_bytes": row.tflite_bytes, "ram_bytes": row.ram_bytes, "latency_ms": row.device_ms,
                  "energy_mj": row.device_mj}
        over = []
        for key, limit in self.limits.items():
            if limit is None:
                continue
            value = values[key]
            if value is None:
                over.append(f"{BUDGET_LABELS[key]} unknown")
            elif value > limit:
                over.append(f"{BUDGET_LABELS[key]} {format_budget(key, value)} > {format_budget(key, limit)}")
        return over


def host_latencies(files: list[bytes]) -> list[float]:
    """LiteRT 1-thread p50 per file: the median over ROUNDS rounds, files interleaved within each round."""
    from edgekit.runners.litert import LiteRTRunner

    runner = LiteRTRunner(threads=1, warmup=10, runs=RUNS_PER_ROUND)
    p50s: list[list[float]] = [[] for _ in files]
    for _ in range(ROUNDS):
        for i, tflite in enumerate(files):
            p50s[i].append(runner.run(tflite).latency_ms_p50)
    return [float(np.median(values)) for values in p50s]


# ---------------------------------------------------------------------------------------------- runs


@dataclass
class Baselines:
    """What every table of one data set shares: the data, the teacher, the tfmot model, trained scratch students."""

    name: str
    split: object
    teacher: object
    teacher_float: float
    teacher_int8: bytes
    max_flash: int
    sparse_model: object
    sparsity: float
    sparse_int8: bytes
    scratch: dict = field(default_factory=dict)  # (architecture JSON, epochs) -> (model, best epoch, int8 bytes)


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


def prepare(name: str, say) -> Baselines:
    split = load_split(name)
    start = time.perf_counter()
    teacher = make_teacher(name, split)
    teacher_float = accuracy_of(teacher.predict(np.asarray(split.x_test), verbose=0), np.asarray(split.y_test))
    teacher_int8 = int8_file(teacher, split)
    max_flash = int(FLASH_FRACTION * len(teacher_int8))
    say(f"{name}: teacher trained in {time.perf_counter() - start:.0f} s, test {teacher_float:.4f}, int8 file "
        f"{len(teacher_int8):,} B -> flash budget {max_flash:,} B")
    start = time.perf_counter()
    sparse_model, sparsity = tfmot_sparse(teacher, split)
    say(f"{name}: tfmot {100 * sparsity:.1f}% sparse in {time.perf_counter() - start:.0f} s")
    return Baselines(name, split, teacher, teacher_float, teacher_int8, max_flash, sparse_model, sparsity,
                     int8_file(sparse_model, split))


def scratch_for(base: Baselines, architecture, epochs: int, say) -> tuple:
    """(model, best epoch, int8 bytes) of the scratch student of `architecture`; trained once per epoch budget."""
    key = (architecture.to_json(), epochs)
    if key not in base.scratch:
        start = time.perf_counter()
        model, best_epoch = scratch_student(architecture, base.teacher, base.split, epochs)
        base.scratch[key] = (model, best_epoch, int8_file(model, base.split))
        say(f"{base.name}: scratch student ({epochs} epochs) trained in {time.perf_counter() - start:.0f} s, "
            f"best epoch {best_epoch}")
    return base.scratch[key]


def fit_epochs(result) -> str:
    """Fit's distillation epochs from its compress stage note ("best epoch 32 of 37")."""
    for stage in getattr(result, "stages", ()):
        if stage.stage == "compress" and stage.note.startswith("best epoch"):
            best, run = stage.note.removeprefix("best epoch ").split(" of ")
            return f"best {best} of {run} run"
    return "-"


def profile_table(base: Baselines, profile_name: str, epochs: int, work: Path, quiet: bool, say) -> Table:
    from edgekit.profiles import load_profile

    profile = load_profile(profile_name)
    limits = profile.budgets.with_overrides(flash_bytes=base.max_flash).as_dict()
    start = time.perf_counter()
    result, fitted, fit_bytes, failure = run_fit(base.teacher, base.split, profile_name, base.max_flash, epochs,
                                                 work / f"{base.name}-{profile_name}-e{epochs}", quiet)
    fit_seconds = time.perf_counter() - start
    say(f"{base.name}/{profile_name}: fit in {fit_seconds:.0f} s" + (f" ({failure})" if failure else ""))
    tfmot_name = f"tfmot {100 * SPARSITY:.0f}% + int8 (b)"
    entries = [("teacher int8 PTQ (a)", base.teacher, for_runtime(base.teacher_int8, profile.runtime), ""),
               (tfmot_name, base.sparse_model, for_runtime(base.sparse_int8, profile.runtime),
                f"{100 * base.sparsity:.1f}% zeros in the pruned kernels")]
    best_epoch = None
    if fitted is not None:
        scratch, best_epoch, scratch_int8 = scratch_for(base, fitted, epochs, say)
        entries += [("scratch student (c)", scratch, for_runtime(scratch_int8, profile.runtime),
                     f"best validation epoch {best_epoch} of {epochs} (all {epochs} run)"),
                    ("edgekit fit", fitted, fit_bytes, f"{_fit_note(result)}; distillation {fit_epochs(result)}")]
    measure = Measurer(base.split, profile, limits)
    rows = [measure.row(*entry) for entry in entries]
    for row, p50 in zip(rows, host_latencies([entry[2] for entry in entries])):
        row.host_p50_ms = p50
    notes = [f"fit took {fit_seconds:.0f} s (plan, distillation, quantisation, export, measurement)"]
    if fitted is None:
        rows.append(Row("edgekit fit", None, None, None, None, None, None, None, None, "", None, note=failure))
    if result is not None:
        notes += [f"fit: {n}" for n in result.notes if n.startswith(("post-training", "int8:", "quantis"))]
    notes.append("gzip -9 of the files: " + ", ".join(
        f"{name.split(' (')[0]} {len(gzip.compress(tflite, 9)):,} B" for name, _, tflite, _ in entries))
    say(f"{base.name}/{profile_name}: table done")
    return Table(base.name, profile_name, profile.runtime, limits, base.teacher_float, len(base.teacher_int8), rows,
                 notes, epochs, fit_epochs(result), best_epoch)


def _fit_note(result) -> str:
    chosen = next((c for c in result.candidates if c.chosen), None)
    what = f"{chosen.kind}: {chosen.name}" if chosen is not None else result.status
    return f"{what} ({result.precision}, {result.status})"


def table_sweep_row(table: Table) -> SweepRow:
    by = {r.name: r for r in table.rows}
    fitted, scratch = by["edgekit fit"], by.get("scratch student (c)")
    return SweepRow(table.dataset, table.profile, table.epochs, table.teacher_float, fitted.accuracy, fitted.fits,
                    table.fit_distillation, None if scratch is None else scratch.accuracy, table.scratch_best_epoch)


def sweep_row(base: Baselines, profile_name: str, epochs: int, work: Path, quiet: bool, say) -> SweepRow:
    """Fit's and the scratch student's int8 test accuracy at another epoch budget."""
    from edgekit.runners.litert import predict

    x_test, y_test = np.asarray(base.split.x_test), np.asarray(base.split.y_test)
    result, fitted, fit_bytes, failure = run_fit(base.teacher, base.split, profile_name, base.max_flash, epochs,
                                                 work / f"{base.name}-{profile_name}-e{epochs}", quiet)
    if fitted is None:
        say(f"{base.name}/{profile_name} at {epochs} epochs: {failure}")
        return SweepRow(base.name, profile_name, epochs, base.teacher_float, None, None, failure, None, None)
    _, best_epoch, scratch_int8 = scratch_for(base, fitted, epochs, say)
    say(f"{base.name}/{profile_name}: {epochs}-epoch sensitivity row done")
    return SweepRow(base.name, profile_name, epochs, base.teacher_float,
                    accuracy_of(predict(fit_bytes, x_test), y_test), result.fits, fit_epochs(result),
                    accuracy_of(predict(scratch_int8, x_test), y_test), best_epoch)


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
              f"{table.epochs}, tfmot fine-tune {TFMOT_EPOCHS}."), "",
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


def header(command: str, seconds: float, epochs: int, also: list[int], loads: tuple[str, str]) -> str:
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
         f"{TEACHER_EPOCHS} for the teacher, {TFMOT_EPOCHS} of fine-tuning for tfmot; chosen so the whole run "
         f"stays under 15 minutes on 2 shared cores. Seeds fixed ({SEED}), one seed per row: differences under "
         "about half a point on MNIST-1D (2000 test samples) or one point on digits (360) are within noise."), "",
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="mnist1d,digits", help="comma-separated: mnist1d, digits")
    parser.add_argument("--profiles", default="pixel7,stm32l4r5", help="comma-separated device profiles")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS,
                        help=f"fit's distillation and the scratch student (default {DEFAULT_EPOCHS})")
    parser.add_argument("--also-epochs", default=",".join(map(str, ALSO_EPOCHS)),
                        help="comma-separated epoch budgets to repeat fit and the scratch student at ('' for none)")
    parser.add_argument("--work-dir", help="where fit writes its outputs (default: a temporary directory)")
    parser.add_argument("--no-write", action="store_true", help=f"print only; do not write {RESULTS.name}")
    parser.add_argument("--quiet", action="store_true", help="no per-stage progress from fit")
    args = parser.parse_args(argv)
    command = " ".join(["python benchmarks/fit_vs_baselines.py", *map(shlex.quote, argv or sys.argv[1:])])
    started, load_start = time.perf_counter(), _load()

    def say(message: str) -> None:
        print(f"[{time.perf_counter() - started:5.0f} s] {message}", file=sys.stderr, flush=True)

    profiles = [p.strip() for p in args.profiles.split(",") if p.strip()]
    also = [int(e) for e in args.also_epochs.split(",") if e.strip() and int(e) != args.epochs]
    tables, sweep = [], []
    with tempfile.TemporaryDirectory(prefix="fit_vs_baselines-") as tmp:
        work = Path(args.work_dir) if args.work_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for name in (n.strip() for n in args.datasets.split(",") if n.strip()):
            base = prepare(name, say)
            for profile_name in profiles:
                tables.append(profile_table(base, profile_name, args.epochs, work, args.quiet, say))
                sweep.append(table_sweep_row(tables[-1]))
                sweep += [sweep_row(base, profile_name, e, work, args.quiet, say) for e in also]
    body = summary(tables, sweep if also else []) + "\n\n## Tables\n\n" + "\n\n".join(map(markdown, tables))
    print(body)
    seconds = time.perf_counter() - started
    print(f"\nTotal {seconds:.0f} s.")
    if not args.no_write:
        text = header(command, seconds, args.epochs, also, (load_start, _load())) + "\n" + body + "\n"
        write_atomically(RESULTS, text)
        say(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
