"""`inspect`: analyse a model and, with a device, check each budget against its estimate."""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.budgets import BudgetLine, resolve_budgets
from edgekit.costmodel.analysis import Analysis, analyze_graph
from edgekit.costmodel.predict import check_budgets
from edgekit.ir.from_keras import from_keras
from edgekit.model_io import load_keras
from edgekit.model_io.detect import is_plain_saved_model, is_tflite_file
from edgekit.profiles import load_profile
from edgekit.workflows.inspect_tflite import (
    SAVED_MODEL_FORMAT,
    TFLITE_FORMAT,
    analyze_saved_model,
    analyze_tflite_file,
)


@dataclass(frozen=True)
class InspectResult:
    model_path: str | None
    model_format: str | None
    analysis: Analysis
    profile: object | None          # edgekit.profiles.DeviceProfile
    checks: tuple[BudgetLine, ...]
    arena_steps: tuple = ()         # edgekit.export.memory_plan.ArenaStep: measured TFLM arena per optimisation
    regions: object | None = None   # edgekit.costmodel.placement.RegionCheck: profiles with RAM regions

    @property
    def fits(self) -> bool | None:
        """True/False with a device and at least one budget; None without."""
        verdicts = [c.fits for c in self.checks if c.fits is not None]
        verdicts += [self.regions.fits] if self.regions is not None else []
        return all(verdicts) if verdicts else None

    def to_dict(self) -> dict:
        """The `edgekit inspect --json` object."""
        a = self.analysis
        precision = self.profile.precision_preferred if self.profile is not None else "int8"
        act_precision = "int8" if precision == "int8" else "float32"
        out = {
            "model": self.model_path,
            "format": self.model_format,
            "params": a.params,
            "macs": a.macs,
            "ops": a.cost.ops,
            "precision": precision,
            "peak_activation_bytes": a.peak_activation_bytes[act_precision],
            "peak_activation_bytes_by_precision": a.peak_activation_bytes,
            "weight_bytes": vars(a.cost.weight_bytes),
            "tflite_bytes_estimate": {p: e.flash_bytes for p, e in a.tflite_bytes.items()},
            "tflm_arena_estimate_bytes": a.tflm_arena.arena_bytes,
            "tflite_ops_source": a.ops_source,
            "unsupported_ops": {rt: [{"layer": u.layer, "op": u.op} for u in ops] for rt, ops in a.unsupported.items()},
            "layers": [{
                "name": c.name, "op": c.op, "output_shape": list(c.output_shape), "params": c.params, "macs": c.macs,
                "ops": c.ops, "weight_bytes": vars(c.weight_bytes), "activation_bytes": c.activation_bytes_float32,
                "activation_bytes_int8": c.activation_bytes_int8, "tflite_ops": list(a.layer_ops.get(c.name, ())),
            } for c in a.cost.layers],
        }
        if self.profile is not None:
            out["device"] = self.profile.name
            out["runtime"] = self.profile.runtime
            out["budgets"] = {c.budget: {"estimate": c.predicted, "limit": c.limit, "fits": c.fits, "basis": c.basis}
                              for c in self.checks}
            out["predicted"] = {c.budget: c.predicted for c in self.checks}
            out["fits"] = self.fits
        if self.regions is not None:
            out["ram_regions"] = self.regions.to_dict()
        if self.arena_steps:
            out["tflm_arena_measured"] = [vars(step) for step in self.arena_steps]
        return out


def inspect(model_or_path, device: str | None = None, trust: bool = False, measure_arena: bool = False,
            **budget_overrides) -> InspectResult:
    """Analyse a model and, with a device, check each budget against its estimate.

    budget_overrides: max_flash, max_ram, max_latency_ms, max_energy_mj (strings with units or numbers).
    measure_arena (TFLM devices): convert to int8 and measure TFLM's arena with TFLM's own plan and with
    each of edgekit's memory optimisations (edgekit.export.memory_plan.optimise_arena); takes seconds.
    """
    if is_tflite_file(model_or_path):   # a converted model: read from the flatbuffer, nothing to convert
        model, model_format, analysis = None, TFLITE_FORMAT, analyze_tflite_file(model_or_path)
    elif is_plain_saved_model(model_or_path):   # not Keras: read through its float32 TFLite conversion
        model, model_format, analysis = None, SAVED_MODEL_FORMAT, analyze_saved_model(model_or_path)
    else:
        model, loaded = load_keras(model_or_path, trust=trust)
        model_format = loaded.format if loaded is not None else None
        analysis = analyze_graph(from_keras(model))
    profile, regions = None, None
    checks: tuple[BudgetLine, ...] = ()
    if device is not None:
        profile = load_profile(device)
        budgets = resolve_budgets(profile, **budget_overrides)
        checks = tuple(check_budgets(analysis, profile, budgets))
        from edgekit.costmodel.placement import check_regions

        regions = check_regions(analysis, profile) if profile.runtime == "tflm" else None
    steps = _measured_arena_steps(model) if measure_arena and model is not None and profile is not None \
        and profile.runtime == "tflm" else ()
    return InspectResult(
        model_path=str(model_or_path) if model_format is not None else None,
        model_format=model_format,
        analysis=analysis, profile=profile, checks=checks, arena_steps=steps, regions=regions)


def _measured_arena_steps(model) -> tuple:
    from edgekit.export.memory_plan import optimise_arena
    from edgekit.export.strip import strip_for_mcu
    from edgekit.export.tflite import convert

    int8 = convert(model, "int8", int8_io=True).tflite_bytes  # synthetic calibration: sizes do not depend on it
    return optimise_arena(strip_for_mcu(int8).tflite_bytes).steps
