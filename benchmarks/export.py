"""Export every precision of three models and measure each file: size, gzip size, LiteRT latency, TFLM arena, accuracy.

    .venv/bin/python benchmarks/export.py                   # all three models (about 6-9 minutes on 2 shared cores)
    .venv/bin/python benchmarks/export.py --models teacher  # one model

Models:
  teacher    edgekit's MNIST-1D teacher (Conv1D 64x3 + BN, 32k params), trained 15 epochs on 4000 samples;
             accuracy = top-1 on 1000 held-out MNIST-1D samples.
  resnet8    zoo.resnet8 (16/32/32 wide) on scikit-learn's 8x8 digits, trained 30 epochs;
             accuracy = top-1 on the digits test split.
  mobilenet  zoo.mobilenet_v1 alpha 0.25, 96x96x3, random weights with BatchNorm statistics set from one batch
             (no dataset here): "accuracy" is top-1 agreement with the float Keras model instead (marked *).
Precisions: float32, float16, dynamic_int8, int8 (calibrated on 200 training samples), int8 QAT (2 epochs,
tfmot; not for mobilenet, which has no training data here). Sparse rows: the same model with 80 % of its
conv/dense weights zeroed by tfmot (Dense in 1x16 blocks; fine-tuned 10 epochs where there is data),
converted plainly ("zeros") and with the converter's sparse encoding ("sparse"), for float32 and int8.

Latency: LiteRT (XNNPACK, batch 1) on this host, all variants of a model interleaved in 9 rounds of 40
invokes so background load hits them alike; the figure is the median of all invokes, for 1 thread and 2.
TFLM arena: exact minimum by bisection (TFLM has no float16 / dynamic-range kernels: "-").
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MODELS = ("teacher", "resnet8", "mobilenet")
ROUNDS, INVOKES = 9, 40
SPARSE_EPOCHS = 10  # fine-tuning while the masks grow to 80 % (PolynomialDecay), where there is data


@dataclass
class Row:
    model: str
    variant: str
    tflite: bytes
    accuracy: float | None = None
    agreement_only: bool = False
    latency_ms: dict[int, float] = field(default_factory=dict)
    arena_bytes: int | None = None
    skipped_by: str = ""


def _fit(model, x, y, epochs, lr=3e-3):
    from edgekit._tf import tf_keras

    keras = tf_keras()
    model.compile(keras.optimizers.Adam(lr), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    return model


def load_model(name: str):
    """(model, x_train, y_train, x_test, y_test or None)."""
    from edgekit._tf import tf_keras
    from edgekit.examples import zoo

    keras = tf_keras()
    keras.utils.set_random_seed(0)
    if name == "teacher":
        from edgekit.examples.datasets import load_mnist1d
        from edgekit.examples.mnist1d_teacher import build_teacher

        d = load_mnist1d(n_samples=5000, seed=42)
        return _fit(build_teacher(), d.x_train, d.y_train, 15), d.x_train, d.y_train, d.x_test, d.y_test
    if name == "resnet8":
        from edgekit.examples.datasets import load_digits_split

        d = load_digits_split(seed=0)
        model = zoo.resnet8(input_shape=d.input_shape, classes=10, widths=(16, 32, 32))
        return _fit(model, d.x_train, d.y_train, 30), d.x_train, d.y_train, d.x_test, d.y_test
    model = zoo.mobilenet_v1(alpha=0.25, resolution=96, classes=10)
    x = np.random.default_rng(0).uniform(-1, 1, size=(264, 96, 96, 3)).astype(np.float32)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    model(x[:64], training=True)
    return model, x[:200], None, x[200:], None


def variants(name: str, model, x, y, x_test, y_test):
    from edgekit.export.qat import quantize_aware
    from edgekit.export.sparse import sparsify_for_export, sparsity_verdict
    from edgekit.export.tflite import convert

    rows = [Row(name, p, convert(model, p, x).tflite_bytes) for p in ("float32", "float16", "dynamic_int8", "int8")]
    if y is not None:
        qat = quantize_aware(model, x, y, epochs=2)
        rows.append(Row(name, "int8 QAT", convert(qat.model, "int8", x).tflite_bytes))
    sparse = sparsify_for_export(model, 0.8, data=(x, y) if y is not None else None, epochs=SPARSE_EPOCHS).model
    names = [layer.name for layer in sparse.layers]
    for precision in ("float32", "int8"):
        rows.append(Row(name, f"{precision} 80% zeros", convert(sparse, precision, x).tflite_bytes))
        result = convert(sparse, precision, x, sparse=True)
        verdict = sparsity_verdict(result.tflite_bytes, names)
        rows.append(Row(name, f"{precision} 80% sparse", result.tflite_bytes,
                        skipped_by="; ".join(b.split(" (")[0] for b in verdict.exploited_by) or "nobody"))
    reference = model.predict(x_test, verbose=0, batch_size=256)
    from edgekit.runners.litert import predict

    for row in rows:
        out = predict(row.tflite, x_test)
        if y_test is not None:
            row.accuracy = float(np.mean(out.argmax(1) == y_test))
        else:
            row.accuracy, row.agreement_only = float(np.mean(out.argmax(1) == reference.argmax(1))), True
    keras_accuracy = float(np.mean(reference.argmax(1) == y_test)) if y_test is not None else None
    return rows, keras_accuracy


def time_rows(rows: list[Row], x_sample: np.ndarray, threads: int) -> None:
    from edgekit.runners.litert import interleaved_median_ms

    medians = interleaved_median_ms([row.tflite for row in rows], x_sample, threads, rounds=ROUNDS,
                                    invokes=INVOKES)
    for row, median in zip(rows, medians):
        row.latency_ms[threads] = median


def arenas(rows: list[Row]) -> None:
    from edgekit.errors import UnsupportedModelError
    from edgekit.runners.tflm import measure_arena

    for row in rows:
        if row.variant.startswith(("float16", "dynamic")) or row.variant.endswith("sparse"):
            continue  # TFLM: no float16 DEQUANTIZE / hybrid kernels, no DENSIFY
        try:
            row.arena_bytes = measure_arena(row.tflite).arena_bytes
        except UnsupportedModelError as exc:
            row.skipped_by += f" (TFLM: {str(exc)[:60]})"


def print_table(rows: list[Row], keras_accuracy: dict[str, float | None]) -> None:
    from edgekit.export.sparse import gzip_bytes

    header = (f"| {'model':<9} | {'variant':<19} | {'TFLite B':>9} | {'gzip B':>8} | {'p50 1 thr ms':>12} | "
              f"{'p50 2 thr ms':>12} | {'TFLM arena B':>12} | {'accuracy':>9} | zeros skipped by |")
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for row in rows:
        accuracy = "-" if row.accuracy is None else f"{row.accuracy:.2%}{'*' if row.agreement_only else ''}"
        arena = "-" if row.arena_bytes is None else f"{row.arena_bytes:,}"
        print(f"| {row.model:<9} | {row.variant:<19} | {len(row.tflite):>9,} | {gzip_bytes(row.tflite):>8,} | "
              f"{row.latency_ms.get(1, float('nan')):>12.4f} | {row.latency_ms.get(2, float('nan')):>12.4f} | "
              f"{arena:>12} | {accuracy:>9} | {row.skipped_by} |")
    print()
    for model, accuracy in keras_accuracy.items():
        if accuracy is not None:
            print(f"{model}: float Keras accuracy {accuracy:.2%}")
    print("* top-1 agreement with the float Keras model (no labelled data for this model)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    args = parser.parse_args(argv)
    all_rows, keras_accuracy = [], {}
    for name in args.models:
        start = time.time()
        model, x, y, x_test, y_test = load_model(name)
        rows, keras_accuracy[name] = variants(name, model, x, y, x_test, y_test)
        for threads in (1, 2):
            time_rows(rows, x_test[:1], threads)
        arenas(rows)
        all_rows += rows
        print(f"[{name}: {time.time() - start:.0f} s]", file=sys.stderr, flush=True)
    print_table(all_rows, keras_accuracy)
    return 0


if __name__ == "__main__":
    sys.exit(main())
