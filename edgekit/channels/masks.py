"""Kept-slot masks of every tensor for a keep choice, with numpy indexing (pure; no TensorFlow).

`ChannelGroups.kept_mask` answers for one tensor with a lookup per channel slot; the planner asks for every
tensor of the graph once per cost evaluation (tens of thousands of slots on EfficientNet, hundreds of
evaluations). `MaskIndex` numbers every unit of every group once (group offset + unit), keeps per tensor the
numbers of its slots, and turns a keep choice into one boolean array over all units; a tensor's mask is
then one gather. A group's part of that array is cached by its kept set, since a search changes one group
per move. The results equal `kept_mask`'s (tests/channels/test_masks.py).

    >>> from edgekit.ir.graph import Graph, Node, Tensor, Weight
    >>> from edgekit.channels.groups import build_groups
    >>> g = Graph.build([Tensor("x", (4,)), Tensor("h", (8,)), Tensor("y", (2,))],
    ...     [Node("fc0", "Dense", ("x",), ("h",), {"units": 8}, (Weight("k", (4, 8), "kernel"),)),
    ...      Node("fc1", "Dense", ("h",), ("y",), {"units": 2}, (Weight("k", (8, 2), "kernel"),))],
    ...     ["x"], ["y"])
    >>> index = mask_index(build_groups(g))
    >>> index.counts({1: frozenset({0, 3, 5})})["h"], index.masks({1: frozenset({0, 3})})["h"].tolist()[:4]
    (3, [True, False, False, True])
"""

from __future__ import annotations

import numpy as np

from edgekit.channels.groups import ChannelGroups, Keep

_CACHE_PER_GROUP = 64  # kept sets remembered per group; a search revisits few counts per group


class MaskIndex:
    """Per tensor, the flat unit number (group offset + unit) of each channel slot of a ChannelGroups."""

    def __init__(self, groups: ChannelGroups) -> None:
        sizes = np.array([g.size for g in groups.groups], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.total = int(self.offsets[-1])
        self.tensors = tuple(groups.slot_units)
        self.index = {t: np.array([self.offsets[g] + u for g, u in slots], dtype=np.int64).reshape(-1)
                      for t, slots in groups.slot_units.items()}
        self._all = np.concatenate([self.index[t] for t in self.tensors]) if self.tensors else np.zeros(0, np.int64)
        ends = np.cumsum([len(self.index[t]) for t in self.tensors], dtype=np.int64)
        self._starts = np.concatenate([[0], ends[:-1]]).astype(np.int64) if self.tensors else ends
        self._ends = ends
        self._cache: dict[int, dict[frozenset[int], np.ndarray]] = {}

    def _group_mask(self, gid: int, units) -> np.ndarray:
        size = int(self.offsets[gid + 1] - self.offsets[gid])
        cache = self._cache.setdefault(gid, {})
        try:
            found = cache.get(units)
        except TypeError:  # an unhashable set: compute without caching
            found, cache = None, None
        if found is not None:
            return found
        kept = np.fromiter((u for u in units if 0 <= u < size), dtype=np.int64)
        mask = np.zeros(size, dtype=bool)
        mask[kept] = True
        if cache is not None:
            if len(cache) >= _CACHE_PER_GROUP:
                cache.clear()
            mask.flags.writeable = False
            cache[units] = mask
        return mask

    def flat(self, keep: Keep) -> np.ndarray:
        """One bool per unit of every group (group offset + unit): kept under `keep`?"""
        flat = np.ones(self.total, dtype=bool)
        n_groups = len(self.offsets) - 1
        for gid, units in keep.items():
            if isinstance(gid, (int, np.integer)) and 0 <= gid < n_groups:  # other keys: no such group (ignored)
                flat[self.offsets[gid]:self.offsets[gid + 1]] = self._group_mask(int(gid), units)
        return flat

    def masks(self, keep: Keep) -> dict[str, np.ndarray]:
        """Per tensor (internal attention tensors too): a bool array, one per channel slot."""
        flat = self.flat(keep)
        return {t: flat[idx] for t, idx in self.index.items()}

    def counts(self, keep: Keep) -> dict[str, int]:
        """Per tensor: how many of its channel slots survive `keep`."""
        kept = np.concatenate([[0], np.cumsum(self.flat(keep)[self._all], dtype=np.int64)])
        return dict(zip(self.tensors, (kept[self._ends] - kept[self._starts]).tolist()))


def mask_index(groups: ChannelGroups) -> MaskIndex:
    """The MaskIndex of `groups`, built on first use and kept on the (immutable) ChannelGroups."""
    index = groups.__dict__.get("_mask_index")
    if index is None:
        index = MaskIndex(groups)
        object.__setattr__(groups, "_mask_index", index)
    return index


def kept_masks(groups: ChannelGroups, keep: Keep) -> dict[str, tuple[bool, ...]]:
    """{tensor: groups.kept_mask(tensor, keep)} for every tensor, computed with one gather per tensor."""
    return {t: tuple(m.tolist()) for t, m in mask_index(groups).masks(keep).items()}
