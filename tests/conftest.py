"""Shared fixtures: a small MNIST-1D sample and a tiny trained tf_keras Conv1D model.

Session-scoped because building them costs seconds; tests must not modify them (clone the model
with `tf_keras().models.clone_model` + `set_weights` if a test needs to change it).
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def mnist1d_sample():
    """MNIST-1D with 1000 samples: 720 train, 80 val, 200 test; x (N, 40, 1) float32 (read-only)."""
    from edgekit.examples.datasets import load_mnist1d

    return load_mnist1d(n_samples=1000, seed=0)


@pytest.fixture(scope="session")
def tiny_conv1d_model(mnist1d_sample):
    """A tf_keras Conv1D(16, 5) -> Conv1D(32, 3, stride 2) -> Flatten -> Dense(10) logits model, 8k params.

    Trained for a few epochs on `mnist1d_sample` (under a second) so its logits are far from ties and
    top-1 comparisons between runtimes mean something; about 60 % test accuracy (10 classes).
    """
    from edgekit._tf import tf_keras

    keras = tf_keras()
    keras.utils.set_random_seed(0)
    inputs = keras.Input((40, 1), name="signal")
    x = keras.layers.Conv1D(16, 5, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv1D(32, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(10, name="logits")(x)
    model = keras.Model(inputs, outputs, name="tiny_conv1d")
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(mnist1d_sample.x_train, mnist1d_sample.y_train, epochs=8, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="session")
def keras():
    from edgekit._tf import tf_keras

    return tf_keras()
