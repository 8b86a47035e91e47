"""Fixtures for export tests: three more architectures and the MNIST-1D teacher, built and trained here."""

from __future__ import annotations

import numpy as np
import pytest


def _trained(model, x, y, epochs: int):
    from edgekit._tf import tf_keras

    keras = tf_keras()
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="session")
def architectures(tiny_conv1d_model, mnist1d_sample):
    """name -> (model, calibration samples): Conv1D, depthwise-separable 2D (DS-CNN), residual 2D, MLP.

    The 2D models are trained for two epochs on a synthetic task (class = brightest quadrant) so their
    logits are not ties; every model has a few thousand parameters.
    """
    from edgekit._tf import tf_keras
    from edgekit.examples import zoo

    tf_keras().utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    images = rng.normal(size=(256, 16, 16, 3)).astype(np.float32)
    labels = np.stack([images[:, :8, :8].mean((1, 2, 3)), images[:, :8, 8:].mean((1, 2, 3)),
                       images[:, 8:, :8].mean((1, 2, 3)), images[:, 8:, 8:].mean((1, 2, 3))], 1).argmax(1)
    spectra = rng.normal(size=(256, 20, 10, 1)).astype(np.float32)
    vectors = rng.normal(size=(256, 32)).astype(np.float32)
    return {
        "conv1d": (tiny_conv1d_model, mnist1d_sample.x_train),
        "dscnn": (_trained(zoo.dscnn(width=32, blocks=2, input_shape=(20, 10, 1), classes=4), spectra,
                           (spectra[:, :10].mean((1, 2, 3)) > 0).astype(int) + 2 * (spectra[:, :, :5].mean((1, 2,
                                                                                                            3)) > 0),
                           2), spectra),
        "resnet": (_trained(zoo.resnet8(input_shape=(16, 16, 3), classes=4, widths=(8, 16, 16)), images, labels, 2),
                   images),
        "mlp": (_trained(zoo.mlp(inputs=32, hidden=(64, 32), classes=8), vectors, (vectors[:, :8]).argmax(1), 3),
                vectors),
    }


@pytest.fixture(scope="session")
def mnist1d_2000():
    from edgekit.examples.datasets import load_mnist1d

    return load_mnist1d(n_samples=2000, seed=0)


@pytest.fixture(scope="session")
def mnist1d_teacher(mnist1d_2000):
    """edgekit's MNIST-1D teacher (64 wide, 3 Conv1D + BN, 32k parameters), trained 6 epochs on 1600 samples."""
    from edgekit._tf import tf_keras
    from edgekit.examples.mnist1d_teacher import build_teacher

    tf_keras().utils.set_random_seed(0)
    return _trained(build_teacher(), mnist1d_2000.x_train, mnist1d_2000.y_train, 6)

