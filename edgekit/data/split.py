"""Train / validation split of in-memory samples: stratified by class when y holds class labels."""

from __future__ import annotations

import dataclasses

import numpy as np

from edgekit.data.arrays import Dataset
from edgekit.errors import BadInputError

# The share of training data held out for validation when none is given (distill, prune, plan, fit).
VAL_FRACTION = 0.1


def split(dataset: Dataset, val_fraction: float = VAL_FRACTION, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Split into (train, val); stratified by class when y holds class labels, at least one sample each."""
    n = len(dataset)
    if not 0.0 < val_fraction < 1.0:
        raise BadInputError(f"{dataset.source}: val_fraction must be between 0 and 1, got {val_fraction}")
    if n < 2:
        raise BadInputError(f"{dataset.source}: {n} sample(s) cannot be split into train and validation; "
                            "provide more data or separate validation data")
    rng = np.random.default_rng(seed)
    classes = _class_indices(dataset.y)
    if classes is None:
        order = rng.permutation(n)
        n_val = min(n - 1, max(1, round(n * val_fraction)))
        val_idx = order[:n_val]
    else:
        val_idx = _stratified_val_indices(classes, val_fraction, rng)
    is_val = np.zeros(n, dtype=bool)
    is_val[val_idx] = True
    return _subset(dataset, ~is_val), _subset(dataset, is_val)


def _subset(dataset: Dataset, mask: np.ndarray) -> Dataset:
    y = None if dataset.y is None else dataset.y[mask]
    return dataclasses.replace(dataset, x=dataset.x[mask], y=y)


def _stratified_val_indices(classes: np.ndarray, val_fraction: float, rng) -> np.ndarray:
    picked = []
    for c in np.unique(classes):
        members = rng.permutation(np.flatnonzero(classes == c))
        k = round(len(members) * val_fraction)
        picked.append(members[: min(k, len(members) - 1)])  # keep every class in train
    val_idx = np.concatenate(picked) if picked else np.array([], dtype=int)
    if len(val_idx) == 0:  # tiny data: take one sample of the largest class
        values, counts = np.unique(classes, return_counts=True)
        val_idx = rng.permutation(np.flatnonzero(classes == values[np.argmax(counts)]))[:1]
    if len(val_idx) == len(classes):
        val_idx = val_idx[1:]
    return val_idx


def _class_indices(y: np.ndarray | None) -> np.ndarray | None:
    """Integer class per sample when y looks like class labels (ints or one-hot), else None."""
    if y is None:
        return None
    if y.ndim == 2 and y.shape[1] > 1 and np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1):
        return np.argmax(y, axis=1)
    flat = y.reshape(len(y), -1)
    if flat.shape[1] == 1 and np.all(np.isfinite(flat)) and np.all(flat == np.round(flat)):
        return flat[:, 0].astype(np.int64)
    return None

