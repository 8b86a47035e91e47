"""The values the planner passes around: options, candidates, budget lines and the plan (pure).

`edgekit.planner.search` makes them, `edgekit.planner.choice` chooses among candidates, `edgekit.planner.plan_json`
writes them
as JSON. Budget keys are `edgekit.budgets.BUDGET_KEYS`: flash_bytes, ram_bytes, latency_ms, energy_mj.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from types import MappingProxyType

from edgekit.budgets import BUDGET_KEYS, BudgetLine
from edgekit.precisions import PRECISIONS

FORMAT_VERSION = 1  # of plan.json
DEFAULT_MARGIN = 0.9
DEFAULT_ACCURACY_TOLERANCE = 0.01
KINDS = ("original", "pruned", "student")
BUDGET_OPTIONS = {"flash_bytes": "--max-flash", "ram_bytes": "--max-ram", "latency_ms": "--max-latency-ms",
                  "energy_mj": "--max-energy-mj"}
LOWER_IS_BETTER_METRICS = frozenset({"mse", "loss"})


@dataclass(frozen=True)
class PlannerOptions:
    """margin: plan to this share of each budget. min_channels: the fewest channels a group keeps.
    accuracy_tolerance: the accuracy drop (absolute, e.g. 0.01 = 1 point) still called a fit for purpose."""

    margin: float = DEFAULT_MARGIN
    min_channels: int = 1
    step_fraction: float = 0.125
    max_evaluations: int = 20_000
    accuracy_tolerance: float = DEFAULT_ACCURACY_TOLERANCE
    memory_opt: bool = True  # TFLM int8: RAM predicted with edgekit's operator order + offline plan (export default)

    def __post_init__(self) -> None:
        if not 0.0 < self.margin <= 1.0:
            raise ValueError(f"margin must be in (0, 1], got {self.margin}")


DEFAULT_OPTIONS = PlannerOptions()


@dataclass(frozen=True)
class LayerWidth:
    """Output channels of one channel-creating layer (conv, dense ...) before and after; kept indices if cut."""

    name: str
    op: str
    channels_before: int | None   # None for a student (a new architecture)
    channels_after: int
    kept_channels: tuple[int, ...] | None = None


@dataclass(frozen=True)
class StudentSpec:
    """How to build a student again: `method` is 'family' (edgekit.distill.students.student_for),
    'shrink_teacher' or 'drop_residual_blocks'."""

    method: str
    description: str
    family: str | None = None
    width: int | None = None
    depth: int | None = None
    width_multiplier: float | None = None
    dropped_blocks: tuple[str, ...] = ()
    target_macs: int | None = None    # family: student_for's target (with family and depth it rebuilds the same)


@dataclass(frozen=True)
class Candidate:
    """One way to fit the device, with its predicted costs (every BUDGET_KEYS entry) and accuracy if evaluated."""

    kind: str                                     # original | pruned | student
    description: str
    precision: str
    predicted: Mapping[str, float]
    fits: bool                                    # every set budget <= its limit
    fits_margin: bool                             # every set budget <= margin x its limit
    macs: int
    params: int
    layers: tuple[LayerWidth, ...] = ()
    keep: Mapping[int, frozenset[int]] | None = None   # pruned: kept units per channel group
    student: StudentSpec | None = None
    importance_kept: float | None = None          # pruned: share of channel importance kept
    accuracy: float | None = None                 # on the user's validation data, after a short fine-tune
    metric: str | None = None                     # 'accuracy' (higher is better) or 'mse' (lower is better)

    def __post_init__(self) -> None:
        object.__setattr__(self, "predicted", MappingProxyType(dict(self.predicted)))

    @property
    def label(self) -> str:
        return f"{self.kind} {self.precision}: {self.description}"

    def architecture(self) -> tuple:
        """Equal for candidates that are the same network at different precisions (evaluate once)."""
        if self.kind == "pruned":
            return ("pruned", tuple(sorted((k, tuple(sorted(v))) for k, v in (self.keep or {}).items())))
        return (self.kind, self.student.description if self.student else "")

    def to_dict(self) -> dict:
        return _candidate_to_dict(self)


@dataclass(frozen=True)
class Plan:
    model: str
    device: str
    chosen: Candidate
    budgets: tuple[BudgetLine, ...]
    binding_budget: str | None      # the set budget with the least headroom
    candidates: tuple[Candidate, ...]
    explanation: tuple[str, ...]
    margin: float
    accuracy_tolerance: float | None = None
    baseline_accuracy: float | None = None   # the original model on the same validation data
    metric: str | None = None

    @property
    def precision(self) -> str:
        return self.chosen.precision

    @property
    def predicted(self) -> dict[str, float]:
        return {b.budget: b.predicted for b in self.budgets}

    @property
    def limits(self) -> dict[str, float | None]:
        return {b.budget: b.limit for b in self.budgets}

    @property
    def fits(self) -> bool:
        return all(b.fits is not False for b in self.budgets)

    def to_dict(self) -> dict:
        """The JSON object `edgekit plan --json` prints and `plan.json` holds."""
        return _plan_to_dict(self)


def precision_order(profile) -> tuple[str, ...]:
    """The profile's precisions the cost model covers, preferred first."""
    supported = [p for p in profile.precisions_supported if p in PRECISIONS]
    ordered = [profile.precision_preferred] + [p for p in supported if p != profile.precision_preferred]
    return tuple(p for p in dict.fromkeys(ordered) if p in PRECISIONS)


def limits_of(budgets) -> dict[str, float]:
    """The set budgets (a profiles.Budgets or a mapping) as {key: limit}."""
    values = budgets.as_dict() if hasattr(budgets, "as_dict") else dict(budgets)
    return {k: float(values[k]) for k in BUDGET_KEYS if values.get(k) is not None}


def within(costs: Mapping[str, float], limits: Mapping[str, float], share: float = 1.0) -> bool:
    return all(costs[k] <= share * limit for k, limit in limits.items())


def worst_ratio(candidate: Candidate, limits: Mapping[str, float]) -> float:
    return max((candidate.predicted[k] / limit for k, limit in limits.items()), default=0.0)


def with_accuracy(candidate: Candidate, value: float, metric: str) -> Candidate:
    return replace(candidate, accuracy=float(value), metric=metric)


# ----------------------------------------------------------------- JSON (plan.json, plan --json)

def _candidate_to_dict(c: Candidate) -> dict:
    return {
        "kind": c.kind, "description": c.description, "precision": c.precision,
        "predicted": {k: c.predicted[k] for k in BUDGET_KEYS}, "fits": c.fits, "fits_margin": c.fits_margin,
        "macs": c.macs, "params": c.params, "importance_kept": c.importance_kept, "accuracy": c.accuracy,
        "metric": c.metric, "layers": [_layer_to_dict(layer) for layer in c.layers],
        "keep": None if c.keep is None else {str(g): sorted(units) for g, units in sorted(c.keep.items())},
        "student": None if c.student is None else _student_to_dict(c.student),
    }


def _layer_to_dict(layer: LayerWidth) -> dict:
    out = asdict(layer)
    out["kept_channels"] = None if layer.kept_channels is None else list(layer.kept_channels)
    return out


def _student_to_dict(spec: StudentSpec) -> dict:
    out = asdict(spec)
    out["dropped_blocks"] = list(spec.dropped_blocks)
    return out


def _plan_to_dict(plan: Plan) -> dict:
    """The JSON object `edgekit plan --json` prints and `plan.json` holds."""
    lines = {b.budget: b for b in plan.budgets}
    return {
        "edgekit_plan": FORMAT_VERSION,
        "model": plan.model,
        "device": plan.device,
        "precision": plan.precision,
        "kind": plan.chosen.kind,
        "margin": plan.margin,
        "binding_budget": plan.binding_budget,
        "budgets": {k: lines[k].limit for k in BUDGET_KEYS},
        "predicted": {k: lines[k].predicted for k in BUDGET_KEYS},
        "fits": {k: lines[k].fits for k in BUDGET_KEYS},
        "headroom": {k: lines[k].headroom for k in BUDGET_KEYS},
        "basis": {k: lines[k].basis for k in BUDGET_KEYS},
        "fits_all": plan.fits,
        "layers": [_layer_to_dict(layer) for layer in plan.chosen.layers],
        "student": None if plan.chosen.student is None else _student_to_dict(plan.chosen.student),
        "accuracy": plan.chosen.accuracy,
        "metric": plan.metric,
        "baseline_accuracy": plan.baseline_accuracy,
        "accuracy_tolerance": plan.accuracy_tolerance,
        "chosen": _candidate_to_dict(plan.chosen),
        "candidates": [_candidate_to_dict(c) for c in plan.candidates],
        "explanation": list(plan.explanation),
    }
