"""Structured pruning vs tfmot weight sparsity: int8 TFLite size and LiteRT latency, same run; and the
MNIST-1D accuracy check of iterative pruning to 25 % of the teacher's MACs.

    .venv/bin/python benchmarks/prune.py                       # both parts (about 6-8 minutes on 2 cores)
    .venv/bin/python benchmarks/prune.py --models resnet8      # part 1 on chosen models only
    .venv/bin/python benchmarks/prune.py --skip-mnist1d        # part 1 only
    .venv/bin/python benchmarks/prune.py --skip-size           # part 2 only

Part 1. For each model (random weights: size and speed do not depend on the values) at 25 / 50 / 75 %:
  structured  edgekit.prune.prune(model, ratio), L1, global ranking, one-shot: channels removed;
  sparse      tfmot prune_low_magnitude to the same sparsity (one-shot masks), strip_pruning.
Every variant is converted to int8 TFLite (full integer, 100 calibration samples) and timed in LiteRT
(XNNPACK, 1 thread) with all variants of a model interleaved in rounds, so background load hits them
alike; the figure is the median of all single invokes. "gzip" is the file compressed with gzip -9,
which is where unstructured sparsity shows (zeros compress), as in the tfmot guide.
The MNIST-1D teacher's rows also give the int8 model's test accuracy (one-shot, no fine-tuning).

Part 2. Two Conv1D 64-64-64 teachers on MNIST-1D (10,000 samples, seed 42): the edgekit example teacher
(strided convs + BatchNorm, edgekit.examples.mnist1d_teacher) and zoo.conv1d_net (max-pooling, no BN),
both trained 20 epochs. Each is pruned to 25 % of its MACs in 4 steps with 3 epochs of fine-tuning after
each and 4 more at the end, once per criterion (l1, taylor); the test accuracy must stay within 1.5
points of the teacher's (exit code 1 otherwise). A one-shot cut without fine-tuning is shown for contrast.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edgekit.costmodel.layer_costs import analyze
from edgekit.examples import zoo
from edgekit.ir.from_keras import from_keras

RATIOS = (0.25, 0.5, 0.75)
MODELS = ("mnist1d_teacher", "resnet8", "dscnn", "mobilenet_v2")
CALIBRATION = 100
ACCURACY_BUDGET_POINTS = 1.5


@dataclass
class Variant:
    model_name: str
    method: str          # "dense", "structured", "sparse"
    ratio: float
    params: int
    nonzero: int
    macs: int
    tflite: bytes
    accuracy: float | None = None
    latency_ms: float | None = None

    @property
    def size_kb(self) -> float:
        return len(self.tflite) / 1024

    @property
    def gzip_kb(self) -> float:
        return len(gzip.compress(self.tflite, 9)) / 1024


def _nonzero_weights(model) -> int:
    return int(sum(np.count_nonzero(w) for w in model.get_weights()))


@functools.lru_cache(maxsize=1)
def mnist1d_teacher():
    """(model, TeacherRun): the example teacher, trained once per run (20 epochs, seed 42)."""
    from edgekit.examples.mnist1d_teacher import train_teacher
    from edgekit.model_io import load_model

    with tempfile.TemporaryDirectory() as folder:
        run = train_teacher(folder, epochs=20, seed=42, verbose=False)
        return load_model(run.model_path).keras_model, run


def build(name: str):
    if name == "mnist1d_teacher":
        return mnist1d_teacher()[0]
    if name == "mobilenet_v2":
        return zoo.mobilenet_v2(alpha=0.35, resolution=96)
    return zoo.build(name)


def variant(model_name: str, method: str, ratio: float, model, calibration: np.ndarray, test=None) -> Variant:
    from edgekit.export.tflite import convert

    cost = analyze(from_keras(model))
    tflite = convert(model, "int8", calibration, calibration_samples=len(calibration)).tflite_bytes
    accuracy = None
    if test is not None:
        from edgekit.runners.litert import predict

        accuracy = float(np.mean(np.argmax(predict(tflite, test[0]), axis=-1) == test[1]))
    return Variant(model_name, method, ratio, model.count_params(), _nonzero_weights(model), cost.macs, tflite,
                   accuracy)


def time_interleaved(variants: list[Variant], rounds: int, invokes: int) -> None:
    """Median single-invoke latency per variant, all variants interleaved round by round."""
    from ai_edge_litert.interpreter import Interpreter

    interpreters = []
    for v in variants:
        interp = Interpreter(model_content=v.tflite, num_threads=1)
        interp.allocate_tensors()
        detail = interp.get_input_details()[0]
        interp.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
        for _ in range(10):
            interp.invoke()
        interpreters.append(interp)
    samples: list[list[float]] = [[] for _ in variants]
    for _ in range(rounds):
        for i, interp in enumerate(interpreters):
            for _ in range(invokes):
                t0 = time.perf_counter_ns()
                interp.invoke()
                samples[i].append((time.perf_counter_ns() - t0) / 1e6)
    for v, s in zip(variants, samples):
        v.latency_ms = float(np.median(s))


def size_and_latency(model_names, rounds: int, invokes: int) -> list[Variant]:
    from edgekit.examples.datasets import load_mnist1d
    from edgekit.prune import prune
    from edgekit.prune.sparsity import sparsify

    split = load_mnist1d(n_samples=10000, seed=42)
    rows: list[Variant] = []
    for name in model_names:
        began = time.perf_counter()
        model = build(name)
        rng = np.random.default_rng(0)
        if name == "mnist1d_teacher":
            calibration, test = split.x_train[:CALIBRATION], (split.x_test, split.y_test)
        else:
            calibration = rng.standard_normal((CALIBRATION, *model.input_shape[1:])).astype("float32")
            test = None
        variants = [variant(name, "dense", 0.0, model, calibration, test)]
        for ratio in RATIOS:
            variants.append(variant(name, "structured", ratio, prune(model, ratio).model, calibration, test))
            variants.append(variant(name, "sparse", ratio, sparsify(model, ratio).model, calibration, test))
        time_interleaved(variants, rounds, invokes)
        rows.extend(variants)
        print(f"  {name}: {len(variants)} variants converted and timed in {time.perf_counter() - began:.0f} s",
              file=sys.stderr)
    return rows


def print_size_table(rows: list[Variant]) -> None:
    print("\n### Structured pruning vs tfmot unstructured sparsity (int8 TFLite, LiteRT XNNPACK 1 thread)\n")
    print("| model | method | ratio | params | nonzero weights | MACs | TFLite KB | gzip KB | LiteRT us "
          "| speed-up | int8 test acc |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    dense = {}
    for v in rows:
        if v.method == "dense":
            dense[v.model_name] = v
        base = dense[v.model_name]
        acc = f"{v.accuracy:.4f}" if v.accuracy is not None else "-"
        print(f"| {v.model_name} | {v.method} | {v.ratio:.0%} | {v.params:,} | {v.nonzero:,} | {v.macs:,} | "
              f"{v.size_kb:.1f} | {v.gzip_kb:.1f} | {1000 * v.latency_ms:.1f} | {base.latency_ms / v.latency_ms:.2f}x "
              f"| {acc} |")


@functools.lru_cache(maxsize=1)
def mnist1d_plain_teacher():
    """(model, test accuracy): zoo.conv1d_net, Conv1D 64-64-64 + max-pooling, no BatchNorm, 20 epochs."""
    from edgekit._tf import tensorflow, tf_keras
    from edgekit.examples.datasets import load_mnist1d

    tf, keras = tensorflow(), tf_keras()
    split = load_mnist1d(n_samples=10000, seed=42)
    keras.utils.set_random_seed(42)
    tf.config.experimental.enable_op_determinism()
    model = zoo.conv1d_net(width=64, depth=3)
    steps = 20 * int(np.ceil(len(split.x_train) / 64))
    model.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(3e-3, steps)),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(split.x_train, split.y_train, batch_size=64, epochs=20, verbose=0)
    return model, float(model.evaluate(split.x_test, split.y_test, verbose=0)[1])


def mnist1d_accuracy(criteria=("l1", "taylor")) -> list[tuple[str, str, float, float, float, float]]:
    """(teacher, run, MACs share, test accuracy, teacher accuracy, seconds) for each run."""
    from edgekit.examples.datasets import load_mnist1d
    from edgekit.prune import prune

    split = load_mnist1d(n_samples=10000, seed=42)
    bn_teacher, run = mnist1d_teacher()
    teachers = {"Conv1D+BN (edgekit example)": (bn_teacher, run.test_accuracy),
                "Conv1D+maxpool (zoo.conv1d_net)": mnist1d_plain_teacher()}

    def accuracy(model) -> float:
        return float(np.mean(np.argmax(model.predict(split.x_test, verbose=0), axis=-1) == split.y_test))

    results = []
    for label, (teacher, teacher_accuracy) in teachers.items():
        macs = analyze(from_keras(teacher)).macs
        print(f"  {label}: test accuracy {teacher_accuracy:.4f}, {macs:,} MACs", file=sys.stderr)
        began = time.perf_counter()
        one_shot = prune(teacher, target_macs=macs // 4)
        results.append((label, "one-shot l1, no fine-tuning", one_shot.report.macs_ratio, accuracy(one_shot.model),
                        teacher_accuracy, time.perf_counter() - began))
        for criterion in criteria:
            began = time.perf_counter()
            result = prune(teacher, importance=criterion, target_macs=macs // 4,
                           data=(split.x_train, split.y_train), validation_data=(split.x_val, split.y_val),
                           iterative=True, steps=4, epochs=3, final_epochs=4,
                           progress=lambda step: print(f"    {step}", file=sys.stderr))
            results.append((label, f"iterative {criterion}, 4 steps x 3 epochs + 4", result.report.macs_ratio,
                            accuracy(result.model), teacher_accuracy, time.perf_counter() - began))
    return results


def print_accuracy_table(results) -> None:
    print("\n### MNIST-1D (10,000 samples, seed 42): Conv1D 64-64-64 teachers pruned to 25 % of their MACs\n")
    print("| teacher | run | MACs kept | test accuracy | teacher | change (points) | within 1.5 | time s |")
    print("|---|---|---:|---:|---:|---:|---|---:|")
    for teacher_label, label, share, acc, teacher, seconds in results:
        change = 100 * (acc - teacher)
        ok = "yes" if change >= -ACCURACY_BUDGET_POINTS else "no"
        print(f"| {teacher_label} | {label} | {share:.1%} | {acc:.4f} | {teacher:.4f} | {change:+.2f} | {ok} "
              f"| {seconds:.0f} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--rounds", type=int, default=20, help="interleaved timing rounds (default 20)")
    parser.add_argument("--invokes", type=int, default=10, help="invokes per variant per round (default 10)")
    parser.add_argument("--skip-size", action="store_true", help="skip part 1 (size and latency)")
    parser.add_argument("--skip-mnist1d", action="store_true", help="skip part 2 (MNIST-1D accuracy)")
    args = parser.parse_args(argv)
    from edgekit._tf import tf_keras

    tf_keras()
    if not args.skip_size:
        names = [n.strip() for n in args.models.split(",") if n.strip()]
        unknown = set(names) - set(MODELS)
        if unknown:
            parser.error(f"unknown models {sorted(unknown)}; choose from {', '.join(MODELS)}")
        print_size_table(size_and_latency(names, args.rounds, args.invokes))
    if not args.skip_mnist1d:
        results = mnist1d_accuracy()
        print_accuracy_table(results)
        if any(100 * (acc - teacher) < -ACCURACY_BUDGET_POINTS
               for _, label, _, acc, teacher, _ in results if label.startswith("iterative")):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
