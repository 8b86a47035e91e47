"""Reference student families: their names, the CLI's spellings and their depth ranges (one home, no TF)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StudentFamily:
    name: str              # edgekit.distill.students builder
    model_name: str        # the name the builder gives the Keras model
    default_depth: int
    min_depth: int
    max_depth: int


FAMILIES = {f.name: f for f in (
    StudentFamily("mlp", "mlp_student", default_depth=2, min_depth=0, max_depth=8),
    StudentFamily("dscnn", "dscnn_student", default_depth=4, min_depth=1, max_depth=12),
    StudentFamily("mobilenet_like", "mobilenet_student", default_depth=4, min_depth=1, max_depth=13),
)}
# What users may type (CLI --family, API family=): "auto" lets the input's rank decide.
CHOICES = ("dscnn", "mobilenet", "mlp", "auto")
_ALIASES = {"mobilenet": "mobilenet_like", "auto": None}


def resolve_family(name: str) -> str | None:
    """The builder's family name for a user's spelling (None for auto); KeyError for an unknown one."""
    if name in FAMILIES:
        return name
    return _ALIASES[name]


def family_of_model(model_name: str) -> str:
    """The family a built student belongs to, from its Keras model name (the name itself if none matches)."""
    return next((f.name for f in FAMILIES.values() if f.model_name == model_name), model_name)
