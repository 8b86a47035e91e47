"""Dense vs sparse, measured: does 80 % weight sparsity make a TFLite model smaller, cheaper to download, faster?

    .venv/bin/python benchmarks/sparse.py          # about 2-3 minutes on 2 shared cores

Three models, random weights (size and speed do not depend on the values): an MLP 256-512-512-10 (all
FULLY_CONNECTED), the MNIST-1D teacher architecture (Conv1D + Dense, the "41,896 bytes, exactly as
dense" case), and a Fast-Sparse-ConvNets-shaped float CNN (symmetric-padded 3x3 stride-2 stem,
depthwise + 1x1 blocks, global mean) that meets XNNPACK's sparse-inference conditions.
Variants: dense; "zeros" = 80 % of conv/dense weights zeroed by tfmot (Dense in 1x16 blocks, or weight by
weight for "unstructured"), converted plainly; "sparse" = the same with the converter's sparse encoding
(edgekit.export.tflite.convert(sparse=True), which also stores int8 DENSIFY weights densely again where
LiteRT cannot load them). Latency: median of 9 interleaved rounds x 40 invokes on random input, with
LiteRT's default XNNPACK delegate and with its built-in kernels only, 1 and 2 threads. The last column
is edgekit's per-model verdict (edgekit.export.sparse.sparsity_verdict).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROUNDS, INVOKES = 9, 40


def models():
    from edgekit._tf import tf_keras
    from edgekit.examples.mnist1d_teacher import build_teacher

    keras = tf_keras()
    L = keras.layers
    keras.utils.set_random_seed(0)
    inputs = keras.Input((256,))
    x = L.Dense(512, activation="relu", name="fc0")(inputs)
    x = L.Dense(512, activation="relu", name="fc1")(x)
    mlp = keras.Model(inputs, L.Dense(10, name="logits")(x), name="mlp")
    inputs = keras.Input((96, 96, 3))
    x = L.ZeroPadding2D(1)(inputs)
    x = L.Conv2D(32, 3, strides=2, activation="relu", name="stem")(x)
    for i, (width, stride) in enumerate(((64, 1), (128, 2), (128, 1), (256, 2), (256, 1))):
        if stride == 2:
            x = L.ZeroPadding2D(1)(x)
        x = L.DepthwiseConv2D(3, strides=stride, padding="same" if stride == 1 else "valid", activation="relu",
                              name=f"dw{i}")(x)
        x = L.Conv2D(width, 1, activation="relu", name=f"pw{i}")(x)
    x = L.GlobalAveragePooling2D()(x)
    cnn = keras.Model(inputs, L.Dense(10, name="logits")(x), name="fast_sparse_cnn")
    return [(mlp, (256,)), (build_teacher(), (40, 1)), (cnn, (96, 96, 3))]


def timings(blobs: list[bytes], x: np.ndarray, threads: int, xnnpack: bool) -> list[float]:
    from edgekit.runners.litert import interleaved_median_ms

    return interleaved_median_ms(blobs, x, threads, rounds=ROUNDS, invokes=INVOKES, xnnpack=xnnpack)


def main() -> int:
    from edgekit.export.sparse import gzip_bytes, sparsify_for_export, sparsity_verdict
    from edgekit.export.tflite import convert

    print("| model | precision | variant | TFLite B | gzip B | XNNPACK 1 thr ms | XNNPACK 2 thr ms | built-in 1 thr ms"
          " | zeros skipped by (edgekit verdict) |")
    print("|---|---|---|---:|---:|---:|---:|---:|---|")
    for model, shape in models():
        rng = np.random.default_rng(0)
        x = rng.standard_normal((64, *shape)).astype(np.float32)
        blocked = sparsify_for_export(model, 0.8).model
        unstructured = sparsify_for_export(model, 0.8, dense_blocks=False).model
        names = [layer.name for layer in model.layers]
        for precision in ("float32", "int8"):
            rows = [("dense", convert(model, precision, x)),
                    ("80% zeros", convert(blocked, precision, x)),
                    ("80% sparse (blocks)", convert(blocked, precision, x, sparse=True)),
                    ("80% sparse (unstructured)", convert(unstructured, precision, x, sparse=True))]
            blobs = [r.tflite_bytes for _, r in rows]
            xnn1 = timings(blobs, x[:1], 1, True)
            xnn2 = timings(blobs, x[:1], 2, True)
            ref1 = timings(blobs, x[:1], 1, False)
            for i, (variant, result) in enumerate(rows):
                verdict = sparsity_verdict(result.tflite_bytes, names).summary if "sparse" in variant else ""
                if any("densely again" in w for w in result.warnings):
                    verdict += " [int8 weights behind DENSIFY -> FULLY_CONNECTED stored densely again]"
                if any("sparse encoding not used" in w for w in result.warnings):
                    verdict += " [sparse encoding not used: LiteRT ran it wrongly]"
                print(f"| {model.name} | {precision} | {variant} | {result.size_bytes:,} | "
                      f"{gzip_bytes(result.tflite_bytes):,} | {xnn1[i]:.4f} | {xnn2[i]:.4f} | {ref1[i]:.4f} | "
                      f"{verdict} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
