"""Helpers shared by the export tests."""

from __future__ import annotations

import numpy as np


def keras_vs_litert(keras_model, tflite_bytes: bytes, x):
    """Agreement of a converted model (run in LiteRT) with its Keras model on x."""
    from edgekit.runners.agreement import agreement
    from edgekit.runners.litert import predict

    x = np.asarray(x, dtype=np.float32)
    return agreement(keras_model.predict(x, batch_size=256, verbose=0), predict(tflite_bytes, x, batch_size=256))


def trained_looking(model, seed=0):
    """BatchNorm statistics and biases away from their initial values, as after training."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            layer.set_weights([w + rng.normal(0, 0.1, w.shape).astype(w.dtype) if w.ndim == 1 else w
                               for w in weights])
    return model
