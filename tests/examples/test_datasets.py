import random
import socket

import numpy as np
import pytest

from edgekit.examples import datasets
from edgekit.examples.datasets import load_digits_split, load_mnist1d


def test_mnist1d_split_sizes_shapes_and_dtypes():
    split = load_mnist1d(n_samples=1000, seed=0)
    assert split.x_train.shape == (720, 40, 1)
    assert split.x_val.shape == (80, 40, 1)
    assert split.x_test.shape == (200, 40, 1)
    assert (len(split.y_train), len(split.y_val), len(split.y_test)) == (720, 80, 200)
    assert split.x_train.dtype == np.float32 and split.y_train.dtype == np.int64
    assert split.input_shape == (40, 1) and split.num_classes == 10
    # 100 per class in total, all ten classes in every part
    labels = np.concatenate([split.y_train, split.y_val, split.y_test])
    assert np.bincount(labels).tolist() == [100] * 10
    assert set(split.y_val.tolist()) == set(range(10))


def test_mnist1d_is_deterministic_per_seed_and_leaves_global_rngs_alone():
    np.random.seed(123)
    random.seed(123)
    expected_np, expected_py = np.random.rand(), random.random()
    np.random.seed(123)
    random.seed(123)
    a = load_mnist1d(n_samples=200, seed=7)
    assert (np.random.rand(), random.random()) == (expected_np, expected_py)

    fresh = datasets._mnist1d_cached.__wrapped__(200, 7)  # bypass the cache: regenerate
    np.testing.assert_array_equal(a.x_train, fresh.x_train)
    np.testing.assert_array_equal(a.y_test, fresh.y_test)
    other = load_mnist1d(n_samples=200, seed=8)
    assert not np.array_equal(a.x_train, other.x_train)


def test_mnist1d_is_generated_offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("load_mnist1d tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    split = load_mnist1d(n_samples=100, seed=3)  # not cached by another test
    assert split.x_train.shape == (72, 40, 1)


def test_cached_arrays_are_read_only():
    split = load_mnist1d(n_samples=1000, seed=0)
    assert load_mnist1d(n_samples=1000, seed=0) is split
    with pytest.raises(ValueError):
        split.x_train[0, 0, 0] = 1.0


def test_mnist1d_rejects_too_few_samples():
    with pytest.raises(ValueError, match="n_samples=5"):
        load_mnist1d(n_samples=5)


def test_digits_split_sizes_range_and_stratification():
    split = load_digits_split(seed=0)
    assert split.x_train.shape == (1293, 8, 8, 1)
    assert split.x_val.shape == (144, 8, 8, 1)
    assert split.x_test.shape == (360, 8, 8, 1)
    assert split.x_train.dtype == np.float32
    assert float(split.x_train.min()) == 0.0 and float(split.x_train.max()) == 1.0
    # stratified: 178-183 images per class, 20 % of each in test -> 35-37 per class
    counts = np.bincount(split.y_test, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37
    # the three parts are disjoint: no test image appears in train
    train_rows = {row.tobytes() for row in split.x_train.reshape(len(split.x_train), -1)}
    overlap = sum(row.tobytes() in train_rows for row in split.x_test.reshape(len(split.x_test), -1))
    assert overlap == 0  # (all 1797 digits images are distinct)
    assert not np.array_equal(load_digits_split(seed=1).y_test, split.y_test)
