"""How far a quantised tensor is from its float reference: MSE, cosine, max |error|, SNR (pure numpy).

The figures TFLite's QuantizationDebugger and STM32Cube.AI's `validate` report per layer, computed the
same way for every layer so layers can be ranked (worst first = lowest SNR).

    >>> import numpy as np
    >>> ref = np.ones((4, 8), np.float32)
    >>> s = error_stats(ref, ref + 0.1)
    >>> round(s.snr_db, 1), round(s.max_abs, 3), round(s.cosine, 3)
    (20.0, 0.1, 1.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# An exact match has infinite SNR; reports cap it so JSON stays numeric and sorting stays total.
MAX_SNR_DB = 200.0


@dataclass(frozen=True)
class ErrorStats:
    """Error of `found` against `reference` over every sample and element.

    mse: mean squared error. cosine: mean over samples of the cosine similarity of the flattened
    sample (1 = same direction; two all-zero samples count as 1). max_abs: largest |error|.
    snr_db: 10 log10(sum ref^2 / sum err^2), MAX_SNR_DB for an exact match, 0 for a zero reference.
    relative_rms: RMS error / RMS of the reference (0.1 = 10 %).
    """

    mse: float
    cosine: float
    max_abs: float
    snr_db: float
    relative_rms: float

    def as_dict(self) -> dict:
        return {"mse": self.mse, "cosine": self.cosine, "max_abs": self.max_abs, "snr_db": self.snr_db,
                "relative_rms": self.relative_rms}


def error_stats(reference: np.ndarray, found: np.ndarray) -> ErrorStats:
    """ErrorStats of `found` vs `reference`, both shaped (N, ...) with the same number of elements per sample."""
    ref = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    got = np.asarray(found, dtype=np.float64).reshape(len(found), -1)
    if ref.shape != got.shape:
        raise ValueError(f"error_stats: reference {ref.shape} and found {got.shape} differ in shape")
    if not np.all(np.isfinite(got)):
        return ErrorStats(math.inf, 0.0, math.inf, -MAX_SNR_DB, math.inf)
    err = got - ref
    signal, noise = float(np.sum(ref * ref)), float(np.sum(err * err))
    return ErrorStats(
        mse=float(np.mean(err * err)) if err.size else 0.0,
        cosine=_mean_cosine(ref, got),
        max_abs=float(np.max(np.abs(err))) if err.size else 0.0,
        snr_db=snr_db(signal, noise),
        relative_rms=math.sqrt(noise / signal) if signal > 0 else (0.0 if noise == 0 else math.inf),
    )


def snr_db(signal_energy: float, noise_energy: float) -> float:
    """10 log10(signal / noise), capped to [-MAX_SNR_DB, MAX_SNR_DB]."""
    if noise_energy <= 0:  # exact match (a zero reference matched exactly counts as exact too)
        return MAX_SNR_DB
    if signal_energy <= 0:
        return -MAX_SNR_DB
    return max(-MAX_SNR_DB, min(MAX_SNR_DB, 10.0 * math.log10(signal_energy / noise_energy)))


def _mean_cosine(ref: np.ndarray, got: np.ndarray) -> float:
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1)
    dots = np.sum(ref * got, axis=1)
    both_zero = (np.linalg.norm(ref, axis=1) == 0) & (np.linalg.norm(got, axis=1) == 0)
    cos = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), np.where(both_zero, 1.0, 0.0))
    return float(np.mean(cos)) if len(cos) else 1.0


def worst_first(named: list[tuple[str, ErrorStats]]) -> list[tuple[str, ErrorStats]]:
    """Sort (name, stats) pairs worst first: lowest SNR, then lowest cosine, then largest max |error|."""
    return sorted(named, key=lambda item: (item[1].snr_db, item[1].cosine, -item[1].max_abs))
