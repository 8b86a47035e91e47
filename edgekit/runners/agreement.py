"""How closely a converted model's outputs follow reference outputs (errors and top-1 match)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekit.errors import BadInputError


@dataclass(frozen=True)
class Agreement:
    """How closely a converted model's outputs follow the reference (Keras) outputs on n_samples."""

    n_samples: int
    max_abs_error: float
    mean_abs_error: float
    top1_agreement: float  # fraction of samples whose argmax matches
    reference_max_abs: float  # largest |reference output|: scale for reading the errors


def agreement(reference: np.ndarray, outputs: np.ndarray) -> Agreement:
    """Compare outputs with reference outputs (same shape, batch first): errors and top-1 match."""
    reference = np.asarray(reference, dtype=np.float32)
    outputs = np.asarray(outputs, dtype=np.float32)
    if reference.shape != outputs.shape:
        raise BadInputError(
            f"outputs shaped {outputs.shape} cannot be compared with reference {reference.shape}"
        )
    if len(reference) == 0:
        raise BadInputError("no samples to compare outputs on")
    diff = np.abs(reference - outputs)
    ref2, out2 = reference.reshape(len(reference), -1), outputs.reshape(len(outputs), -1)
    return Agreement(
        n_samples=len(reference),
        max_abs_error=float(diff.max()),
        mean_abs_error=float(diff.mean()),
        top1_agreement=float(np.mean(ref2.argmax(axis=1) == out2.argmax(axis=1))),
        reference_max_abs=float(np.abs(reference).max()),
    )
