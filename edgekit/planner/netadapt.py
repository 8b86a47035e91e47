"""NetAdapt-style channel search on the graph IR: shrink, one channel group at a time, the group that saves the
most predicted cost per importance lost, until every budget holds (pure; no TensorFlow).

After Yang et al., "NetAdapt: Platform-Aware Neural Network Adaptation for Mobile Applications" (ECCV 2018),
with two changes that suit a cost model instead of on-device measurements: every move is scored by the
cost model (`cost_fn` over the shrunk IR, no surgery, no training), and the accuracy a move costs is
estimated from channel importance instead of a short fine-tune per move: per-group normalised scores (as
`edgekit.channels.keep.select_keep` ranks them globally) weighted by the layers producing the channels
(`unit_importance`), counted logarithmically in the share of the group kept (`_Channels.lost`), so no
layer is squeezed to a single channel while others stay whole.

One move removes the least important channels of one group: `channel_multiple` of them (the device's SIMD
width), or more while the model is far from the target (at most `step_fraction` of the group, always a
multiple), so large models need tens of moves, not thousands; the last moves are single multiples. A move
that would raise any watched cost is never taken (TFLite's greedy memory planner can give a higher peak
after a buffer shrinks), so costs never rise along the search.

    >>> from edgekit.ir.graph import Graph, Node, Tensor, Weight
    >>> from edgekit.channels.groups import build_groups
    >>> g = Graph.build([Tensor("x", (4,)), Tensor("h", (16,)), Tensor("y", (2,))],
    ...     [Node("fc0", "Dense", ("x",), ("h",), {"units": 16}, (Weight("k", (4, 16), "kernel"),)),
    ...      Node("fc1", "Dense", ("h",), ("y",), {"units": 2}, (Weight("k", (16, 2), "kernel"),))], ["x"], ["y"])
    >>> groups = build_groups(g)
    >>> result = netadapt(groups, {1: np.arange(16.0)}, lambda graph: {"params": graph.params}, {"params": 50})
    >>> result.reached, result.costs["params"], sorted(result.keep[1])
    (True, 48, [8, 9, 10, 11, 12, 13, 14, 15])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from edgekit.channels.groups import ChannelGroup, ChannelGroups
from edgekit.channels.keep import normalized_scores, shrink_graph
from edgekit.ir.graph import Graph

CostFn = Callable[[Graph], Mapping[str, float]]

DEFAULT_STEP_FRACTION = 0.125
DEFAULT_MAX_EVALUATIONS = 20_000
_RISE_TOLERANCE = 1e-9
_EPS_IMPORTANCE = 1e-12
_NO_MOVE = (-99, 0.0, 0.0, 0)  # sorts below every real move


@dataclass(frozen=True)
class SearchStep:
    """One move: group `group` went from `channels_before` to `channels_after` units."""

    group: int
    channels_before: int
    channels_after: int
    binding: str                 # the budget the move was chosen for
    costs: Mapping[str, float]   # after the move
    importance_lost: float       # normalised importance of the removed channels


@dataclass(frozen=True)
class SearchResult:
    keep: Mapping[int, frozenset[int]]
    costs: Mapping[str, float]
    reached: bool                # every target met
    importance_kept: float       # share of the free channels' normalised importance still kept (1.0: none removed)
    steps: tuple[SearchStep, ...]
    evaluations: int
    start_costs: Mapping[str, float]


class _Channels:
    """Per prunable group: free units from least to most important, their cumulative importance, the floor."""

    def __init__(self, groups: ChannelGroups, scores: Mapping[int, np.ndarray], min_channels: int) -> None:
        self.groups = {g.id: g for g in groups.prunable_groups}
        missing = [gid for gid in self.groups if gid not in scores]
        if missing:
            raise ValueError(f"no importance scores for channel groups {missing}")
        self.order: dict[int, list[int]] = {}
        self.removed_sum: dict[int, np.ndarray] = {}  # importance of the first i units of `order`
        self.whole: dict[int, float] = {}             # importance of every unit, frozen ones included
        for gid, g in self.groups.items():
            norm = unit_importance(g, scores[gid])
            free = [u for u in range(g.size) if u not in g.frozen_units]
            # least important first; ties: the higher unit goes first, as select_keep keeps the lower one
            self.order[gid] = sorted(free, key=lambda u, n=norm: (n[u], -u))
            self.removed_sum[gid] = np.concatenate([[0.0], np.cumsum(norm[self.order[gid]])])
            self.whole[gid] = float(np.sum(np.maximum(norm, 0.0)))
        self.floor = {gid: min(g.size, max(min_channels, len(g.frozen_units), 1)) for gid, g in self.groups.items()}
        self.total = sum(float(self.removed_sum[gid][-1]) for gid in self.groups)
        self._kept_sets: dict[tuple[int, int], frozenset[int]] = {}

    def keep(self, counts: Mapping[int, int]) -> dict[int, frozenset[int]]:
        return {gid: self._kept(gid, counts[gid]) for gid in self.groups}

    def _kept(self, gid: int, count: int) -> frozenset[int]:
        # One set per (group, count): a move changes one group, and shrink_graph's masks are cached by set.
        kept = self._kept_sets.get((gid, count))
        if kept is None:
            dropped = self.order[gid][: self._n_removed(gid, count)]
            kept = self._kept_sets[(gid, count)] = frozenset(range(self.groups[gid].size)) - frozenset(dropped)
        return kept

    def _n_removed(self, gid: int, count: int) -> int:
        return len(self.order[gid]) - (count - len(self.groups[gid].frozen_units))

    def removed(self, gid: int, count: int) -> float:
        """Normalised importance removed from group gid when it keeps `count` units."""
        return float(self.removed_sum[gid][self._n_removed(gid, count)])

    def lost(self, gid: int, before: int, after: int) -> float:
        """Importance lost by a move: W * ln(kept before / kept after), W the group's whole importance.

        For the first channels this is their (normalised) importance; as a group empties it grows without
        bound, so the search thins many groups a little rather than one to a single channel (a linear
        measure would drain whichever group has the cheapest channels to compute).
        """
        whole = self.whole[gid]
        kept_before = whole - self.removed(gid, before)
        kept_after = whole - self.removed(gid, after)
        return whole * float(np.log((kept_before + _EPS_IMPORTANCE) / (max(kept_after, 0.0) + _EPS_IMPORTANCE)))

    def importance_kept(self, counts: Mapping[int, int]) -> float:
        if self.total <= 0:
            return 1.0
        lost = sum(self.removed(gid, counts[gid]) for gid in self.groups)
        return max(0.0, 1.0 - lost / self.total)


def next_count(n: int, floor: int, multiple: int, fraction: float) -> int | None:
    """Kept units after one move from `n`: down to a multiple of `multiple`, by about `fraction` of n when
    that is more than one multiple; below one multiple, one unit at a time. None when n is at the floor.

    >>> next_count(64, 1, 8, 0.125), next_count(10, 1, 4, 0.125), next_count(4, 1, 4, 0.125), next_count(1, 1, 4, 0.1)
    (56, 8, 3, None)
    """
    if n <= floor:
        return None
    multiple = max(1, multiple)
    if n > multiple:
        if n % multiple:
            new = n - n % multiple
        else:
            cut = multiple * max(1, int(n * fraction) // multiple)
            new = n - min(cut, n - multiple)
    else:
        new = n - 1
    new = max(new, floor)
    return new if new < n else None


def floor_keep(groups: ChannelGroups, scores: Mapping[int, np.ndarray], min_channels: int = 1
               ) -> dict[int, frozenset[int]]:
    """Every prunable group at its minimum (min_channels, or its frozen units), the most important kept."""
    channels = _Channels(groups, scores, min_channels)
    return channels.keep(channels.floor)


def unit_importance(group: ChannelGroup, score) -> np.ndarray:
    """Per unit: its score over the group's mean, times the number of layers producing the group's channels.

    Normalising makes groups comparable (as select_keep's global ranking does); the factor makes a residual
    channel, produced by every layer that adds into the stream, count as that many layer channels.
    """
    return normalized_scores(group, np.asarray(score, np.float64)) * max(1, len(group.sources))


def importance_kept(groups: ChannelGroups, scores: Mapping[int, np.ndarray], keep: Mapping[int, frozenset[int]]
                    ) -> float:
    """Share of the free channels' importance (`unit_importance`) that `keep` keeps (1.0: none removed)."""
    total = kept = 0.0
    for g in groups.prunable_groups:
        norm = unit_importance(g, scores[g.id])
        free = [u for u in range(g.size) if u not in g.frozen_units]
        units = keep.get(g.id)
        total += float(np.sum(norm[free]))
        kept += float(sum(norm[u] for u in free if units is None or u in units))
    return 1.0 if total <= 0 else kept / total


def _over(costs: Mapping[str, float], targets: Mapping[str, float]) -> dict[str, float]:
    """Budgets over their target: key -> cost / target."""
    return {k: costs[k] / t for k, t in targets.items() if costs[k] > t}


def _rises(new: Mapping[str, float], old: Mapping[str, float], watched) -> bool:
    return any(new[k] > old[k] * (1 + _RISE_TOLERANCE) + _RISE_TOLERANCE for k in watched)


def _relative_saving(new: Mapping[str, float], old: Mapping[str, float], keys, scale: Mapping[str, float]) -> float:
    return sum(max(0.0, old[k] - new[k]) / scale[k] for k in keys if scale[k] > 0)


@dataclass(frozen=True)
class _Move:
    key: tuple            # larger is better; _NO_MOVE for a move not to take
    group: int
    channels_after: int
    costs: Mapping[str, float]
    lost: float


class _Mover:
    """Scores moves from one state (counts, costs) towards the targets, counting cost evaluations."""

    def __init__(self, groups: ChannelGroups, channels: _Channels, cost_fn: CostFn, targets: Mapping[str, float],
                 watched: tuple[str, ...], channel_multiple: int) -> None:
        self.groups, self.channels, self.cost_fn = groups, channels, cost_fn
        self.targets, self.watched, self.multiple = targets, watched, channel_multiple
        self.evaluations = 0

    def next_count(self, counts: Mapping[int, int], gid: int, fraction: float) -> int | None:
        return next_count(counts[gid], self.channels.floor[gid], self.multiple, fraction)

    def score(self, counts: Mapping[int, int], costs: Mapping[str, float], binding: str, fraction: float,
              gid: int) -> _Move | None:
        new_n = self.next_count(counts, gid, fraction)
        if new_n is None:
            return None
        new_costs = dict(self.cost_fn(shrink_graph(self.groups, self.channels.keep({**counts, gid: new_n}))))
        self.evaluations += 1
        lost = self.channels.lost(gid, counts[gid], new_n) + _EPS_IMPORTANCE
        over = _over(costs, self.targets)
        tiers = (_relative_saving(new_costs, costs, (binding,), self.targets),
                 _relative_saving(new_costs, costs, over, self.targets),
                 _relative_saving(new_costs, costs, new_costs, costs))
        tier = next((i for i, s in enumerate(tiers) if s > 0), None)
        if tier is None or _rises(new_costs, costs, self.watched):
            return _Move(_NO_MOVE, gid, new_n, new_costs, lost)
        return _Move((-tier, tiers[tier] / lost, tiers[tier], -gid), gid, new_n, new_costs, lost)


def _best_move(mover: _Mover, counts, costs, binding: str, fraction: float, known: dict[int, _Move | None],
               lazy: bool) -> _Move | None:
    """The best move; `known` holds earlier scores (lazy greedy) and is updated in place."""
    movable = [gid for gid in mover.channels.groups if mover.next_count(counts, gid, fraction) is not None]
    fresh: set[int] = set()

    def rescore(gid: int) -> None:
        known[gid] = mover.score(counts, costs, binding, fraction, gid)
        fresh.add(gid)

    for gid in movable:
        if gid not in known or not lazy:
            rescore(gid)
    while movable:
        top = max(movable, key=lambda g: known[g].key if known[g] is not None else _NO_MOVE)
        if top not in fresh:
            rescore(top)
            continue
        move = known[top]
        if move is not None and move.key != _NO_MOVE:
            return move
        stale = [g for g in movable if g not in fresh]
        if not stale:
            return None
        for gid in stale:  # the best fresh score is no move: make sure no stale one hides a real move
            rescore(gid)
    return None


def _grow_count(n: int, size: int, multiple: int) -> int | None:
    """Kept units after giving back one step: up to the next multiple (or the whole group)."""
    if n >= size:
        return None
    return min(size, (n // max(1, multiple) + 1) * max(1, multiple))


def _give_back(mover: _Mover, counts: dict[int, int], costs: Mapping[str, float], steps: list[SearchStep],
               max_evaluations: int, lazy: bool = True) -> Mapping[str, float]:
    """Re-add channels while every target still holds: coarse moves overshoot, and the budget left is accuracy.

    Each round gives one step back to the group that regains the most importance per unit of the cost
    closest to its target; stops when no group can grow within the targets. Updates counts and steps.
    lazy: as in the shrinking phase, a group's earlier score stands in until it reaches the top, and a group
    that could not grow within the targets is not tried again (costs only rise as channels come back), so a
    round costs a few predictions instead of one per group (hundreds of groups x rounds on EfficientNet).
    """
    channels = mover.channels
    known: dict[int, tuple | None] = {}   # gid -> (key, channels after, costs after); None: cannot grow
    while mover.evaluations + 1 < max_evaluations:
        fresh: set[int] = set()
        for gid in channels.groups:
            if gid not in known or not lazy:
                known[gid] = _grow_score(mover, counts, costs, gid)
                fresh.add(gid)
        best = None
        while mover.evaluations + 1 < max_evaluations:
            live = [g for g, k in known.items() if k is not None]
            if not live:
                break
            top = max(live, key=lambda g: known[g][0])
            if top in fresh:
                best = top
                break
            known[top] = _grow_score(mover, counts, costs, top)
            fresh.add(top)
        if best is None:
            break
        _, new_n, new_costs = known.pop(best)
        steps.append(SearchStep(best, counts[best], new_n, "give back", MappingProxyType(new_costs),
                                -channels.lost(best, new_n, counts[best])))
        counts[best] = new_n
        costs = new_costs
    return costs


def _grow_score(mover: _Mover, counts: Mapping[int, int], costs: Mapping[str, float], gid: int) -> tuple | None:
    """(key, channels after, costs after) of giving group gid one step back; None when it cannot grow within
    the targets. Larger keys first: importance regained per share of the tightest target spent."""
    channels, targets = mover.channels, mover.targets
    new_n = _grow_count(counts[gid], channels.groups[gid].size, mover.multiple)
    if new_n is None:
        return None
    new_costs = dict(mover.cost_fn(shrink_graph(mover.groups, channels.keep({**counts, gid: new_n}))))
    mover.evaluations += 1
    if _over(new_costs, targets):
        return None
    regained = channels.lost(gid, new_n, counts[gid])
    spent = max((new_costs[k] - costs[k]) / t for k, t in targets.items()) if targets else 0.0
    return (regained / (max(spent, 0.0) + 1e-6), regained, -gid), new_n, new_costs


def netadapt(groups: ChannelGroups, scores: Mapping[int, np.ndarray], cost_fn: CostFn,
             targets: Mapping[str, float], *, channel_multiple: int = 1, min_channels: int = 1,
             step_fraction: float = DEFAULT_STEP_FRACTION, watched: tuple[str, ...] | None = None,
             max_evaluations: int = DEFAULT_MAX_EVALUATIONS, lazy: bool = True, give_back: bool = True
             ) -> SearchResult:
    """Shrink channel groups until every `targets` cost (key -> value, from `cost_fn`) is met.

    Each move goes to the group with the largest saving on the binding budget (the one furthest over its
    target, as a share of the target) per normalised importance removed. When no single move lowers the
    binding budget (a memory peak shared by two tensors), the move that saves most on the over-budget costs,
    then on any cost, is taken instead. Moves raising any `watched` cost (default: the targets' keys) are
    skipped. Stops when the targets are met, when no move is left (`reached` False), or after
    `max_evaluations` cost evaluations.

    lazy: re-score only the best-scored group after each move (lazy greedy: a score computed earlier stands
    in for a group's current one until that group reaches the top; every group is re-scored whenever the
    binding budget changes), so a move costs a few predictions instead of one per group. lazy=False scores
    every group before every move.

    give_back: once the targets are met, re-add channels (one step at a time, the most importance regained
    per cost first) while every target still holds; these steps have channels_after > channels_before and
    binding "give back".
    """
    channels = _Channels(groups, scores, min_channels)
    mover = _Mover(groups, channels, cost_fn, targets, tuple(targets) if watched is None else tuple(watched),
                   channel_multiple)
    counts = {gid: g.size for gid, g in channels.groups.items()}
    start = dict(cost_fn(groups.graph))
    costs = start
    steps: list[SearchStep] = []
    known: dict[int, _Move | None] = {}
    last_binding = None
    while True:
        over = _over(costs, targets)
        if not over or mover.evaluations + 1 >= max_evaluations:
            break
        binding = max(over, key=over.get)
        if binding != last_binding:
            known.clear()
        last_binding = binding
        fraction = min(step_fraction, max(0.0, 1.0 - targets[binding] / costs[binding]))
        move = _best_move(mover, counts, costs, binding, fraction, known, lazy)
        if move is None:
            break
        known.pop(move.group, None)
        steps.append(SearchStep(move.group, counts[move.group], move.channels_after, binding,
                                MappingProxyType(move.costs), move.lost))
        counts[move.group] = move.channels_after
        costs = move.costs
    if give_back and steps and not _over(costs, targets):
        costs = _give_back(mover, counts, costs, steps, max_evaluations, lazy)
    return SearchResult(
        keep=MappingProxyType(channels.keep(counts)), costs=MappingProxyType(dict(costs)),
        reached=not _over(costs, targets), importance_kept=channels.importance_kept(counts),
        steps=tuple(steps), evaluations=mover.evaluations + 1, start_costs=MappingProxyType(start))
