"""Distillation vs training from scratch at about 25 % of the teacher's MACs, float and int8, in one run.

    .venv/bin/python benchmarks/distill.py                          # both data sets, 20 epochs, 3 seeds
    .venv/bin/python benchmarks/distill.py --seeds 1                # one seed per student row (a third of the time)
    .venv/bin/python benchmarks/distill.py --datasets mnist1d --epochs 10 --json out.json

Data: MNIST-1D (10,000 samples, seed 42: 7200 train / 800 val / 2000 test) and scikit-learn's 8x8
digits (1293 / 144 / 360). Teachers: the example 64-wide three-layer Conv1D (edgekit.examples) and the
same recipe in Conv2D for the digits (Conv 64-64-64 + BN, strides 1-2-2, Flatten, Dense logits).

Rows, every one trained for the same number of epochs (no early stopping; the best validation epoch's
weights are kept for every row, teacher included), Adam at LEARNING_RATE with cosine decay, batch 64:
  teacher                  hard labels
  <student> scratch        the student trained on hard labels alone (distill with alpha=1: the KD term is off)
  <student> KD             soft targets: alpha * CE + (1 - alpha) * T^2 * KL, T and alpha from the flags
  <student> KD+features    the same plus FitNets hint and attention-transfer losses on auto-paired layers
  pruned teacher + KD      the teacher structurally pruned (L1, one shot) to at most 25 % of its MACs,
                           then distilled from the original teacher
  w16 scratch / KD         a smaller student (16 channels, about 7 % of the MACs), where the capacity gap
                           is larger
Students: "wN" is the teacher rebuilt with N channels per layer, N the largest that keeps MACs <= 25 %
(fresh weights: the same student for scratch and KD); "DS-CNN" is edgekit's depthwise-separable
family sized by student_for to <= 25 %. Accuracies are on the test split; int8 is full-integer TFLite
(calibrated on 200 training samples) run in LiteRT. With --seeds N > 1 the student rows show the mean
over seeds (min-max in brackets); the teacher is trained once.

Runtime with the defaults (20 epochs, 3 seeds, 19 trainings and 20 int8 conversions per seed pass):
915 s measured on 2 cores shared with two other training jobs (load average 4-6); --seeds 1 took 256 s
at load average 2-3. The epoch budget is 20 (the example teacher's) so that 3 seeds fit in ~15 minutes.
T=4 and alpha=0.1 were the best of (4, 0.1), (2, 0.5), (8, 0.1) on MNIST-1D *validation* accuracy for both
25 % students; the digits' 144 validation samples are too few to tune on.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edgekit.costmodel.layer_costs import analyze
from edgekit.ir.from_keras import from_keras
from edgekit.workflows.distill import FEATURE_ATTENTION_WEIGHT, FEATURE_HINT_WEIGHT

MAC_FRACTION = 0.25
LEARNING_RATE = 3e-3  # the example teacher's; used for every row
BATCH_SIZE = 64
GOAL_POINTS = 1.0  # the distilled student should be within 1 point of the teacher
KINDS = ("float_accuracy", "int8_accuracy")


@dataclass
class Row:
    name: str
    macs: int
    params: int
    float_accuracy: list[float] = field(default_factory=list)
    int8_accuracy: list[float] = field(default_factory=list)
    best_epochs: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    note: str = ""


@dataclass
class DatasetRun:
    dataset: str
    epochs: int
    teacher_macs: int
    rows: list[Row]
    notes: list[str]


def build_digits_teacher(width: int = 64, depth: int = 3, input_shape=(8, 8, 1), num_classes: int = 10):
    """The MNIST-1D teacher's recipe in 2D: depth x (Conv2D(width) -> BN -> ReLU), Flatten, Dense logits."""
    from edgekit._tf import tf_keras

    keras = tf_keras()
    layers = keras.layers
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for i in range(1, depth + 1):
        x = layers.Conv2D(width, 3, strides=1 if i == 1 else 2, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, layers.Dense(num_classes, name="logits")(x), name=f"digits_teacher_w{width}")


def macs_of(model) -> int:
    return int(analyze(from_keras(model)).macs)


def train_teacher(model, split, epochs: int, seed: int) -> int:
    """Hard-label training with the students' optimiser and schedule; keeps the best validation epoch."""
    from edgekit._tf import tf_keras

    keras = tf_keras()
    keras.utils.set_random_seed(seed)
    steps = epochs * int(np.ceil(len(split.x_train) / BATCH_SIZE))
    model.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(LEARNING_RATE, steps, alpha=0.05)),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])

    class KeepBest(keras.callbacks.Callback):
        # The students' rule (edgekit.distill): best validation accuracy, ties broken by lower validation loss.
        def __init__(self):
            super().__init__()
            self.best, self.best_epoch, self.weights = (-1.0, 0.0), 0, None

        def on_epoch_end(self, epoch, logs=None):
            key = (logs["val_accuracy"], -logs["val_loss"])
            if key > self.best:
                self.best, self.best_epoch, self.weights = key, epoch + 1, model.get_weights()

    keep = KeepBest()
    model.fit(split.x_train, split.y_train, batch_size=BATCH_SIZE, epochs=epochs, shuffle=True, verbose=0,
              validation_data=(split.x_val, split.y_val), callbacks=[keep])
    model.set_weights(keep.weights)
    return keep.best_epoch


def test_accuracies(model, split) -> tuple[float, float]:
    """(float Keras, int8 TFLite in LiteRT) top-1 accuracy on the test split."""
    from edgekit.export.tflite import convert
    from edgekit.runners.litert import predict

    float_logits = model.predict(split.x_test, batch_size=256, verbose=0)
    int8 = convert(model, "int8", representative_data=np.asarray(split.x_train))
    int8_logits = predict(int8.tflite_bytes, np.asarray(split.x_test))
    return (float(np.mean(np.argmax(float_logits, 1) == split.y_test)),
            float(np.mean(np.argmax(int8_logits, 1) == split.y_test)))


def widest_shrunk_width(teacher, teacher_width: int, target_macs: int) -> int:
    """The most channels per layer whose shrunk teacher stays within target_macs (MACs grow with width)."""
    from edgekit.distill.students import shrink_teacher

    for channels in range(teacher_width, 0, -1):
        if macs_of(shrink_teacher(teacher, channels / teacher_width, inherit_weights=False)) <= target_macs:
            return channels
    raise SystemExit(f"no shrunk teacher within {target_macs} MACs")


def run_dataset(name: str, epochs: int, seeds: int, temperature: float, alpha: float, say) -> DatasetRun:
    from edgekit._tf import tf_keras
    from edgekit.distill import distill
    from edgekit.distill.students import shrink_teacher, student_for
    from edgekit.examples.datasets import load_digits_split, load_mnist1d
    from edgekit.examples.mnist1d_teacher import build_teacher
    from edgekit.prune import prune

    keras = tf_keras()
    split = load_mnist1d(n_samples=10000, seed=42) if name == "mnist1d" else load_digits_split(seed=0)
    keras.utils.set_random_seed(0)
    teacher = build_teacher(width=64, depth=3) if name == "mnist1d" else build_digits_teacher(width=64)
    start = time.perf_counter()
    teacher_best = train_teacher(teacher, split, epochs, seed=0)
    teacher_row = Row("teacher", macs_of(teacher), teacher.count_params(), best_epochs=[teacher_best],
                      seconds=[time.perf_counter() - start])
    _measure(teacher_row, teacher, split)
    say(f"{name}: teacher {teacher_row.float_accuracy[0]:.4f} / int8 {teacher_row.int8_accuracy[0]:.4f}")
    target = int(teacher_row.macs * MAC_FRACTION)
    channels = widest_shrunk_width(teacher, 64, target)

    def shrunk():
        return shrink_teacher(teacher, channels / 64, inherit_weights=False)

    def small():  # the reference student: 16 channels, about 7 % of the MACs
        return shrink_teacher(teacher, 16 / 64, inherit_weights=False)

    def dscnn():
        return student_for(teacher, "dscnn", target_macs=target)

    def pruned():
        return prune(teacher, target_macs=target, importance="l1").model

    kd = {"temperature": temperature, "alpha": alpha}
    features = {**kd, "hint_weight": FEATURE_HINT_WEIGHT, "attention_weight": FEATURE_ATTENTION_WEIGHT}
    plans = [(f"w{channels} scratch", shrunk, {"alpha": 1.0}), (f"w{channels} KD", shrunk, kd),
             (f"w{channels} KD+features", shrunk, features), ("DS-CNN scratch", dscnn, {"alpha": 1.0}),
             ("DS-CNN KD", dscnn, kd), ("DS-CNN KD+features", dscnn, features),
             ("pruned teacher + KD", pruned, kd),
             ("w16 scratch", small, {"alpha": 1.0}), ("w16 KD", small, kd)]
    rows, notes = [teacher_row], []
    for label, make, loss in plans:
        row = None
        for seed in range(seeds):
            keras.utils.set_random_seed(seed + 1)
            student = make()
            if row is None:
                row = Row(label, macs_of(student), student.count_params())
            if label.startswith("pruned") and seed == 0:
                pruned_float, pruned_int8 = test_accuracies(student, split)
                notes.append(f"pruned teacher before distillation: {pruned_float:.2%} float / {pruned_int8:.2%} int8 "
                             "(one-shot L1, no training)")
            start = time.perf_counter()
            result = distill(teacher, student, split.x_train, split.y_train, split.x_val, split.y_val,
                             epochs=epochs, patience=epochs, batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE,
                             seed=seed + 1, verbose=0, **loss)
            row.seconds.append(time.perf_counter() - start)
            row.best_epochs.append(result.best_epoch)
            if result.hint_pairs and seed == 0:
                row.note = "pairs " + ", ".join(f"{s}<-{t}" for s, t in result.hint_pairs)
            _measure(row, student, split)
            say(f"{name}: {label} seed {seed + 1}: {row.float_accuracy[-1]:.4f} / int8 {row.int8_accuracy[-1]:.4f} "
                f"({row.seconds[-1]:.0f} s)")
        rows.append(row)
    return DatasetRun(name, epochs, teacher_row.macs, rows, notes)


def _measure(row: Row, model, split) -> None:
    float_accuracy, int8_accuracy = test_accuracies(model, split)
    row.float_accuracy.append(float_accuracy)
    row.int8_accuracy.append(int8_accuracy)


def _cell(values: list[float]) -> str:
    mean = f"{100 * np.mean(values):.2f}"
    return mean if len(values) == 1 else f"{mean} [{100 * min(values):.2f}-{100 * max(values):.2f}]"


def markdown(run: DatasetRun, temperature: float, alpha: float) -> str:
    title = {"mnist1d": "MNIST-1D (10,000 samples, seed 42; test 2000)",
             "digits": "scikit-learn digits 8x8 (test 360)"}[run.dataset]
    lines = [f"### {title}", "",
             (f"Every row {run.epochs} epochs; KD T={temperature:g}, alpha={alpha:g}; features: hint "
              f"{FEATURE_HINT_WEIGHT:g} + attention {FEATURE_ATTENTION_WEIGHT:g}."), "",
             "| row | MACs (% of teacher) | params | float acc % | int8 acc % | epochs (best) | train s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in run.rows:
        best = "/".join(str(b) for b in row.best_epochs)
        lines.append(f"| {row.name} | {row.macs:,} ({row.macs / run.teacher_macs:.1%}) | {row.params:,} | "
                     f"{_cell(row.float_accuracy)} | {_cell(row.int8_accuracy)} | {run.epochs} ({best}) | "
                     f"{np.mean(row.seconds):.0f} |")
    lines.append("")
    lines += [f"- {note}" for note in run.notes]
    lines += [f"- {row.name}: {row.note}" for row in run.rows if row.note]
    lines += verdicts(run)
    return "\n".join(lines)


def verdicts(run: DatasetRun) -> list[str]:
    """The goal, checked: a distilled student <= 25 % MACs within 1 point of the teacher and above scratch."""
    teacher = run.rows[0]
    by_name = {row.name: row for row in run.rows}
    out = []
    for row in run.rows[1:]:
        if "KD" not in row.name or row.macs > MAC_FRACTION * run.teacher_macs:
            continue
        scratch = by_name.get(row.name.split(" ")[0] + " scratch")
        gaps = [100 * (np.mean(getattr(row, k)) - np.mean(getattr(teacher, k))) for k in KINDS]
        met = all(gap >= -GOAL_POINTS for gap in gaps)
        text = (f"{row.name}: {gaps[0]:+.2f} float / {gaps[1]:+.2f} int8 points vs the teacher "
                f"({'within' if met else 'NOT within'} {GOAL_POINTS:g} point)")
        if scratch is not None:
            ahead = [100 * (np.mean(getattr(row, k)) - np.mean(getattr(scratch, k))) for k in KINDS]
            text += f"; {ahead[0]:+.2f} float / {ahead[1]:+.2f} int8 vs {scratch.name}"
        out.append(f"- {text}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="mnist1d,digits", help="comma-separated: mnist1d, digits")
    parser.add_argument("--epochs", type=int, default=20, help="epoch budget of every row (default 20)")
    parser.add_argument("--seeds", type=int, default=3, help="student seeds per row (default 3)")
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"[{time.perf_counter() - started:5.0f} s] {message}", file=sys.stderr, flush=True)

    runs = [run_dataset(name.strip(), args.epochs, args.seeds, args.temperature, args.alpha, say)
            for name in args.datasets.split(",") if name.strip()]
    for run in runs:
        print(markdown(run, args.temperature, args.alpha))
        print()
    print(f"Total {time.perf_counter() - started:.0f} s, {args.epochs} epochs per row, {args.seeds} seed(s), "
          f"learning rate {LEARNING_RATE:g} (cosine), batch {BATCH_SIZE}.")
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(run) for run in runs], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
