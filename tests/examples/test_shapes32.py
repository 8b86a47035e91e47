"""Shapes32, the generated colour image task: sizes, balance, determinism, no label in the colours.

That a CNN learns it is shown by benchmarks/fit_vs_baselines.py's teacher, not here (too slow for a test)."""

import numpy as np
import pytest

from edgekit.examples.datasets import SHAPES32_CLASSES, load_shapes32


def test_split_sizes_range_balance_and_determinism():
    split = load_shapes32(n_samples=800, seed=3)
    assert (split.x_train.shape, split.x_val.shape, split.x_test.shape) == ((576, 32, 32, 3), (64, 32, 32, 3),
                                                                            (160, 32, 32, 3))
    assert split.x_train.dtype == np.float32 and 0.0 <= split.x_train.min() and split.x_train.max() <= 1.0
    counts = np.bincount(np.concatenate([split.y_train, split.y_val, split.y_test]), minlength=8)
    assert len(counts) == len(SHAPES32_CLASSES) and counts.min() == counts.max() == 100
    again, other = load_shapes32(n_samples=800, seed=3), load_shapes32(n_samples=800, seed=4)
    np.testing.assert_array_equal(split.x_test, again.x_test)
    assert not np.allclose(split.x_test, other.x_test)
    with pytest.raises(ValueError, match="n_samples"):
        load_shapes32(n_samples=10)


def test_the_colours_do_not_give_the_label_away():
    from sklearn.linear_model import LogisticRegression

    split = load_shapes32(n_samples=1200, seed=0)
    colours = LogisticRegression(max_iter=300).fit(split.x_train.mean(axis=(1, 2)), split.y_train)
    assert colours.score(split.x_test.mean(axis=(1, 2)), split.y_test) < 0.3  # chance 0.125
