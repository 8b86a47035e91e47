"""Which channels to keep, and what the model will cost afterwards (pure; no TensorFlow).

`select_keep` turns per-unit importance scores into kept units per group (a ratio, ranked globally or
per group, with a minimum and a SIMD-friendly multiple); `shrink_graph` applies a choice to the IR, so
`edgekit.costmodel.layer_costs.analyze` predicts the pruned model's params and MACs before any surgery;
`keep_for_target` searches the ratio that reaches a MAC, parameter or TFLite size budget (`Targets`).

    >>> from edgekit.ir.graph import Graph, Node, Tensor, Weight
    >>> g = Graph.build([Tensor("x", (4,)), Tensor("h", (8,)), Tensor("y", (2,))],
    ...     [Node("fc0", "Dense", ("x",), ("h",), {"units": 8}, (Weight("k", (4, 8), "kernel"),)),
    ...      Node("fc1", "Dense", ("h",), ("y",), {"units": 2}, (Weight("k", (8, 2), "kernel"),))],
    ...     ["x"], ["y"])
    >>> from edgekit.channels.groups import build_groups
    >>> groups = build_groups(g)
    >>> keep = select_keep(groups, {1: np.arange(8.0)}, ratio=0.5)
    >>> sorted(keep[1]), shrink_graph(groups, keep).params
    ([4, 5, 6, 7], 24)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from edgekit.channels.axes import WIDTH_KEY, depth_multiplier, mid_mask, weight_axes
from edgekit.channels.groups import ROLE_OUT, ChannelGroup, ChannelGroups, Keep
from edgekit.channels.masks import kept_masks, mask_index
from edgekit.channels.sequence import resized_attrs, sequence_masks
from edgekit.costmodel.layer_costs import analyze
from edgekit.costmodel.size import estimate_tflite_bytes
from edgekit.errors import BadInputError, DoesNotFitError
from edgekit.ir.graph import Graph, Node, Tensor, Weight
from edgekit.ir.sequence import ATTENTION_OPS, BIDIRECTIONAL_OPS, RNN_OPS

_SEARCH_STEPS = 40
# Layers whose weights have recurrent or attention axis kinds: resized from per-slot masks.
_MASKED_OPS = RNN_OPS | BIDIRECTIONAL_OPS | ATTENTION_OPS


def _floor(group: ChannelGroup, min_channels: int) -> int:
    return min(group.size, max(min_channels, len(group.frozen_units), 1))


def _round_up(n: int, multiple: int, size: int) -> int:
    return min(size, -(-n // multiple) * multiple)


def _free_units(group: ChannelGroup) -> np.ndarray:
    return np.array([u for u in range(group.size) if u not in group.frozen_units], dtype=np.int64)


def _keep_top(group: ChannelGroup, score: np.ndarray, n_keep: int) -> frozenset[int]:
    free = _free_units(group)
    order = free[np.argsort(-score[free], kind="stable")]  # best first; ties keep the lower unit
    return frozenset(group.frozen_units) | frozenset(int(u) for u in order[: n_keep - len(group.frozen_units)])


def normalized_scores(group: ChannelGroup, score: np.ndarray) -> np.ndarray:
    """Scores divided by the mean over the group's free units, so groups can be ranked together."""
    free = _free_units(group)
    mean = float(np.mean(score[free])) if len(free) else 0.0
    return score / mean if mean > 0 else np.zeros_like(score, dtype=np.float64)


def select_keep(groups: ChannelGroups, scores: Mapping[int, np.ndarray], ratio: float, *,
                global_ranking: bool = True, min_channels: int = 1, round_to: int = 1) -> dict[int, frozenset[int]]:
    """Kept units per prunable group, removing about `ratio` of the free (unfrozen) channels.

    global_ranking: rank all channels together on per-group normalised scores (groups lose different
    shares), else remove `ratio` of every group. Every group keeps at least `min_channels` and its
    frozen units; kept counts are rounded up to a multiple of `round_to` (or to the whole group).
    """
    if not 0.0 <= ratio <= 1.0:
        raise BadInputError(f"pruning ratio must be between 0 and 1, got {ratio}")
    if min_channels < 1 or round_to < 1:
        raise BadInputError(f"min_channels ({min_channels}) and round_to ({round_to}) must be at least 1")
    prunable = groups.prunable_groups
    missing = [g.id for g in prunable if g.id not in scores]
    if missing:
        raise ValueError(f"no importance scores for channel groups {missing}")
    n_keep: dict[int, int] = {}
    if global_ranking:
        removed = _global_removals(prunable, scores, ratio, min_channels)
        n_keep = {g.id: g.size - removed[g.id] for g in prunable}
    else:
        for g in prunable:
            n_remove = round(ratio * g.prunable_units)
            n_keep[g.id] = max(_floor(g, min_channels), g.size - n_remove)
    keep = {}
    for g in prunable:
        score = np.asarray(scores[g.id], np.float64)
        kept = _keep_top(g, score, _round_up(n_keep[g.id], round_to, g.size))
        keep[g.id] = _cover_sources(g, score, kept, min_channels)
    return keep


def _cover_sources(group: ChannelGroup, score: np.ndarray, kept: frozenset[int], min_channels: int) -> frozenset[int]:
    """`kept` plus the best units of any producing layer left with fewer than min_channels (at least 1).

    A group can join several producers (a concatenation multiplied by a squeeze-excite gate ties the
    concat's inputs to the gate's conv): keeping the group's best units could leave one producer none.
    """
    out = set(kept)
    for ref in group.members:
        if ref.role != ROLE_OUT:
            continue
        units = np.unique(np.asarray(ref.units, dtype=np.int64))
        need = min(len(units), max(min_channels, 1)) - sum(int(u) in out for u in units)
        if need > 0:
            missing = units[[int(u) not in out for u in units]]
            out.update(int(u) for u in missing[np.argsort(-score[missing], kind="stable")][:need])
    return frozenset(out)


def _global_removals(prunable: tuple[ChannelGroup, ...], scores: Mapping[int, np.ndarray], ratio: float,
                     min_channels: int) -> dict[int, int]:
    candidates = []
    for g in prunable:
        norm = normalized_scores(g, np.asarray(scores[g.id], np.float64))
        free = _free_units(g)
        order = free[np.argsort(norm[free], kind="stable")]
        # Ties (e.g. untrained BN gammas, all 1) break by the unit's rank within its group, so equal scores
        # thin every group in proportion instead of emptying the first groups.
        candidates.extend((float(norm[u]), rank / len(free), g.id, int(u)) for rank, u in enumerate(order))
    candidates.sort()
    target = round(ratio * len(candidates))
    removed = {g.id: 0 for g in prunable}
    by_id = {g.id: g for g in prunable}
    total = 0
    for _, _, gid, _unit in candidates:
        if total >= target:
            break
        g = by_id[gid]
        if g.size - removed[gid] - 1 >= _floor(g, min_channels):
            removed[gid] += 1
            total += 1
    return removed


# --------------------------------------------------------------------------------------------- the IR after


def _masks(groups: ChannelGroups, keep: Keep) -> dict[str, tuple[bool, ...]]:
    return kept_masks(groups, keep)


def node_masks(groups: ChannelGroups, node: Node, masks: Mapping[str, tuple[bool, ...]]) -> dict[str, list[bool]]:
    """Kept-slot masks by axis kind ("in", "out", "mid") for one node's weights."""
    out: dict[str, list[bool]] = {}
    if node.inputs:
        out["in"] = list(masks[node.inputs[0]])
        out["mid"] = mid_mask(out["in"], depth_multiplier(node))
    if node.outputs:
        out["out"] = list(masks[node.outputs[0]])
        out.update(sequence_masks(node, masks, out["out"]))
    return out


def new_reshape_target(target_shape, old_last: int, new_last: int) -> tuple:
    """A Reshape's target shape with its last (channel-carrying) dimension resized; -1 stays -1."""
    target = list(target_shape)
    if target and target[-1] != -1 and target[-1] is not None:
        target[-1] = new_last
    return tuple(target)


def shrink_graph(groups: ChannelGroups, keep: Keep) -> Graph:
    """The IR of the model after removing every unit not in `keep` (tensors, weights and widths resized).

    Layers and tensors whose channel counts do not change are the original objects, so a search that
    changes one group per move rebuilds only the layers around it.
    """
    graph = groups.graph
    counts = mask_index(groups).counts(keep)
    tensors = [t if not t.shape or counts[t.name] == t.shape[-1] else Tensor(t.name, t.shape[:-1] + (counts[t.name],),
                                                                             t.dtype)
               for t in graph.tensors.values()]
    masks = None  # per-slot masks, only for the layers whose weights need more than channel counts
    nodes = []
    for node in graph.nodes:
        if node.op in _MASKED_OPS:
            masks = masks if masks is not None else _masks(groups, keep)
            by_kind = node_masks(groups, node, masks)
            nodes.append(_shrink_node(graph, node, {k: sum(v) for k, v in by_kind.items()}, by_kind))
            continue
        nodes.append(_shrink_node(graph, node, _kind_counts(node, counts), {}))
    return Graph.build(tensors, nodes, graph.inputs, graph.outputs, graph.name)


def _kind_counts(node: Node, counts: Mapping[str, int]) -> dict[str, int]:
    """Kept channels per axis kind, as node_masks' sums, for layers without recurrent or attention kinds."""
    out = {}
    if node.inputs:
        out["in"] = counts[node.inputs[0]]
        out["mid"] = out["in"] * depth_multiplier(node)
    if node.outputs:
        out["out"] = counts[node.outputs[0]]
    return out


def _shrink_node(graph: Graph, node: Node, kept: Mapping[str, int], by_kind: Mapping[str, list[bool]]) -> Node:
    """`node` with weights, width and reshape target resized to `kept` channels per axis kind (`node` itself
    when nothing changes)."""
    weights = []
    for w in node.weights:
        shape = list(w.shape)
        for axis, kind in weight_axes(node, w).items():
            shape[axis] = kept[kind]
        weights.append(w if tuple(shape) == w.shape else Weight(w.name, tuple(shape), w.role, w.trainable))
    attrs = dict(node.attrs)
    if node.op in WIDTH_KEY and WIDTH_KEY[node.op] in attrs and node.outputs:
        attrs[WIDTH_KEY[node.op]] = kept["out"]
    attrs.update(resized_attrs(node, by_kind))
    if node.op == "Reshape" and "target_shape" in attrs:
        old = graph.tensors[node.outputs[0]].channels
        attrs["target_shape"] = new_reshape_target(attrs["target_shape"], old, kept["out"])
    if attrs == node.attrs and all(a is b for a, b in zip(weights, node.weights)):
        return node
    return Node(node.name, node.op, node.inputs, node.outputs, attrs, tuple(weights))


@dataclass(frozen=True)
class Targets:
    """Budgets a pruned model must meet (None: no limit). size_bytes is the predicted TFLite file size."""

    macs: int | None = None
    params: int | None = None
    size_bytes: int | None = None
    size_precision: str = "int8"

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.macs, self.params, self.size_bytes))

    def measure(self, graph: Graph) -> dict[str, int]:
        """{"MACs": ..., "params": ..., "bytes": ...} of `graph`, only for the budgets set."""
        cost = analyze(graph)
        out = {}
        if self.macs is not None:
            out["MACs"] = cost.macs
        if self.params is not None:
            out["params"] = cost.params
        if self.size_bytes is not None:
            out["bytes"] = estimate_tflite_bytes(graph, self.size_precision).flash_bytes
        return out

    def fits(self, measured: Mapping[str, int]) -> bool:
        limits = {"MACs": self.macs, "params": self.params, "bytes": self.size_bytes}
        return all(value <= limits[name] for name, value in measured.items())

    def describe(self) -> str:
        parts = [f"MACs {self.macs:,}" if self.macs is not None else "",
                 f"params {self.params:,}" if self.params is not None else "",
                 f"{self.size_precision} TFLite size {self.size_bytes:,} bytes" if self.size_bytes is not None
                 else ""]
        return ", ".join(p for p in parts if p)


def keep_for_target(groups: ChannelGroups, scores: Mapping[int, np.ndarray], targets: Targets,
                    **options) -> tuple[dict[int, frozenset[int]], float]:
    """The smallest pruning ratio whose result meets every budget in `targets`.

    Returns (keep, ratio). Raises DoesNotFitError when even the most pruning allowed (every group at its
    minimum) stays above a budget. `options` go to select_keep (global_ranking, min_channels, round_to).
    """
    if not targets:
        raise ValueError("keep_for_target needs at least one target")

    def fits(ratio: float) -> tuple[bool, dict[int, frozenset[int]], dict[str, int]]:
        keep = select_keep(groups, scores, ratio, **options)
        measured = targets.measure(shrink_graph(groups, keep))
        return targets.fits(measured), keep, measured

    ok, keep, _ = fits(0.0)
    if ok:
        return keep, 0.0
    ok, keep, measured = fits(1.0)
    if not ok:
        reached = ", ".join(f"{value:,} {name}" for name, value in measured.items())
        raise DoesNotFitError(
            f"pruning cannot reach {targets.describe()}: with every channel group at its minimum the model "
            f"still has {reached}; lower min_channels / round_to, or distil a smaller model")
    lo, hi, best = 0.0, 1.0, keep
    for _ in range(_SEARCH_STEPS):
        if hi - lo < 1e-4:
            break
        mid = (lo + hi) / 2
        ok, keep, _ = fits(mid)
        if ok:
            hi, best = mid, keep
        else:
            lo = mid
    return best, hi
