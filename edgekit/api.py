"""The Python API the CLI mirrors. Each function takes plain values and returns a dataclass.

    >>> import edgekit.api as ek
    >>> result = ek.inspect("teacher.h5", device="stm32h743")       # doctest: +SKIP
    >>> result.analysis.macs, result.fits                             # doctest: +SKIP
    >>> plan = ek.plan("teacher.h5", "stm32l4r5", max_flash="32KB")  # doctest: +SKIP
    >>> pruned = ek.prune(model, 0.5).model                           # doctest: +SKIP
    >>> outcome = ek.distill("teacher.h5", "train.npz", width=0.5)    # doctest: +SKIP
    >>> result = ek.fit("teacher.h5", "stm32l4r5", data="train.npz")  # doctest: +SKIP

Every function imports TensorFlow only when called.
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


def plan(model_or_path, device: str, data=None, **kwargs):
    """Plan how a model fits a device (see edgekit.api_plan.plan)."""
    from edgekit.api_plan import plan as _plan

    return _plan(model_or_path, device, data, **kwargs)


def prune(model_or_path, ratio: float | None = None, *, trust: bool = False, **kwargs):
    """Structured pruning of a model or model file (see edgekit.prune.prune) -> PruneResult."""
    from edgekit.prune import prune as _prune

    model, _ = load(model_or_path, trust=trust)
    return _prune(model, ratio, **kwargs)


def distill(teacher_or_path, data, **kwargs):
    """Distil a teacher into a student (see edgekit.api_distill.distill_model) -> DistillOutcome."""
    from edgekit.api_distill import distill_model

    return distill_model(teacher_or_path, data, **kwargs)


def fit(model_or_path, device: str, data=None, **kwargs):
    """The whole job: plan, compress, quantise, export, measure, report (see edgekit.fitting.fit)."""
    from edgekit.fitting import fit as _fit

    return _fit(model_or_path, device, data, **kwargs)


def export(model_or_path, out, precision: str | None = None, device: str | None = None, **kwargs):
    """Convert to TFLite (+ TFLite Micro C sources for MCU profiles), check it (see edgekit.api_export.export)."""
    from edgekit.api_export import export as _export

    return _export(model_or_path, out, precision, device, **kwargs)


def bench(model_path, runner: str = "litert", device: str | None = None, **kwargs):
    """Measure a .tflite with a runner: litert, tflm or adb (see edgekit.api_export.bench)."""
    from edgekit.api_export import bench as _bench

    return _bench(model_path, runner, device, **kwargs)
