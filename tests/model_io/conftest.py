"""Fixtures for model_io tests: the two Keras engines and a snapshot of files on disk."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest


@pytest.fixture(scope="session")
def tk():
    """tf_keras (the Keras 2 engine edgekit works with)."""
    from edgekit._tf import tf_keras

    return tf_keras()


@pytest.fixture(scope="session")
def k3(tk):
    """Keras 3, imported after edgekit has set up TensorFlow."""
    import keras

    return keras


def _snapshot(path) -> dict[str, tuple[str, int]]:
    """{relative path: (sha256, mtime_ns)} for a file, or for every file under a directory."""
    path = os.fspath(path)
    files = [path] if os.path.isfile(path) else [
        os.path.join(root, name) for root, _, names in os.walk(path) for name in names]
    state = {}
    for file in sorted(files):
        with open(file, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        state[os.path.relpath(file, path) if file != path else "."] = (digest, os.stat(file).st_mtime_ns)
    return state


@pytest.fixture
def snapshot():
    return _snapshot


def max_abs_diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


@pytest.fixture
def diff():
    return max_abs_diff
