"""One pruning step (group, score, select, cut) and the iterative loop that alternates it with fine-tuning.

The iterative schedule is geometric: after step k of n the model keeps (target / start) ** (k / n) of
its free channels, MACs or params, so every step removes about the same share of what is left.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from edgekit.channels.groups import ChannelGroups, build_groups
from edgekit.channels.keep import Targets, keep_for_target, select_keep
from edgekit.costmodel.layer_costs import analyze
from edgekit.ir.from_keras import from_keras
from edgekit.prune.importance import ImportanceInputs, group_scores, taylor_inputs
from edgekit.prune.surgery import apply_keep, node_weights
from edgekit.prune.training import Metric, evaluate, fine_tune


@dataclass(frozen=True)
class SelectionOptions:
    """How channels are chosen in every step."""

    importance: str = "l1"
    global_ranking: bool = True
    min_channels: int = 1
    round_to: int = 1
    taylor_samples: int = 512
    batch_size: int = 64


@dataclass(frozen=True)
class StepResult:
    model: object
    groups: ChannelGroups          # of the model before this step
    keep: dict[int, frozenset[int]]
    ratio: float                   # share of free channels this step removed (as asked of select_keep)
    notices: tuple[str, ...]


@dataclass(frozen=True)
class PruneStep:
    """Progress of the iterative loop after one prune + fine-tune step."""

    step: int
    steps: int
    macs: int
    params: int
    metric: Metric | None
    seconds: float

    def __str__(self) -> str:
        metric = f", {self.metric}" if self.metric else ""
        return f"step {self.step}/{self.steps}: {self.macs:,} MACs, {self.params:,} params{metric} " \
               f"({self.seconds:.1f} s)"


def free_channels(groups: ChannelGroups) -> int:
    return sum(g.prunable_units for g in groups.prunable_groups)


def prune_step(model, options: SelectionOptions, *, ratio: float | None = None, targets: Targets | None = None,
               x: np.ndarray | None = None, y: np.ndarray | None = None) -> StepResult:
    """Group the channels of `model`, score them, keep the best and rebuild a smaller model."""
    graph = from_keras(model)
    groups = build_groups(graph)
    activation_gradients = {}
    if options.importance == "taylor":
        n = min(len(x), options.taylor_samples)
        activation_gradients = taylor_inputs(model, groups, x[:n], None if y is None else y[:n],
                                             batch_size=options.batch_size)
    inputs = ImportanceInputs(groups, node_weights(model, graph), activation_gradients)
    scores, notices = group_scores(groups, options.importance, inputs)
    select = {"global_ranking": options.global_ranking, "min_channels": options.min_channels,
              "round_to": options.round_to}
    if targets:
        keep, ratio = keep_for_target(groups, scores, targets, **select)
    else:
        keep = select_keep(groups, scores, float(ratio or 0.0), **select)
    return StepResult(apply_keep(model, groups, keep), groups, keep, float(ratio or 0.0), notices)


def _step_targets(final: Targets, start: dict[str, int], share: float) -> Targets:
    """The budgets after `share` of the way, on a geometric path from the start values to the final ones."""
    def at(name: str, limit: int | None) -> int | None:
        if limit is None or start[name] <= limit:
            return limit
        return int(start[name] * (limit / start[name]) ** share)

    return replace(final, macs=at("MACs", final.macs), params=at("params", final.params),
                   size_bytes=at("bytes", final.size_bytes))


def prune_iteratively(model, options: SelectionOptions, *, steps: int, epochs: int, final_epochs: int,
                      train: tuple[np.ndarray, np.ndarray | None], val: tuple[np.ndarray, np.ndarray | None] | None,
                      ratio: float | None = None, targets: Targets | None = None,
                      learning_rate: float = 1e-3, batch_size: int = 64,
                      progress: Callable[[PruneStep], None] | None = None,
                      seed: int = 0) -> tuple[object, tuple[PruneStep, ...], tuple[str, ...]]:
    """Prune in `steps` geometric steps towards `ratio` or `targets`, fine-tuning `epochs` after each step
    (and `final_epochs` more at the end).

    Returns (model, one PruneStep per step, notices). y None in train/val: fine-tune and evaluate
    against the original model's outputs.
    """
    x, y = train
    start = targets.measure(from_keras(model)) if targets else {}
    free_start = free_channels(build_groups(from_keras(model)))
    current, records, notices = model, [], []
    for k in range(1, steps + 1):
        began = time.perf_counter()
        share = k / steps
        kwargs: dict = {}
        if targets:
            kwargs["targets"] = _step_targets(targets, start, share)
        if ratio is not None:
            free_now = free_channels(build_groups(from_keras(current)))
            wanted = free_start * (1.0 - ratio) ** share
            kwargs["ratio"] = min(1.0, max(0.0, 1.0 - wanted / free_now)) if free_now else 0.0
        result = prune_step(current, options, x=x, y=y, **kwargs)
        notices.extend(n for n in result.notices if n not in notices)
        current = result.model
        epochs_now = epochs + (final_epochs if k == steps else 0)
        fine_tune(current, x, y, epochs=epochs_now, batch_size=batch_size, learning_rate=learning_rate,
                  teacher=model, seed=seed + k)
        metric = evaluate(current, *val, teacher=model) if val is not None else None
        cost = analyze(from_keras(current))
        record = PruneStep(k, steps, cost.macs, cost.params, metric, time.perf_counter() - began)
        records.append(record)
        if progress is not None:
            progress(record)
    return current, tuple(records), tuple(notices)
