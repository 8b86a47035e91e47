"""`prune`: structured pruning of a model or model file (see edgekit.prune.prune)."""

from __future__ import annotations

from edgekit.model_io import load_keras


def prune(model_or_path, ratio: float | None = None, *, trust: bool = False, **kwargs):
    """Structured pruning of a model or model file -> edgekit.prune.PruneResult."""
    from edgekit.prune import prune as prune_model

    model, _ = load_keras(model_or_path, trust=trust)
    return prune_model(model, ratio, **kwargs)
