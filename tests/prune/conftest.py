"""Fixtures for the pruning tests (helpers live in prune_helpers.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def keras():
    from edgekit._tf import tf_keras

    return tf_keras()
