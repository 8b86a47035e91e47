"""What each piece of the distillation recipe adds, on MNIST-1D at edgekit fit's 25 %-size student.

    nice -n 10 .venv/bin/python benchmarks/distill_ablation.py                  # all rows, 3 seeds
    nice -n 10 .venv/bin/python benchmarks/distill_ablation.py --rows baseline,all --seeds 0 --no-write

Data and teacher: benchmarks/fit_vs_baselines.py's (MNIST-1D, 10,000 samples, seed 42: 7200 train / 800 val /
2000 test; Conv 64x3 teacher, 20 epochs). Student: the architecture `edgekit fit` chooses on pixel7 with the
flash budget at 25 % of the teacher's int8 file (fit run once with 1 epoch to read its choice), re-initialised
(clone_model) for every row and seed, except the "fit's start" rows: they start, as fit does, from the
NetAdapt-pruned teacher's inherited weights (the plan's candidate realised before distillation).
Every row is `edgekit.distill.distill` with fit's settings (T 4,
alpha 0.1, Adam 1e-3 cosine, batch 64, patience = epochs, best validation epoch kept) and one change:
  scratch               alpha 1 (hard labels only): the student trained without the teacher
  scratch + augment     the same with the signal augmentation (the fair baseline for the augmented rows)
  baseline              fit's recipe before issue 17: cached teacher logits, no augmentation
  + augment             consistent teaching: signal augmentation (shift, scale, noise), teacher on the same batch
  + mixup               mixup (Beta(MIXUP, MIXUP)) of inputs; the teacher labels the mixed input
  + patient             LONG_EPOCHS instead of EPOCHS (the cosine schedule stretched over them)
  augment + mixup       both
  all                   augment + mixup + patient
  augment + patient     both, without mixup
  fit's start ...       baseline / + augment / + augment + patient, from fit's pruned-teacher weights
Figures: top-1 on the 2000-sample TEST split, float (Keras) and int8 (full-integer PTQ through LiteRT), mean
and range over the seeds; gap recovered = (row - scratch) / (teacher - scratch) on int8 against the float
teacher. Writes benchmarks/distill_ablation.md.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.fit_vs_baselines import (
    FLASH_FRACTION,
    accuracy_of,
    int8_file,
    load_split,
    make_teacher,
    write_atomically,
)

EPOCHS = 60
LONG_EPOCHS = 120
MIXUP = 0.4
OUT = Path(__file__).resolve().parent / "distill_ablation.md"
ROWS = {  # name -> (label, distill keyword arguments, patient)
    "scratch": ("scratch (hard labels)", {"alpha": 1.0}, False),
    "scratch_aug": ("scratch + augment", {"alpha": 1.0, "augment": "auto"}, False),
    "baseline": ("baseline (fit before issue 17)", {}, False),
    "augment": ("+ consistent augmentation", {"augment": "auto"}, False),
    "mixup": ("+ mixup", {"mixup": MIXUP}, False),
    "patient": ("+ patient (--long-epochs)", {}, True),
    "augment_mixup": ("augment + mixup", {"augment": "auto", "mixup": MIXUP}, False),
    "all": ("all (augment + mixup + patient)", {"augment": "auto", "mixup": MIXUP}, True),
    "augment_patient": ("augment + patient, no mixup", {"augment": "auto"}, True),
    "scratch_aug_long": ("scratch + augment, patient", {"alpha": 1.0, "augment": "auto"}, True),
    # fit's own start: the NetAdapt-pruned teacher with its inherited weights (realize(plan.chosen)), not a fresh init
    "pruned_baseline": ("fit's start (pruned teacher weights) + baseline", {}, False),
    "pruned_augment": ("fit's start + consistent augmentation", {"augment": "auto"}, False),
    "pruned_all": ("fit's start + augment, patient", {"augment": "auto"}, True),
    # the loss and optimiser settings, from fit's start with augmentation (issue 17's second round)
    "pruned_t2": ("fit's start + augment, T 2", {"augment": "auto", "temperature": 2.0}, False),
    "pruned_t1": ("fit's start + augment, T 1", {"augment": "auto", "temperature": 1.0}, False),
    "pruned_kd": ("fit's start + augment, alpha 0 (teacher only)", {"augment": "auto", "alpha": 0.0}, False),
    "pruned_lr3": ("fit's start + augment, learning rate 3e-3", {"augment": "auto", "learning_rate": 3e-3}, False),
    "pruned_b32": ("fit's start + augment, batch 32", {"augment": "auto", "batch_size": 32}, False),
    "pruned_hint": ("fit's start + augment + feature hints (weight 1)", {"augment": "auto", "hint_weight": 1.0}, False),
    "pruned_attention": ("fit's start + augment + attention transfer (weight 1)",
                         {"augment": "auto", "attention_weight": 1.0}, False),
    "pruned_mixup_long": ("fit's start + augment + mixup, patient", {"augment": "auto", "mixup": MIXUP},
                          True),
    "scratch_aug_b32": ("scratch + augment, batch 32", {"alpha": 1.0, "augment": "auto", "batch_size": 32}, False),
}


def fit_architecture(teacher, split, work: Path):
    """(architecture, its pruned-teacher weights before distillation): what fit picks at 25 % of the teacher's
    int8 size on pixel7 (fit run with 1 distillation epoch; the start rebuilt from its plan.json)."""
    import contextlib

    from edgekit.model_io import load_model
    from edgekit.workflows.fit import fit

    max_flash = int(FLASH_FRACTION * len(int8_file(teacher, split)))
    with contextlib.redirect_stdout(sys.stderr):
        fit(teacher, "pixel7", (np.asarray(split.x_train), np.asarray(split.y_train)),
            val=(np.asarray(split.x_val), np.asarray(split.y_val)), out_dir=work, epochs=1, max_accuracy_drop=1.0,
            seed=0, quiet=True, max_flash=max_flash)
    from edgekit.channels.groups import build_groups
    from edgekit.ir.from_keras import from_keras
    from edgekit.planner.evaluate import realize
    from edgekit.planner.plan_json import read_plan

    start = realize(teacher, build_groups(from_keras(teacher)), read_plan(work / "plan.json").chosen)
    return load_model(work / "model.h5").keras_model, start.get_weights()


def run_row(architecture, start_weights, teacher, split, row: str, seed: int, epochs: int, long_epochs: int) -> dict:
    from edgekit._tf import tf_keras
    from edgekit.distill import distill
    from edgekit.runners.litert import predict

    keras = tf_keras()
    _, kwargs, patient = ROWS[row]
    n_epochs = long_epochs if patient else epochs
    keras.utils.set_random_seed(seed)
    student = keras.models.clone_model(architecture)
    if row.startswith("pruned_"):
        student.set_weights(start_weights)
    start = time.perf_counter()
    result = distill(teacher, student, split.x_train, split.y_train, split.x_val, split.y_val, epochs=n_epochs,
                     patience=n_epochs, seed=seed, verbose=0, **kwargs)
    seconds = time.perf_counter() - start
    x_test, y_test = np.asarray(split.x_test), np.asarray(split.y_test)
    return {"row": row, "seed": seed, "epochs": n_epochs, "best_epoch": result.best_epoch, "seconds": seconds,
            "float": accuracy_of(student.predict(x_test, batch_size=256, verbose=0), y_test),
            "int8": accuracy_of(predict(int8_file(student, split), x_test), y_test),
            "val": result.val_metrics.get("accuracy")}


def markdown(runs: list[dict], teacher_float: float, teacher_int8: float, params: int, command: str,
             took: str) -> str:
    by_row: dict[str, list[dict]] = {}
    for run in runs:
        by_row.setdefault(run["row"], []).append(run)
    scratch = np.mean([r["int8"] for r in by_row.get("scratch", [])]) if "scratch" in by_row else None
    lines = ["# Distillation recipe ablation (MNIST-1D, fit's 25 %-size student)", "",
             f"Produced by `{command}` {took}, on a 2-core x86 machine shared with other jobs.",
             "How each row is made: the docstring of `benchmarks/distill_ablation.py`.", "",
             (f"Teacher: float {100 * teacher_float:.2f} %, int8 {100 * teacher_int8:.2f} % (test). Student: "
              f"{params:,} parameters. Gap recovered = (row - scratch) / (teacher float - scratch), int8 means."), "",
             ("Seeds differ in what they give (about 1.5 points between two seeds of the same row): the paired "
              "column compares each row with the baseline on the seeds both have."), "",
             ("| row | seeds | epochs | int8 test % mean [min, max] | float test % mean [min, max] | "
              "best epoch (mean) | gap recovered | vs baseline, paired (seeds) | s per run |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    baseline = {r["seed"]: r["int8"] for r in by_row.get("baseline", [])}
    for row, runs_of in by_row.items():
        int8, flt = [r["int8"] for r in runs_of], [r["float"] for r in runs_of]
        gap = "-" if scratch is None or teacher_float == scratch else \
            f"{(np.mean(int8) - scratch) / (teacher_float - scratch):.0%}"
        paired = [100 * (r["int8"] - baseline[r["seed"]]) for r in runs_of if r["seed"] in baseline]
        versus = f"{np.mean(paired):+.2f} ({len(paired)})" if paired and row != "baseline" else "-"
        lines.append(f"| {ROWS[row][0]} | {len(runs_of)} | {runs_of[0]['epochs']} | {_spread(int8)} | "
                     f"{_spread(flt)} | {np.mean([r['best_epoch'] for r in runs_of]):.0f} | {gap} | {versus} | "
                     f"{np.mean([r['seconds'] for r in runs_of]):.0f} |")
    return "\n".join(lines) + "\n"


def _spread(values: list[float]) -> str:
    return f"{100 * np.mean(values):.2f} [{100 * min(values):.2f}, {100 * max(values):.2f}]"


def main(argv: list[str] | None = None) -> int:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of: {', '.join(ROWS)}")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--long-epochs", type=int, default=LONG_EPOCHS)
    parser.add_argument("--log", help="append one JSON line per run here (and skip runs already in it)")
    parser.add_argument("--no-write", action="store_true", help=f"do not write {OUT.name}")
    parser.add_argument("--report-only", action="store_true",
                        help="no training: write the table from --log (runs of several processes merged into it)")
    args = parser.parse_args(argv)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        parser.error(f"--rows: unknown {', '.join(unknown)}; use {', '.join(ROWS)}")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    command = " ".join(["python benchmarks/distill_ablation.py", *map(shlex.quote, argv or sys.argv[1:])])
    started = time.perf_counter()
    say = lambda m: print(f"[{time.perf_counter() - started:5.0f} s] {m}", file=sys.stderr, flush=True)
    log = Path(args.log) if args.log else None
    if args.report_only:
        if log is None or not log.exists():
            parser.error("--report-only needs --log FILE with the runs")
        return report(log, rows, seeds, command, args.no_write)
    from edgekit.runners.litert import predict

    split = load_split("mnist1d")
    teacher = make_teacher("mnist1d", split)
    x_test, y_test = np.asarray(split.x_test), np.asarray(split.y_test)
    teacher_float = accuracy_of(teacher.predict(x_test, verbose=0), y_test)
    teacher_int8 = accuracy_of(predict(int8_file(teacher, split), x_test), y_test)
    saved = log.with_suffix(".architecture.json") if log else None
    weights = saved.with_suffix(".npz") if saved else None
    if saved is not None and saved.exists() and weights.exists():  # resuming: the student of the runs logged
        from edgekit._tf import tf_keras

        architecture = tf_keras().models.model_from_json(saved.read_text())
        with np.load(weights) as stored:
            start_weights = [stored[f"w{i}"] for i in range(len(stored.files))]
    else:
        with tempfile.TemporaryDirectory(prefix="distill_ablation-") as tmp:
            architecture, start_weights = fit_architecture(teacher, split, Path(tmp) / "fit")
        if saved is not None:
            saved.write_text(architecture.to_json())
            np.savez(weights, **{f"w{i}": w for i, w in enumerate(start_weights)})
    say(f"teacher float {teacher_float:.4f}; fit's student {architecture.count_params():,} params")
    if log is not None:
        log.with_suffix(".teacher.json").write_text(json.dumps(
            {"teacher_float": teacher_float, "teacher_int8": teacher_int8, "params": architecture.count_params()}))
    runs = [json.loads(line) for line in log.read_text().splitlines()] if log and log.exists() else []
    for seed in seeds:
        for row in rows:
            if any(r["row"] == row and r["seed"] == seed for r in runs):
                continue
            run = run_row(architecture, start_weights, teacher, split, row, seed, args.epochs, args.long_epochs)
            runs.append(run)
            if log:
                with log.open("a") as fh:
                    fh.write(json.dumps(run) + "\n")
            say(f"{row} seed {seed}: int8 {run['int8']:.4f} float {run['float']:.4f} best epoch "
                f"{run['best_epoch']}/{run['epochs']} in {run['seconds']:.0f} s")
    runs = [r for r in runs if r["row"] in rows and r["seed"] in seeds]
    runs.sort(key=lambda r: list(ROWS).index(r["row"]))
    text = markdown(runs, teacher_float, teacher_int8, architecture.count_params(), command,
                    f"in {(time.perf_counter() - started) / 60:.0f} minutes")
    print(text)
    if not args.no_write:
        write_atomically(OUT, text)
    return 0


def report(log: Path, rows: list[str], seeds: list[int], command: str, no_write: bool) -> int:
    teacher = json.loads(log.with_suffix(".teacher.json").read_text())
    runs = [r for r in map(json.loads, log.read_text().splitlines()) if r["row"] in rows and r["seed"] in seeds]
    runs.sort(key=lambda r: (list(ROWS).index(r["row"]), r["seed"]))
    minutes = sum(r["seconds"] for r in runs) / 60
    text = markdown(runs, teacher["teacher_float"], teacher["teacher_int8"], teacher["params"], command,
                    f"from runs taking {minutes:.0f} minutes of training in all (several processes in parallel)")
    print(text)
    if not no_write:
        write_atomically(OUT, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
