"""Small generated data and trained teachers for fits of every task (tests and benchmarks/fit_tasks.py).

- machine_signals: MLPerf-Tiny-style anomaly data: a rotating machine's vibration (a base frequency and
  its harmonics, random phase and load, sensor noise); faults inject bearing impacts (periodic spikes),
  a loose part (a shifted, stronger harmonic) or broadband rub noise.
- shapes: 16x16 images with a rectangle and a disc on noise; per-pixel classes 0 background, 1, 2.
"""

from __future__ import annotations

import numpy as np

SIGNAL_LENGTH = 128


def machine_signals(n: int, fault_share: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(x (n, 128) float32, y (n,) 0 normal / 1 fault)."""
    rng = np.random.default_rng(seed)
    t = np.arange(SIGNAL_LENGTH) / SIGNAL_LENGTH
    base = rng.uniform(3.0, 5.0, size=(n, 1))
    load = rng.uniform(0.8, 1.2, size=(n, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n, 3))
    x = load * (np.sin(2 * np.pi * base * t + phase[:, :1]) + 0.5 * np.sin(4 * np.pi * base * t + phase[:, 1:2])
                + 0.25 * np.sin(6 * np.pi * base * t + phase[:, 2:]))
    x += rng.normal(scale=0.05, size=x.shape)
    y = (rng.random(n) < fault_share).astype(np.int64)
    for i in np.flatnonzero(y):
        kind = rng.integers(3)
        if kind == 0:      # bearing impacts
            period = int(rng.integers(9, 17))
            x[i, int(rng.integers(period))::period] += rng.uniform(1.0, 1.8)
        elif kind == 1:    # loose part: a shifted strong harmonic
            x[i] += 0.9 * np.sin(2 * np.pi * base[i] * 2.5 * t + rng.uniform(0, 6.28))
        else:              # rub: broadband noise
            x[i] += rng.normal(scale=0.45, size=SIGNAL_LENGTH)
    return (x / 2.0).astype(np.float32), y


def anomaly_teacher(x_normal: np.ndarray, epochs: int = 40, seed: int = 0):
    """A dense autoencoder 128-64-16-64-128 (MLPerf Tiny's shape, smaller) trained on normal signals only."""
    from edgekit._tf import tf_keras

    keras = tf_keras()
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIGNAL_LENGTH,), name="signal")
    h = keras.layers.Dense(64, activation="relu", name="enc1")(inputs)
    h = keras.layers.Dense(16, activation="relu", name="code")(h)
    h = keras.layers.Dense(64, activation="relu", name="dec1")(h)
    outputs = keras.layers.Dense(SIGNAL_LENGTH, name="recon")(h)
    model = keras.Model(inputs, outputs, name="machine_autoencoder")
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="mse")
    model.fit(x_normal, x_normal, epochs=epochs, batch_size=64, verbose=0)
    return model


def shapes(n: int, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(x (n, size, size, 1) float32, y (n, size, size) int64 with classes 0, 1 (rectangle), 2 (disc))."""
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=0.15, size=(n, size, size, 1)).astype(np.float32)
    y = np.zeros((n, size, size), np.int64)
    rows, cols = np.mgrid[:size, :size]
    for i in range(n):
        r0, c0 = rng.integers(0, size - 6, 2)
        h, w = rng.integers(3, 7, 2)
        y[i, r0:r0 + h, c0:c0 + w] = 1
        cr, cc, rad = rng.uniform(3, size - 3), rng.uniform(3, size - 3), rng.uniform(2, 4)
        y[i][(rows - cr) ** 2 + (cols - cc) ** 2 <= rad ** 2] = 2
    x[..., 0] += np.where(y == 1, 0.8, np.where(y == 2, -0.8, 0.0)).astype(np.float32)
    return x, y


def segmentation_teacher(x: np.ndarray, y: np.ndarray, epochs: int = 15, seed: int = 0):
    """A small fully convolutional net: 3x3 convs 16-16, 1x1 conv to 3 classes with a softmax per pixel."""
    from edgekit._tf import tf_keras

    keras = tf_keras()
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(x.shape[1:], name="image")
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inputs)
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2")(h)
    outputs = keras.layers.Conv2D(3, 1, activation="softmax", name="classes")(h)
    model = keras.Model(inputs, outputs, name="shape_segmenter")
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    return model


def objects(n: int, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One object per image: (x (n, size, size, 1), class (n,) 0 square / 1 disc / 2 bar, box (n, 4) = centre
    row, centre column, height, width as fractions of the image)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=0.1, size=(n, size, size, 1)).astype(np.float32)
    classes = rng.integers(0, 3, n)
    boxes = np.zeros((n, 4), np.float32)
    rows, cols = np.mgrid[:size, :size]
    for i, c in enumerate(classes):
        h, w = [(rng.integers(4, 8),) * 2, (rng.integers(4, 8),) * 2, (rng.integers(2, 4), rng.integers(6, 11))][c]
        r0, c0 = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
        mask = (rows >= r0) & (rows < r0 + h) & (cols >= c0) & (cols < c0 + w)
        if c == 1:
            mask &= (rows - (r0 + (h - 1) / 2)) ** 2 + (cols - (c0 + (w - 1) / 2)) ** 2 <= (h / 2) ** 2
        x[i, mask, 0] += 1.0
        boxes[i] = [(r0 + h / 2) / size, (c0 + w / 2) / size, h / size, w / size]
    return x, classes, boxes


def detection_teacher(x: np.ndarray, classes: np.ndarray, boxes: np.ndarray, epochs: int = 15, seed: int = 0):
    """Two heads on a small conv trunk: `cls` (softmax over 3 shapes) and `box` (4 linear outputs)."""
    from edgekit._tf import tf_keras

    keras = tf_keras()
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(x.shape[1:], name="image")
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inputs)
    h = keras.layers.MaxPooling2D(2, name="pool1")(h)
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(h)
    h = keras.layers.MaxPooling2D(2, name="pool2")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    h = keras.layers.Dense(32, activation="relu", name="fc")(h)
    cls = keras.layers.Dense(3, activation="softmax", name="cls")(h)
    box = keras.layers.Dense(4, name="box")(h)
    model = keras.Model(inputs, [cls, box], name="two_head_detector")
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=["sparse_categorical_crossentropy", "mse"],
                  loss_weights=[1.0, 10.0])
    model.fit(x, [classes, boxes], epochs=epochs, batch_size=32, verbose=0)
    return model
