"""The planner: choose a precision, channel counts and, when pruning is not enough, a student, so a model fits a
device's budgets (pure; no TensorFlow).

Everything here works on the graph IR and the cost model: `shrink_graph` predicts the pruned IR,
`analyze_graph` + `budgets.predicted_costs` predict flash, RAM, latency and energy, importance scores come in
as numpy arrays (`edgekit.planner.evaluate` computes them from the weights). Candidates:

- original: the model as it is, at each of the profile's precisions (preferred first);
- pruned: per precision, a NetAdapt search (`edgekit.planner.netadapt`) shrinks channel groups until every budget
  holds with the margin (planned to `margin` x each limit, since predictions have error);
- student: smaller architectures from `edgekit.distill.students`, built and measured by the caller.

`edgekit.planner.choice.decide` then chooses and explains (or raises DoesNotFitError); the values are in
`edgekit.planner.types` and re-exported here.

    >>> originals = original_candidates(graph, profile, budgets, options)                 # doctest: +SKIP
    >>> pruned, notes = pruning_candidates(groups, scores, profile, budgets, options)      # doctest: +SKIP
    >>> decide(graph.name, graph, profile, budgets, originals + pruned, options).chosen   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

import numpy as np

from edgekit.budgets import format_budget
from edgekit.channels.axes import SOURCE_OPS
from edgekit.channels.groups import ChannelGroups
from edgekit.channels.keep import shrink_graph
from edgekit.costmodel.analysis import Analysis
from edgekit.costmodel.layer_costs import analyze
from edgekit.costmodel.memory import peak_activation_bytes
from edgekit.costmodel.predict import predicted_costs
from edgekit.costmodel.size import estimate_tflite_bytes, estimate_tflm_arena
from edgekit.ir.graph import Graph
from edgekit.planner.choice import candidates_to_evaluate, decide, impossible_message
from edgekit.planner.netadapt import floor_keep, importance_kept, netadapt
from edgekit.planner.types import (
    DEFAULT_ACCURACY_TOLERANCE,
    DEFAULT_MARGIN,
    DEFAULT_OPTIONS,
    BudgetLine,
    Candidate,
    LayerWidth,
    Plan,
    PlannerOptions,
    StudentSpec,
    limits_of,
    precision_order,
    with_accuracy,
    within,
    worst_ratio,
)

__all__ = [
    "DEFAULT_ACCURACY_TOLERANCE", "DEFAULT_MARGIN", "BudgetLine", "Candidate", "LayerWidth", "Plan", "PlannerOptions",
    "StudentSpec", "candidates_to_evaluate", "cost_fn", "decide", "impossible_message", "layer_widths",
    "lean_analysis", "make_candidate", "original_candidates", "precision_order", "pruning_candidates",
    "student_candidate", "with_accuracy",
]


# ------------------------------------------------------------------------------------------- costs


def lean_analysis(graph: Graph, profile, precision: str) -> Analysis:
    """The parts of `analyze_graph` that `predicted_costs` reads for one precision and runtime (4x faster).

    The other fields are left empty (tflm_arena None on litert profiles) so a new reader fails loudly instead
    of reading a made-up value; tests/planner/test_search.py checks the predictions equal the full analysis'.
    """
    tflm = profile.runtime == "tflm"
    act = "int8" if precision == "int8" else "float32"
    return Analysis(
        graph=graph, cost=analyze(graph), layer_ops={},
        peak_activation_bytes=({} if tflm and act == "int8" else {act: peak_activation_bytes(graph, act).peak_bytes}),
        tflite_bytes={precision: estimate_tflite_bytes(graph, precision)},
        tflm_arena=estimate_tflm_arena(graph) if tflm else None, unsupported={})


def cost_fn(profile, precision: str, memory_opt: bool = True) -> Callable[[Graph], dict[str, float]]:
    """graph -> {budget key: predicted value} at `precision` on `profile` (`budgets.predicted_costs`);
    memory_opt: the TFLM arena with edgekit's memory plan, as the export applies it by default."""
    def costs(graph: Graph) -> dict[str, float]:
        return {k: v for k, (v, _) in predicted_costs(lean_analysis(graph, profile, precision), profile,
                                                      precision, memory_opt=memory_opt).items()}
    return costs


def layer_widths(groups: ChannelGroups | None, graph: Graph, keep=None, student: bool = False
                 ) -> tuple[LayerWidth, ...]:
    """Output channels of every channel-creating layer; with `keep`, before and after pruning."""
    out = []
    for node in graph.nodes:
        if node.op not in SOURCE_OPS or not node.outputs:
            continue
        before = graph.tensors[node.outputs[0]].channels
        if keep is None or groups is None:
            out.append(LayerWidth(node.name, node.op, None if student else before, before))
            continue
        mask = groups.kept_mask(node.outputs[0], keep)
        kept = tuple(i for i, k in enumerate(mask) if k)
        out.append(LayerWidth(node.name, node.op, before, len(kept), kept if len(kept) < before else None))
    return tuple(out)


def make_candidate(kind: str, description: str, precision: str, graph: Graph, costs: Mapping[str, float],
                   limits: Mapping[str, float], margin: float, **extra) -> Candidate:
    cost = analyze(graph)
    return Candidate(kind, description, precision, dict(costs), within(costs, limits), within(costs, limits, margin),
                     cost.macs, cost.params, **extra)


# ------------------------------------------------------------------------------------------- search


def original_candidates(graph: Graph, profile, budgets, options: PlannerOptions) -> tuple[Candidate, ...]:
    limits = limits_of(budgets)
    layers = layer_widths(None, graph)
    return tuple(make_candidate("original", "the model as it is", p, graph,
                                cost_fn(profile, p, options.memory_opt)(graph), limits,
                                options.margin, layers=layers) for p in precision_order(profile))


def pruning_candidates(groups: ChannelGroups, scores: Mapping[int, np.ndarray], profile, budgets,
                       options: PlannerOptions = DEFAULT_OPTIONS) -> tuple[tuple[Candidate, ...], tuple[str, ...]]:
    """Per precision (preferred first), the NetAdapt-pruned model that fits with the margin (or the limit,
    when the margin is out of reach), or, when even every group at its minimum does not fit, that smallest
    model. A precision whose original costs at least as much on every budget as one already pruned to fit
    is not searched (its pruned model could only keep fewer channels). Returns candidates and notes."""
    limits = limits_of(budgets)
    if not groups.prunable_groups:
        return (), ("no channel group can be pruned (every layer's channels are frozen)",)
    out, notes = [], []
    fitted: dict[str, dict[str, float]] = {}  # precision pruned to fit -> its original's costs
    for precision in precision_order(profile):
        fn = cost_fn(profile, precision, options.memory_opt)
        original = fn(groups.graph)
        dominant = next((p for p, c in fitted.items() if all(c[k] <= original[k] for k in limits)), None)
        if dominant is not None:
            notes.append(f"{precision}: not searched: the model costs at least as much as at {dominant} on every "
                         "budget")
            continue
        candidate, note = _prune_at(groups, scores, profile, precision, fn, limits, options)
        out.append(candidate)
        notes.append(note)
        if candidate.fits:
            fitted[precision] = original
    return tuple(out), tuple(notes)


def _prune_at(groups: ChannelGroups, scores, profile, precision: str, fn, limits: Mapping[str, float],
              options: PlannerOptions) -> tuple[Candidate, str]:
    """The pruned candidate at one precision, and a note saying how it was found.

    Groups keep at least one SIMD vector (the profile's channel_multiple) of channels: fewer channels save
    flash and RAM but hardly any time on a vector unit. Only when that floor cannot fit is it lowered to
    `options.min_channels`.
    """
    simd_floor = max(options.min_channels, profile.channel_multiple)
    smallest = _smallest(groups, scores, precision, fn, limits, options, simd_floor)
    floor_note = ""
    if not smallest.fits and simd_floor > options.min_channels:
        smallest = _smallest(groups, scores, precision, fn, limits, options, options.min_channels)
        floor_note = f"; groups go below {simd_floor} channels (the SIMD width), which saves little time"
        simd_floor = options.min_channels
    if not smallest.fits:
        key = max(limits, key=lambda k: smallest.predicted[k] / limits[k])
        return smallest, (f"{precision}: pruning cannot fit: with every channel group at its minimum, {key} is "
                          f"still {format_budget(key, smallest.predicted[key])} > {format_budget(key, limits[key])}")
    # Where the margin is out of reach (e.g. a fixed runtime overhead fills most of the RAM budget), keep
    # half of the headroom that is reachable rather than planning right up to the limit.
    targets = {k: limit * options.margin if smallest.predicted[k] <= limit * options.margin
               else (smallest.predicted[k] + limit) / 2 for k, limit in limits.items()}
    result = netadapt(groups, scores, fn, targets, channel_multiple=profile.channel_multiple, min_channels=simd_floor,
                      step_fraction=options.step_fraction, max_evaluations=options.max_evaluations)
    if not result.reached:
        return smallest, (f"{precision}: the channel search stalled after {len(result.steps)} moves; using every "
                          "channel group at its minimum")
    keep = dict(result.keep)
    prunable = groups.prunable_groups
    removed = sum(g.size - len(keep[g.id]) for g in prunable)
    total = sum(g.prunable_units for g in prunable)
    candidate = make_candidate(
        "pruned", f"{removed} of {total} prunable channels removed (NetAdapt, {len(result.steps)} moves)",
        precision, shrink_graph(groups, keep), result.costs, limits, options.margin,
        layers=layer_widths(groups, groups.graph, keep), keep=MappingProxyType(keep),
        importance_kept=result.importance_kept)
    short = [k for k in limits if options.margin < 1.0 and targets[k] > limits[k] * options.margin]
    margin_note = f" (the {1 - options.margin:.0%} margin is out of reach for {', '.join(short)})" if short else ""
    return candidate, (f"{precision}: NetAdapt removed {removed} of {total} prunable channels in {len(result.steps)} "
                       f"moves ({result.evaluations} predictions), keeping {result.importance_kept:.0%} of the "
                       f"channel importance{margin_note}{floor_note}")


def _smallest(groups: ChannelGroups, scores, precision: str, fn, limits, options: PlannerOptions,
              min_channels: int) -> Candidate:
    """Every prunable group at its minimum: the smallest model pruning reaches."""
    floor = floor_keep(groups, scores, min_channels)
    graph = shrink_graph(groups, floor)
    return make_candidate("pruned", f"every channel group at its minimum ({min_channels} channel(s))", precision,
                          graph, fn(graph), limits, options.margin, layers=layer_widths(groups, groups.graph, floor),
                          keep=MappingProxyType(dict(floor)), importance_kept=importance_kept(groups, scores, floor))


def student_candidate(spec: StudentSpec, graph: Graph, profile, budgets,
                      options: PlannerOptions = DEFAULT_OPTIONS) -> Candidate:
    """A student at the first precision (preferred first) where it fits with the margin, else where it comes
    closest to fitting."""
    limits = limits_of(budgets)
    layers = layer_widths(None, graph, student=True)
    tried = [make_candidate("student", spec.description, p, graph, cost_fn(profile, p, options.memory_opt)(graph),
                            limits, options.margin, layers=layers, student=spec) for p in precision_order(profile)]
    for c in tried:
        if c.fits_margin:
            return c
    return min(tried, key=lambda c: (not c.fits, worst_ratio(c, limits)))
