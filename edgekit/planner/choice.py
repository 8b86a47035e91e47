"""Choose among the planner's candidates, explain the choice, or say why nothing fits (pure).

Without accuracy figures: the least change that fits (the model as it is, else the pruned model keeping the
most channel importance, else the largest student), preferring candidates that fit with the margin. With
figures from short fine-tunes on the user's data: the most accurate candidate that fits, with its drop
against the original model set beside the accuracy tolerance. Nothing fits: `DoesNotFitError` with one line
naming the binding budget, the smallest value any candidate reaches and the limit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from edgekit.budgets import BUDGET_KEYS, format_budget
from edgekit.costmodel.analysis import analyze_graph
from edgekit.costmodel.predict import predicted_costs
from edgekit.errors import DoesNotFitError
from edgekit.ir.graph import Graph
from edgekit.planner.types import (
    BUDGET_OPTIONS,
    DEFAULT_OPTIONS,
    LOWER_IS_BETTER_METRICS,
    BudgetLine,
    Candidate,
    Plan,
    PlannerOptions,
    limits_of,
    precision_order,
    worst_ratio,
)


def _is_better_metric(metric: str | None) -> Callable[[float], float]:
    return (lambda v: -v) if metric in LOWER_IS_BETTER_METRICS else (lambda v: v)


def candidates_to_evaluate(candidates: Sequence[Candidate], k: int) -> list[Candidate]:
    """Up to k fitting candidates of distinct architectures worth a short fine-tune: the least changed first
    (original, pruned by importance kept), with the largest fitting student always among them."""
    fitting = sorted((c for c in candidates if c.fits), key=lambda c: (not c.fits_margin, _default_rank(c)))
    distinct: dict[tuple, Candidate] = {}
    for c in fitting:
        distinct.setdefault(c.architecture(), c)
    ranked = list(distinct.values())
    chosen = ranked[:k]
    students = [c for c in ranked if c.kind == "student"]
    if k >= 2 and students and not any(c.kind == "student" for c in chosen):
        chosen[-1] = students[0]
    return chosen


def _default_rank(c: Candidate, order: Sequence[str] = ()) -> tuple:
    precision_rank = order.index(c.precision) if c.precision in order else 0
    if c.kind == "original":
        return (0, precision_rank, 0.0)
    if c.kind == "pruned":
        return (1, -(c.importance_kept or 0.0), precision_rank)
    return (2, -c.macs, precision_rank)


def _choose(candidates: Sequence[Candidate], order: Sequence[str], options: PlannerOptions,
            baseline: float | None) -> tuple[Candidate, list[str]]:
    fitting = [c for c in candidates if c.fits]
    safe = [c for c in fitting if c.fits_margin]
    pool = safe or fitting
    evaluated = [c for c in pool if c.accuracy is not None]
    reasons = []
    if evaluated:
        better = _is_better_metric(evaluated[0].metric)
        best = max(evaluated, key=lambda c: (better(c.accuracy), [-x for x in _default_rank(c, order)]))
        reasons.append(f"chose {best.label}: the best {best.metric} ({best.accuracy:.4f}) of the "
                       f"{len(evaluated)} candidate(s) evaluated on the data")
        if baseline is not None and best.metric not in LOWER_IS_BETTER_METRICS:
            drop = baseline - best.accuracy
            verdict = "within" if drop <= options.accuracy_tolerance else "more than"
            reasons.append(f"{best.metric} {best.accuracy:.4f} vs {baseline:.4f} for the original model: a drop "
                           f"of {drop:+.4f}, {verdict} the tolerance of {options.accuracy_tolerance:g}"
                           + ("" if drop <= options.accuracy_tolerance else
                              "; longer fine-tuning or distillation (edgekit prune / distill) may recover it"))
    else:
        best = min(pool, key=lambda c: _default_rank(c, order))
        why = {"original": "the model fits as it is", "pruned": "the pruned model keeping the most channel "
               "importance among those that fit", "student": "pruning cannot fit; the largest student that fits"}
        reasons.append(f"chose {best.label}: {why[best.kind]}")
        if best.kind == "student":
            reasons.append("a student starts from new weights: distil it from the model (edgekit distill, needs "
                           "training data) before use")
    if not best.fits_margin:
        reasons.append(f"it fits the limits but not the {1 - options.margin:.0%} margin: measure it on the device")
    return best, reasons


def decide(model: str, graph: Graph, profile, budgets, candidates: Sequence[Candidate],
           options: PlannerOptions = DEFAULT_OPTIONS, *, notes: Sequence[str] = (),
           baseline_accuracy: float | None = None) -> Plan:
    """Choose among `candidates` and explain why; raise DoesNotFitError when none fits."""
    limits = limits_of(budgets)
    if not any(c.fits for c in candidates):
        raise DoesNotFitError(impossible_message(candidates, limits, graph, profile))
    order = precision_order(profile)
    chosen, reasons = _choose(candidates, order, options, baseline_accuracy)
    bases = {k: basis for k, (_, basis) in predicted_costs(analyze_graph(graph), profile, chosen.precision,
                                                           memory_opt=options.memory_opt).items()}
    all_limits = budgets.as_dict() if hasattr(budgets, "as_dict") else dict(budgets)
    lines = tuple(BudgetLine(k, all_limits.get(k), chosen.predicted[k], bases[k],
                             margin=options.margin) for k in BUDGET_KEYS)
    binding = min((b for b in lines if b.limit), key=lambda b: b.headroom, default=None)
    explanation = [_budget_summary(profile, limits, options.margin), *notes]
    students = [c for c in candidates if c.kind == "student"]
    if students:
        explanation.append(f"{len(students)} student(s) considered, {sum(c.fits for c in students)} fit: "
                           + "; ".join(f"{c.description} ({c.precision}, {c.macs:,} MACs)" for c in students[:4])
                           + (" ..." if len(students) > 4 else ""))
    explanation += reasons
    if binding is not None:
        explanation.append(f"binding budget: {binding.budget}: predicted "
                           f"{format_budget(binding.budget, binding.predicted)} of "
                           f"{format_budget(binding.budget, binding.limit)} ({binding.headroom:.0%} headroom)")
    metric = next((c.metric for c in candidates if c.metric), None)
    return Plan(model, profile.name, chosen, lines, binding.budget if binding else None, tuple(candidates),
                tuple(explanation), options.margin, options.accuracy_tolerance, baseline_accuracy, metric)


def _budget_summary(profile, limits: Mapping[str, float], margin: float) -> str:
    if not limits:
        return f"no budgets set for {profile.name}: every candidate fits"
    listed = ", ".join(f"{k} <= {format_budget(k, v)}" for k, v in limits.items())
    return f"budgets on {profile.name}: {listed}; planned to {margin:.0%} of each (predictions have error)"


def input_bytes(graph: Graph, precision: str) -> int:
    """Bytes of the model's input tensors at a precision (int8 models take int8 inside the arena)."""
    per_element = 1 if precision == "int8" else 4
    return sum(graph.tensors[t].elements * per_element for t in graph.inputs)


def impossible_message(candidates: Sequence[Candidate], limits: Mapping[str, float], graph: Graph, profile) -> str:
    """One line: the binding budget, the smallest value any candidate reaches, its limit, what to do."""
    if not candidates:
        return f"{profile.name}: no candidate could be built for this model"
    smallest = {k: min(c.predicted[k] for c in candidates) for k in limits}
    unreachable = {k: smallest[k] / limits[k] for k in limits if smallest[k] > limits[k]}
    if unreachable:
        key = max(unreachable, key=unreachable.get)
        hint = ""
        if key == "ram_bytes":
            precision = min((c.precision for c in candidates), key=lambda p: input_bytes(graph, p))
            hint = f" (input tensor alone {format_budget(key, input_bytes(graph, precision))}, runtime " \
                   f"{format_budget(key, profile.cost_model.runtime_overhead_ram_bytes)})"
        return (f"{key}: even the smallest candidate needs {format_budget(key, smallest[key])}{hint} > limit "
                f"{format_budget(key, limits[key])} on {profile.name}; raise {BUDGET_OPTIONS[key]} or use a "
                "smaller model or input")
    closest = min(candidates, key=lambda c: worst_ratio(c, limits))
    key = max(limits, key=lambda k: closest.predicted[k] / limits[k])
    return (f"{key}: no candidate meets every budget at once on {profile.name}; the closest ({closest.label}) needs "
            f"{format_budget(key, closest.predicted[key])} > limit {format_budget(key, limits[key])}; relax "
            f"{BUDGET_OPTIONS[key]} or another budget")
