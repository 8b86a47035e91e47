"""Structured pruning that really shrinks a tf_keras model: whole channels and filters removed.

    >>> from edgekit.prune import prune
    >>> result = prune(model, 0.5)                                            # doctest: +SKIP
    >>> result.model.count_params() < model.count_params()                    # doctest: +SKIP
    True
    >>> result = prune(model, importance="taylor", data=(x, y), target_macs=250_000,
    ...                iterative=True, steps=4, epochs=2)                     # doctest: +SKIP
    >>> print(result.report.summary())                                        # doctest: +SKIP

The parts, after Torch-Pruning's design: `groups` (which channels depend on each other: data),
`importance` (criteria: functions over a group), `plan` (which to keep; predicted costs), `surgery`
(the rebuilt model), `iterative` (prune and fine-tune in steps), `sparsity` (tfmot weight sparsity and
channel-L1 training). The returned model is a new dense tf_keras model; the input model is untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from edgekit.channels.axes import SOURCE_OPS
from edgekit.channels.criteria import CRITERIA, DATA_FREE_CRITERIA
from edgekit.channels.groups import ROLE_OUT, ChannelGroups, FrozenLayer, build_groups
from edgekit.channels.keep import Targets
from edgekit.costmodel.layer_costs import analyze
from edgekit.costmodel.size import estimate_tflite_bytes
from edgekit.errors import BadInputError
from edgekit.ir.from_keras import from_keras
from edgekit.prune.iterative import PruneStep, SelectionOptions, prune_iteratively, prune_step
from edgekit.prune.sparsity import SparsityResult, sparsify, train_with_channel_l1
from edgekit.prune.training import Metric, evaluate, fine_tune

DEFAULT_STEPS = 4
DEFAULT_EPOCHS_PER_STEP = 2


@dataclass(frozen=True)
class LayerChannels:
    """One layer before and after pruning; frozen_reason says why its channels were all kept (or None)."""

    name: str
    op: str
    channels_before: int
    channels_after: int
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    frozen_reason: str | None = None


@dataclass(frozen=True)
class PruneReport:
    importance: str
    data_free: bool
    global_ranking: bool
    layers: tuple[LayerChannels, ...]
    frozen: tuple[FrozenLayer, ...]
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    int8_bytes_before: int = 0      # predicted int8 TFLite file size (edgekit.costmodel.size)
    int8_bytes_after: int = 0
    steps: tuple[PruneStep, ...] = ()
    metric_before: Metric | None = None
    metric_after: Metric | None = None
    notices: tuple[str, ...] = ()

    @property
    def macs_ratio(self) -> float:
        return self.macs_after / self.macs_before if self.macs_before else 1.0

    @property
    def params_ratio(self) -> float:
        return self.params_after / self.params_before if self.params_before else 1.0

    def as_dict(self) -> dict:
        out = asdict(self)
        out["macs_ratio"], out["params_ratio"] = self.macs_ratio, self.params_ratio
        return out

    def summary(self) -> str:
        lines = [(f"params {self.params_before:,} -> {self.params_after:,} ({self.params_ratio:.1%}), "
                 f"MACs {self.macs_before:,} -> {self.macs_after:,} ({self.macs_ratio:.1%}), "
                 f"int8 TFLite ~{self.int8_bytes_before:,} -> ~{self.int8_bytes_after:,} bytes; "
                 f"importance {self.importance}{' (data-free)' if self.data_free else ''}")]
        if self.metric_before is not None and self.metric_after is not None:
            lines.append(f"{self.metric_before.name} {self.metric_before.value:.4f} -> {self.metric_after.value:.4f}")
        lines += [f"frozen: {f.node} ({f.op}): {f.reason}" for f in self.frozen]
        lines += self.notices
        return "\n".join(lines)


@dataclass(frozen=True)
class PruneResult:
    model: object
    report: PruneReport


def _as_xy(data, model, name: str) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(x, y) from a Dataset (edgekit.data), an (x, y) tuple or an x array, checked against the model input."""
    from edgekit.data import as_dataset

    dataset = as_dataset(data, model.input_shape, name)
    if dataset is None:
        return None
    if len(dataset) == 0:
        raise BadInputError(f"{name}: no samples")
    return dataset.x, dataset.y


def _check_arguments(ratio, targets: Targets, importance, data, iterative, steps, min_channels, round_to) -> None:
    if importance not in CRITERIA:
        raise BadInputError(f"unknown importance {importance!r}; use one of {', '.join(CRITERIA)}")
    if ratio is None and not targets:
        raise BadInputError("say how much to prune: a ratio (e.g. 0.5), target_macs, target_params or "
                            "target_size_bytes")
    if ratio is not None and targets:
        raise BadInputError("give either a ratio or a MAC / param / size target, not both")
    if ratio is not None and not 0.0 <= ratio < 1.0:
        raise BadInputError(f"ratio is the share of channels removed and must be in [0, 1), got {ratio}")
    for name, value in (("target_macs", targets.macs), ("target_params", targets.params),
                        ("target_size_bytes", targets.size_bytes)):
        if value is not None and value <= 0:
            raise BadInputError(f"{name} must be positive, got {value}")
    if importance == "taylor" and data is None:
        raise BadInputError("taylor importance needs data (samples to take gradients on); pass data or use l1")
    if iterative and data is None:
        raise BadInputError("iterative pruning fine-tunes between steps and needs data; pass data or drop "
                            "iterative")
    if steps < 1 or min_channels < 1 or round_to < 1:
        raise BadInputError(f"steps ({steps}), min_channels ({min_channels}) and round_to ({round_to}) must be "
                            "at least 1")


def prune(model, ratio: float | None = None, *, importance: str = "l1", data=None, target_macs: int | None = None,
          target_params: int | None = None, target_size_bytes: int | None = None, size_precision: str = "int8",
          global_ranking: bool = True, min_channels: int = 1,
          round_to: int = 1, iterative: bool = False, steps: int = DEFAULT_STEPS, epochs: int | None = None,
          final_epochs: int = 0, batch_size: int = 64, learning_rate: float = 1e-3, validation_data=None,
          l1_regularization: float = 0.0, taylor_samples: int = 512,
          progress: Callable[[PruneStep], None] | None = None, seed: int = 0) -> PruneResult:
    """Remove whole channels from a tf_keras model; returns a new, smaller dense model and a report.

    Args:
        ratio: share of the free (unfrozen) channels to remove, e.g. 0.5. Or instead:
        target_macs / target_params / target_size_bytes: prune (the least) until the model has at most
            this many MACs / params / predicted TFLite bytes at `size_precision` (edgekit.costmodel.size).
        importance: "l1", "l2", "bn" (data-free) or "taylor" (needs data).
        data: an edgekit.data.Dataset, (x, y) arrays or x alone (y None: fine-tuning matches the
            original model's outputs). Used for taylor, fine-tuning and the metric in the report.
        global_ranking: rank all channels together (normalised per group) instead of `ratio` per group.
        min_channels, round_to: every group keeps at least min_channels, counts rounded up to a multiple.
        iterative: prune in `steps` steps, fine-tuning `epochs` (default 2) after each, plus
            `final_epochs` at the end; `progress` is called after every step.
        epochs: for one-shot pruning with data, fine-tuning epochs after the cut (default 0).
        l1_regularization: with data, first train `epochs` (or 2) epochs with a channel-L1 penalty of
            this strength (BN gammas, or group lasso on filters) so whole channels approach zero.
    """
    targets = Targets(target_macs, target_params, target_size_bytes, size_precision)
    _check_arguments(ratio, targets, importance, data, iterative, steps, min_channels, round_to)
    xy = _as_xy(data, model, "data")
    options = SelectionOptions(importance, global_ranking, min_channels, round_to, taylor_samples, batch_size)
    train, val = _split(xy, _as_xy(validation_data, model, "validation data"), seed,
                        needs_training=iterative or bool(epochs) or l1_regularization > 0)
    notices: list[str] = []
    if xy is None:
        notices.append(f"no data: channels ranked by {importance} ({_criterion_words(importance)}), a data-free "
                       "criterion; no fine-tuning")
    groups = build_groups(from_keras(model))
    if importance in ("l1", "l2") and _mostly_batchnorm(groups):
        notices.append(f"most channel groups pass through BatchNormalization, which rescales filters: {importance} "
                       "filter norms rank them poorly; bn (data-free) or taylor (with data) usually keep more "
                       "accuracy")
    metric_before = evaluate(model, *val, teacher=model) if val is not None and val[1] is not None else None
    work = model
    if l1_regularization > 0:
        if train is None:
            raise BadInputError("l1_regularization trains the model first and needs data")
        work = train_with_channel_l1(model, groups, *train, strength=l1_regularization,
                                     epochs=epochs or DEFAULT_EPOCHS_PER_STEP, batch_size=batch_size,
                                     learning_rate=learning_rate, teacher=model, seed=seed)
        notices.append(f"trained {epochs or DEFAULT_EPOCHS_PER_STEP} epoch(s) with channel L1 "
                       f"{l1_regularization:g} before pruning")
    records: tuple[PruneStep, ...] = ()
    if iterative:
        pruned, records, step_notices = prune_iteratively(
            work, options, steps=steps, epochs=DEFAULT_EPOCHS_PER_STEP if epochs is None else epochs,
            final_epochs=final_epochs, train=train, val=val, ratio=ratio, targets=targets,
            learning_rate=learning_rate, batch_size=batch_size, progress=progress, seed=seed)
    else:
        x, y = train if train is not None else (None, None)
        step = prune_step(work, options, ratio=ratio, targets=targets, x=x, y=y)
        pruned, step_notices = step.model, step.notices
        if epochs and train is not None:
            fine_tune(pruned, *train, epochs=epochs + final_epochs, batch_size=batch_size,
                      learning_rate=learning_rate, teacher=model, seed=seed)
    notices.extend(step_notices)
    metric_after = evaluate(pruned, *val, teacher=model) if metric_before is not None else None
    report = _report(pruned, groups, options, xy is None, records, metric_before, metric_after, notices)
    return PruneResult(pruned, report)


def _mostly_batchnorm(groups: ChannelGroups) -> bool:
    prunable = groups.prunable_groups
    with_bn = [g for g in prunable if any(groups.graph.node(m.node).op == "BatchNormalization" for m in g.members)]
    return bool(prunable) and 2 * len(with_bn) >= len(prunable)


def _criterion_words(importance: str) -> str:
    return {"l1": "filter L1 norm", "l2": "filter L2 norm", "bn": "BatchNorm |gamma|"}.get(importance, importance)


def _split(xy, validation, seed: int, needs_training: bool):
    """(train, val) pairs: explicit validation data, or 10 % held out when training, or all data for val."""
    if xy is None:
        return None, None
    if validation is not None:
        return xy, validation
    if not needs_training:
        return xy, xy
    from edgekit.data import from_arrays, split

    train, val = split(from_arrays(*xy), seed=seed)
    return (train.x, train.y), (val.x, val.y)


def _layer_frozen_reasons(groups: ChannelGroups) -> dict[str, str]:
    reasons = {f.node: f.reason for f in groups.frozen_layers}
    for group in groups.groups:
        if group.prunable or not group.frozen_reasons:
            continue
        for ref in group.members:
            if ref.role == ROLE_OUT:
                reasons.setdefault(ref.node, "; ".join(group.frozen_reasons[:2]))
    return reasons


def _report(pruned, groups: ChannelGroups, options: SelectionOptions, data_free: bool,
            records, metric_before, metric_after, notices) -> PruneReport:
    before_graph, after_graph = groups.graph, from_keras(pruned)
    before, after = analyze(before_graph), analyze(after_graph)
    reasons = _layer_frozen_reasons(groups)
    after_by_name = {c.name: c for c in after.layers}
    layers = []
    for cost in before.layers:
        node = before_graph.node(cost.name)
        if not node.weights and node.op not in SOURCE_OPS:
            continue
        new = after_by_name.get(cost.name)
        layers.append(LayerChannels(
            cost.name, cost.op, _channels(cost), _channels(new) if new else 0, cost.params,
            new.params if new else 0, cost.macs, new.macs if new else 0, reasons.get(cost.name)))
    return PruneReport(options.importance, data_free, options.global_ranking, tuple(layers), groups.frozen_layers,
                       before.params, after.params, before.macs, after.macs,
                       estimate_tflite_bytes(before_graph, "int8").flash_bytes,
                       estimate_tflite_bytes(after_graph, "int8").flash_bytes, tuple(records), metric_before,
                       metric_after, tuple(dict.fromkeys(notices)))


def _channels(cost) -> int:
    return int(cost.output_shape[-1]) if cost.output_shape else 1


__all__ = [
    "CRITERIA",
    "DATA_FREE_CRITERIA",
    "LayerChannels",
    "PruneReport",
    "PruneResult",
    "PruneStep",
    "SparsityResult",
    "prune",
    "sparsify",
]
