"""`check`: the CI gate. Does this model (what the pipeline ships) still fit the device, and did it regress?

A .tflite is checked as it is: its size measured, its ops read from the flatbuffer against the runtime's
kernels, its TFLite Micro arena measured (MCU profiles, `edgekit.runners.tflm`), latency and energy
predicted by the profile's cost model from the file's own ops. A Keras model is first exported in memory
at the profile's precision (stripped for TFLM, as `edgekit export --device` does), then checked the same
way. With a baseline (an earlier `check --json` or `fit` report.json), a figure that grows by more than
the tolerance fails the check even while under budget.

    >>> result = check("model.tflite", "nrf52840", max_flash="256KB")    # doctest: +SKIP
    >>> result.passed, [line.budget for line in result.over_budget()]     # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import numpy as np

from edgekit.budgets import BUDGET_KEYS, BUDGET_LABELS, BudgetLine, format_budget
from edgekit.errors import BadInputError

DEFAULT_TOLERANCE = 0.05
KERAS_SUFFIXES = (".h5", ".hdf5", ".keras")


@dataclass(frozen=True)
class Regression:
    """One figure compared with the baseline's."""

    budget: str
    baseline: float
    current: float
    tolerance: float                 # allowed growth, a fraction (0.05 = 5 %)

    @property
    def change(self) -> float:
        """Relative change, +0.1 = 10 % larger than the baseline."""
        return self.current / self.baseline - 1.0 if self.baseline else 0.0

    @property
    def regressed(self) -> bool:
        return self.current > self.baseline * (1.0 + self.tolerance)

    def describe(self) -> str:
        label = BUDGET_LABELS[self.budget]
        return (f"{label} {format_budget(self.budget, self.current)} vs baseline "
                f"{format_budget(self.budget, self.baseline)} ({100 * self.change:+.1f}%, tolerance "
                f"{100 * self.tolerance:.3g}%)")


@dataclass(frozen=True)
class CheckResult:
    model_path: str
    model_format: str                # "tflite" or "keras" (exported in memory for the check)
    device: str
    runtime: str
    precision: str
    budgets: tuple[BudgetLine, ...]  # measured where this host can measure, predicted otherwise
    ops: tuple[str, ...]
    unsupported_ops: tuple[str, ...]
    regressions: tuple[Regression, ...] = ()
    baseline_path: str | None = None
    notes: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def fits(self) -> bool:
        """Every budget met and every op has a kernel on the device's runtime."""
        return not self.unsupported_ops and all(b.fits is not False for b in self.budgets)

    @property
    def passed(self) -> bool:
        return self.fits and not any(r.regressed for r in self.regressions)

    def over_budget(self) -> list[BudgetLine]:
        return [b for b in self.budgets if b.fits is False]

    def failures(self) -> list[str]:
        """One line per failed check: each budget over (by how much), unsupported ops, each regression."""
        lines = []
        for b in self.over_budget():
            value = b.measured if b.measured is not None else b.predicted
            kind = "measured" if b.measured is not None else "predicted"
            lines.append(f"{BUDGET_LABELS[b.budget]}: {kind} {format_budget(b.budget, value)} is over the "
                         f"{format_budget(b.budget, b.limit)} budget by {format_budget(b.budget, value - b.limit)} "
                         f"({100 * (value / b.limit - 1):.1f}%)")
        if self.unsupported_ops:
            lines.append(f"ops: {self.runtime} has no kernel for {', '.join(self.unsupported_ops)}")
        lines += [f"regression: {r.describe()}" for r in self.regressions if r.regressed]
        return lines

    def to_dict(self) -> dict:
        """The `check --json` object; its `budgets` has the shape of a fit report's (either is a baseline)."""
        return {
            "model_path": self.model_path, "format": self.model_format, "device": self.device,
            "runtime": self.runtime, "precision": self.precision, "fits": self.fits, "passed": self.passed,
            "budgets": {b.budget: {"predicted": b.predicted, "measured": b.measured, "limit": b.limit,
                                   "fits": b.fits, "measured_by": b.measured_by} for b in self.budgets},
            "ops": list(self.ops), "unsupported_ops": list(self.unsupported_ops),
            "baseline": None if self.baseline_path is None else {
                "path": self.baseline_path,
                "comparisons": {r.budget: {"baseline": r.baseline, "current": r.current, "change": r.change,
                                           "tolerance": r.tolerance, "regressed": r.regressed}
                                for r in self.regressions}},
            "failures": self.failures(), "notes": list(self.notes), "seconds": self.seconds,
        }


def parse_tolerance(text: str | float | None) -> float:
    """'5%', '5' (percent) or '0.5%' -> fraction; BadInputError for anything else or a negative value."""
    if text is None:
        return DEFAULT_TOLERANCE
    raw = str(text).strip()
    try:
        value = float(raw.removesuffix("%")) / 100.0
    except ValueError:
        raise BadInputError(f"--tolerance {text!r}: not a percentage (use e.g. 5% or 2.5)") from None
    if not np.isfinite(value) or value < 0:
        raise BadInputError(f"--tolerance {text!r}: must be a percentage of 0 or more")
    return value


def read_baseline(path: str | os.PathLike) -> dict:
    """The figures of an earlier check/fit report: device and budget -> value (measured, else predicted)."""
    p = os.fspath(path)
    try:
        with open(p, "rb") as f:
            data = json.loads(f.read(8 << 20).decode("utf-8"))
    except FileNotFoundError:
        raise BadInputError(f"--baseline {p}: no such file (use the JSON of an earlier `edgekit check --json` "
                            "or a fit's report.json)") from None
    except (OSError, ValueError) as exc:
        raise BadInputError(f"--baseline {p}: not a readable JSON report ({type(exc).__name__}); use the JSON of "
                            "an earlier `edgekit check --json` or a fit's report.json") from None
    budgets = data.get("budgets") if isinstance(data, dict) else None
    if not isinstance(budgets, dict):
        raise BadInputError(f"--baseline {p}: no `budgets` object; use the JSON of an earlier `edgekit check "
                            "--json` or a fit's report.json")
    figures = {}
    for key in BUDGET_KEYS:
        entry = budgets.get(key)
        if not isinstance(entry, dict):
            continue
        value = next((entry.get(k) for k in ("measured", "predicted", "estimate")
                      if isinstance(entry.get(k), (int, float)) and not isinstance(entry.get(k), bool)), None)
        if value is not None and np.isfinite(value) and value > 0:
            figures[key] = float(value)
    return {"device": data.get("device"), "figures": figures}


def compare(budgets: tuple[BudgetLine, ...], baseline: dict, tolerance: float) -> tuple[Regression, ...]:
    """One comparison per figure present in both the check and the baseline."""
    out = []
    for b in budgets:
        current = b.measured if b.measured is not None else b.predicted
        base = baseline["figures"].get(b.budget)
        if current is not None and base is not None:
            out.append(Regression(b.budget, base, float(current), tolerance))
    return tuple(out)


def check(model_path: str | os.PathLike, device: str, *, baseline: str | os.PathLike | None = None,
          tolerance: str | float | None = None, data=None, trust: bool = False, **budget_overrides) -> CheckResult:
    """Check a .tflite (or a Keras model, exported in memory) against a device's budgets and a baseline.

    budget_overrides: max_flash, max_ram, max_latency_ms, max_energy_mj (strings with units or numbers).
    data: calibration samples for exporting a Keras model to int8 (synthetic ones otherwise, with a note).
    Raises BadInputError (exit 2) for an unreadable model, profile, baseline or option; never writes.
    """
    from edgekit.budgets import resolve_budgets
    from edgekit.profiles import load_profile

    start = time.monotonic()
    path = os.fspath(model_path)
    profile = load_profile(device)
    limits = resolve_budgets(profile, **budget_overrides).as_dict()
    tol = parse_tolerance(tolerance)
    base = read_baseline(baseline) if baseline is not None else None
    if base is not None and base["device"] not in (None, profile.name):
        raise BadInputError(f"--baseline {os.fspath(baseline)}: its figures are for device {base['device']!r}, "
                            f"this check is for {profile.name!r}; compare reports of the same device")
    notes: list[str] = []
    tflite_bytes, model_format, keras_model = _model_bytes(path, profile, data, trust, notes)
    budgets, ops, unsupported, precision = _figures(tflite_bytes, profile, keras_model, limits, notes)
    regressions = compare(budgets, base, tol) if base is not None else ()
    return CheckResult(path, model_format, profile.name, profile.runtime, precision, budgets, ops, unsupported,
                       regressions, os.fspath(baseline) if baseline is not None else None, tuple(notes),
                       time.monotonic() - start)


def _model_bytes(path: str, profile, data, trust: bool, notes: list[str]):
    """(.tflite bytes, format, Keras model or None); a Keras model is exported at the profile's precision."""
    if not os.path.exists(path):
        raise BadInputError(f"{path}: no such file or directory")
    if os.path.isfile(path) and not path.lower().endswith(KERAS_SUFFIXES):
        with open(path, "rb") as f:
            head = f.read(8)
        if head[4:8] == b"TFL3":
            with open(path, "rb") as f:
                return f.read(), "tflite", None
        if path.lower().endswith(".tflite"):
            raise BadInputError(f"{path}: not a TFLite flatbuffer (no 'TFL3' identifier); check the artifact "
                                "your pipeline passes to edgekit check")
    from edgekit.export.tflite import convert
    from edgekit.model_io import load_keras

    model, _ = load_keras(path, trust=trust)
    precision = profile.precision_preferred
    samples = _calibration(data, model) if precision == "int8" else None
    int8_io = profile.runtime == "tflm" and precision == "int8"
    converted = convert(model, precision, representative_data=samples, int8_io=int8_io)
    notes.append(f"Keras model exported in memory at {precision}" + (" with int8 input/output" if int8_io else ""))
    notes += list(converted.warnings)
    return converted.tflite_bytes, "keras", model


def _calibration(data, model):
    if data is None:
        return None
    from edgekit.data import as_dataset

    return as_dataset(data, model.input_shape, "data").x


def _figures(tflite_bytes: bytes, profile, keras_model, limits: dict, notes: list[str]):
    from edgekit.ir.ops import supported
    from edgekit.workflows.tflite_figures import tflite_figures

    figures = tflite_figures(tflite_bytes, profile)
    unsupported = tuple(dict.fromkeys(op for op in figures.ops if not supported(op, profile.runtime)))
    overhead = profile.cost_model.runtime_overhead_ram_bytes
    arena = None
    if profile.runtime == "tflm" and not unsupported:
        if keras_model is not None:
            from edgekit.export.mcu import build_mcu_sources

            mcu = build_mcu_sources(tflite_bytes, "model", keras_model=keras_model)
            tflite_bytes, arena = mcu.tflite_bytes, mcu.arena_bytes
            notes.append("stripped for TFLM (names, signatures, metadata) as `edgekit export --device` writes it")
        else:
            from edgekit.runners.tflm import measure_arena

            arena = measure_arena(tflite_bytes).arena_bytes
        notes.append("RAM measured: smallest TFLM arena (bisected on this host, 64-bit) + the profile's runtime "
                     "overhead")
    elif profile.runtime == "tflm":
        notes.append("RAM not measured: TFLM cannot load a model with ops it has no kernel for")
    if profile.kind != "host":
        notes.append(f"latency and energy predicted by the {profile.name} cost model from the file's ops; "
                     "no device or Cortex-M emulator is attached to measure them")
    arena_by = "TFLM arena (bisected) + runtime overhead"
    lines = (
        BudgetLine("flash_bytes", limits["flash_bytes"], None, measured=len(tflite_bytes), measured_by=".tflite size"),
        BudgetLine("ram_bytes", limits["ram_bytes"], figures.peak_activation_bytes + overhead,
                   "live activations + runtime overhead", measured=None if arena is None else arena + overhead,
                   measured_by=None if arena is None else arena_by),
        BudgetLine("latency_ms", limits["latency_ms"], figures.latency_ms, f"cost model ({profile.name})"),
        BudgetLine("energy_mj", limits["energy_mj"], figures.energy_mj, "latency x active power"),
    )
    return lines, figures.ops, unsupported, figures.precision


__all__ = ["DEFAULT_TOLERANCE", "CheckResult", "Regression", "check", "compare", "parse_tolerance",
           "read_baseline"]
