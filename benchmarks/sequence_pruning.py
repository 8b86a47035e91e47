"""Size and LiteRT latency of sequence models before and after structured pruning (issue 12).

    nice -n 10 .venv/bin/python benchmarks/sequence_pruning.py

Four models with random weights (the figures are about size and speed, not accuracy): a 2-block
transformer encoder (MultiHeadAttention: heads, key and value dims pruned, and the feed-forward
width), a 2-layer LSTM, a Conv1D + GRU and a Conv1D + Bidirectional(LSTM) + Bidirectional(GRU) (each
direction's units pruned on their own). Each is pruned with `edgekit.prune.prune(model, 0.5)` (l1,
data-free), converted to float32 TFLite at batch 1, and timed on this host's CPU with LiteRT, one
thread, original and pruned interleaved (edgekit.runners.litert.interleaved_median_ms). Pass model
names to run some only: `... sequence_pruning.py bidirectional`.
"""

from __future__ import annotations

import sys
import time

import numpy as np


def transformer(keras, tokens=64, width=128, heads=8, key_dim=32, hidden=256, blocks=2):
    L = keras.layers
    x0 = keras.Input((tokens, 32))
    h = L.Dense(width)(x0)
    for _ in range(blocks):
        a = L.MultiHeadAttention(num_heads=heads, key_dim=key_dim)(h, h)
        h = L.LayerNormalization()(L.Add()([h, a]))
        f = L.Dense(width)(L.Dense(hidden, activation="relu")(h))
        h = L.LayerNormalization()(L.Add()([h, f]))
    return keras.Model(x0, L.Dense(10)(L.GlobalAveragePooling1D()(h)), name="transformer")


def lstm(keras, steps=50, features=32):
    L = keras.layers
    x0 = keras.Input((steps, features))
    h = L.LSTM(64)(L.LSTM(128, return_sequences=True)(x0))
    return keras.Model(x0, L.Dense(10)(h), name="lstm")


def gru(keras, steps=50, features=32):
    L = keras.layers
    x0 = keras.Input((steps, features))
    h = L.GRU(96)(L.Conv1D(64, 3, activation="relu")(x0))
    return keras.Model(x0, L.Dense(10)(h), name="gru")


def bidirectional(keras, steps=50, features=32):
    L = keras.layers
    x0 = keras.Input((steps, features))
    h = L.Conv1D(32, 3, activation="relu")(x0)
    h = L.Bidirectional(L.LSTM(64, return_sequences=True))(h)
    h = L.Bidirectional(L.GRU(48))(h)
    return keras.Model(x0, L.Dense(10)(h), name="bidirectional")


def main(names) -> None:
    from edgekit._tf import tf_keras
    from edgekit.export.tflite import convert
    from edgekit.prune import prune
    from edgekit.runners.litert import interleaved_median_ms

    keras = tf_keras()
    keras.utils.set_random_seed(0)
    builders = {"transformer": transformer, "lstm": lstm, "gru": gru, "bidirectional": bidirectional}
    print("| model | params | MACs | float32 .tflite bytes | LiteRT 1-thread median ms |")
    print("|---|---|---|---|---|")
    for name in names:
        model = builders[name](keras)
        started = time.perf_counter()
        result = prune(model, 0.5)
        r = result.report
        blobs = [convert(m, "float32").tflite_bytes for m in (model, result.model)]
        x = np.random.default_rng(0).standard_normal((1, *model.input_shape[1:])).astype("float32")
        ms = interleaved_median_ms(blobs, x, threads=1, rounds=10, invokes=20)
        print(f"| {name} | {r.params_before:,} -> {r.params_after:,} | {r.macs_before:,} -> {r.macs_after:,} | "
              f"{len(blobs[0]):,} -> {len(blobs[1]):,} | {ms[0]:.3f} -> {ms[1]:.3f} |", flush=True)
        widths = [(layer.name, _width(layer)) for layer in result.model.layers if _width(layer)]
        print(f"<!-- {name}: pruned widths {widths}; {time.perf_counter() - started:.0f} s -->", flush=True)


def _width(layer) -> str:
    config = layer.get_config()
    if type(layer).__name__ == "Bidirectional":
        return f"{type(layer.forward_layer).__name__} {layer.forward_layer.units} + {layer.backward_layer.units}"
    if "num_heads" in config:
        return f"heads {config['num_heads']}, key_dim {config['key_dim']}, value_dim {config['value_dim']}"
    return str(config.get("units", "")) if type(layer).__name__ in ("LSTM", "GRU", "Dense") else ""


if __name__ == "__main__":
    main(sys.argv[1:] or ["transformer", "lstm", "gru", "bidirectional"])
