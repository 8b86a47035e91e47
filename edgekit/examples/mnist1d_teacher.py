"""The example teacher: a 64-wide, three-layer Conv1D classifier for MNIST-1D, trained offline.

    python -m edgekit.examples.mnist1d_teacher --out build/demo [--epochs 20] [--seed 42]

writes `teacher.h5` (tf_keras h5, no optimizer state) and `train.npz`, `val.npz`, `test.npz`
(keys `x`, `y`) to the output folder and prints the test accuracy. On 2 shared CPU cores the
whole command takes 15-30 s (10-22 s of it training, depending on load) and reaches 98.35 % test
accuracy with the defaults (MNIST-1D, 10000 samples: 7200 train / 800 val / 2000 test; 32 074
parameters).

The model outputs logits, not probabilities: distillation divides logits by a temperature before
the softmax, top-1 is the same either way, and an int8 softmax output would quantise the
probabilities to steps of 1/256.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.examples.datasets import Split, load_mnist1d
from edgekit.model_io import save_model

DEFAULT_EPOCHS = 20
DEFAULT_BATCH_SIZE = 64
DEFAULT_LEARNING_RATE = 3e-3


@dataclass(frozen=True)
class TeacherRun:
    """What `train_teacher` wrote and how well the model did."""

    model_path: Path
    data_paths: tuple[Path, Path, Path]  # train.npz, val.npz, test.npz
    val_accuracy: float
    test_accuracy: float
    train_seconds: float
    epochs: int
    seed: int


def build_teacher(width: int = 64, depth: int = 3, input_length: int = 40, num_classes: int = 10):
    """A tf_keras Conv1D classifier: `depth` x (Conv1D(width) -> BatchNorm -> ReLU), Flatten, Dense logits.

    The first convolution (kernel 5, stride 1) keeps the full length; each later one (kernel 3,
    stride 2) halves it, so with the defaults the feature maps are 40, 20 and 10 steps long and the
    head sees 10 x 64 features. Flatten rather than global pooling: MNIST-1D digits are told apart
    partly by where features occur. BatchNorm speeds training and folds into the convolutions on
    conversion (and gives BN-gamma importance something to read).

    >>> model = build_teacher()
    >>> model.output_shape
    (None, 10)
    """
    from edgekit._tf import tf_keras

    keras = tf_keras()
    layers = keras.layers
    if width < 1 or depth < 1:
        raise ValueError(f"build_teacher: width={width} and depth={depth} must both be >= 1")
    inputs = keras.Input((input_length, 1), name="signal")
    x = inputs
    for i in range(1, depth + 1):
        kernel, stride = (5, 1) if i == 1 else (3, 2)
        x = layers.Conv1D(width, kernel, strides=stride, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    logits = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name=f"mnist1d_teacher_w{width}_d{depth}")


def train_teacher(
    out_dir: str | os.PathLike,
    epochs: int = DEFAULT_EPOCHS,
    seed: int = 42,
    n_samples: int = 10000,
    width: int = 64,
    depth: int = 3,
    batch_size: int = DEFAULT_BATCH_SIZE,
    verbose: bool = True,
) -> TeacherRun:
    """Train the teacher on MNIST-1D and write `teacher.h5`, `train.npz`, `val.npz`, `test.npz` to out_dir.

    Seeds Python, numpy and TensorFlow (`set_random_seed`); on CPU the same seed gave bit-identical
    weights run to run here. TensorFlow's process-wide op-determinism switch is left alone (it
    would change other code in the same process). Adam with a cosine-decayed learning rate;
    with `verbose` a one-line summary is printed.
    """
    from edgekit._tf import tf_keras

    keras = tf_keras()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    split = load_mnist1d(n_samples=n_samples, seed=seed)

    keras.utils.set_random_seed(seed)
    model = build_teacher(width=width, depth=depth, input_length=split.input_shape[0],
                          num_classes=split.num_classes)
    steps = max(1, epochs * int(np.ceil(len(split.x_train) / batch_size)))
    model.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(DEFAULT_LEARNING_RATE, steps)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    model.fit(split.x_train, split.y_train, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0)
    train_seconds = time.perf_counter() - start
    val_accuracy = float(model.evaluate(split.x_val, split.y_val, verbose=0)[1])
    test_accuracy = float(model.evaluate(split.x_test, split.y_test, verbose=0)[1])

    model_path = out / "teacher.h5"
    save_model(model, model_path)
    data_paths = _save_splits(split, out)
    if verbose:
        print(f"teacher: {model.count_params()} params, {epochs} epochs in {train_seconds:.1f} s; "
              f"val accuracy {val_accuracy:.4f}, test accuracy {test_accuracy:.4f} -> {model_path}")
    return TeacherRun(model_path, data_paths, val_accuracy, test_accuracy, train_seconds, epochs, seed)


def _save_npz_atomically(path: Path, **arrays: np.ndarray) -> None:
    from edgekit.model_io.atomic import write_atomically

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_atomically({os.fspath(path): buffer.getvalue()})


def _save_splits(split: Split, out: Path) -> tuple[Path, Path, Path]:
    paths = (out / "train.npz", out / "val.npz", out / "test.npz")
    pairs = ((split.x_train, split.y_train), (split.x_val, split.y_val), (split.x_test, split.y_test))
    for path, (x, y) in zip(paths, pairs):
        _save_npz_atomically(path, x=x, y=y)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edgekit.examples.mnist1d_teacher",
        description="Train the example MNIST-1D Conv1D teacher; write teacher.h5 and train/val/test .npz.",
    )
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help=f"default {DEFAULT_EPOCHS}")
    parser.add_argument("--seed", type=int, default=42, help="data and training seed (default 42)")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be >= 1")
    train_teacher(args.out, epochs=args.epochs, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
