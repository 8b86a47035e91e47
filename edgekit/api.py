"""The Python API the CLI mirrors. Each function takes plain values and returns a dataclass.

    >>> import edgekit.api as ek
    >>> result = ek.inspect("teacher.h5", device="stm32h743")       # doctest: +SKIP
    >>> result.analysis.macs, result.fits                             # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from edgekit.analysis import Analysis, analyze_graph
from edgekit.budgets import BudgetCheck, check_budgets


@dataclass(frozen=True)
class InspectResult:
    model_path: str | None
    model_format: str | None
    analysis: Analysis
    profile: object | None          # edgekit.profiles.DeviceProfile
    checks: tuple[BudgetCheck, ...]

    @property
    def fits(self) -> bool | None:
        """True/False with a device and at least one budget; None without."""
        verdicts = [c.fits for c in self.checks if c.fits is not None]
        return all(verdicts) if verdicts else None


def load(model_or_path, trust: bool = False):
    """A tf_keras model and its LoadedModel record (None for an in-memory model)."""
    if isinstance(model_or_path, (str, os.PathLike)):
        from edgekit.model_io import load_model, require_keras

        loaded = load_model(model_or_path, trust=trust)
        return require_keras(loaded, "analysis"), loaded
    return model_or_path, None


def inspect(model_or_path, device: str | None = None, trust: bool = False, **budget_overrides) -> InspectResult:
    """Analyse a model and, with a device, check each budget against its estimate.

    budget_overrides: max_flash, max_ram, max_latency_ms, max_energy_mj (strings with units or numbers).
    """
    from edgekit.keras_ir import from_keras

    model, loaded = load(model_or_path, trust=trust)
    analysis = analyze_graph(from_keras(model))
    profile = None
    checks: tuple[BudgetCheck, ...] = ()
    if device is not None:
        from edgekit.profiles import load_profile, parse_budget_overrides

        profile = load_profile(device)
        budgets = profile.budgets.with_overrides(**parse_budget_overrides(**budget_overrides))
        checks = tuple(check_budgets(analysis, profile, budgets))
    return InspectResult(
        model_path=str(model_or_path) if loaded is not None else None,
        model_format=loaded.format if loaded is not None else None,
        analysis=analysis, profile=profile, checks=checks)
