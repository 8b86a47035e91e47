"""Channel dependency groups over the graph IR (pure; no TensorFlow).

Removing output channel 5 of a convolution also removes channel 5 of the BatchNormalization after it,
of the depthwise conv after that, of everything added to it in a residual, and input row 5 of every
layer reading it. A `ChannelGroup` is the set of channels that must go together: `size` units, each
unit one channel that may appear in many places (its `members`). Groups are data; which units to keep
is decided elsewhere (`edgekit.prune.importance`, `edgekit.channels.keep`) and carried out by
`edgekit.prune.surgery`.

How it works: every channel slot of every tensor carries a label. A layer that creates channels
(Conv, Dense, SeparableConv) gives its output fresh labels; channel-wise layers (BatchNormalization,
depthwise convs), pass-through layers (activations, pooling, padding ...) and global pooling hand their
input labels on; Concatenate joins its inputs' label lists; Flatten and Reshape repeat the channel
labels over the spatial positions; element-wise merges unify the labels of their inputs slot by slot
(union-find). A unit is one class of unified labels; a group is all units whose creating layers got
tied together. A layer the rules do not cover freezes every label it touches (those channels are
always kept) and is listed in `frozen_layers` with the reason, so pruning never breaks a model.

    >>> from edgekit.ir.graph import Graph, Node, Tensor, Weight
    >>> g = Graph.build(
    ...     [Tensor("x", (8, 3)), Tensor("a", (8, 4)), Tensor("b", (8, 4)), Tensor("y", (2,))],
    ...     [Node("conv", "Conv1D", ("x",), ("a",), {}, (Weight("k", (3, 3, 4), "kernel"),)),
    ...      Node("relu", "ReLU", ("a",), ("b",)),
    ...      Node("fc", "Dense", ("b",), ("y",), {}, (Weight("k", (4, 2), "kernel"),))],
    ...     ["x"], ["y"])
    >>> groups = build_groups(g)
    >>> [(grp.size, grp.sources, grp.prunable) for grp in groups.groups]
    [(3, (), False), (4, ('conv',), True), (2, ('fc',), False)]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from edgekit.channels.axes import CHANNELWISE_OPS, EMBEDDING_OPS, SOURCE_OPS
from edgekit.channels.sequence import (
    ROLE_CHANNELWISE,
    ROLE_IN,
    ROLE_OUT,
    attention_rule,
    attention_unsupported,
    bidirectional_rule,
    bidirectional_unsupported,
)
from edgekit.ir.graph import Graph, Node
from edgekit.ir.ops import DEPTHWISE_OPS, ELEMENTWISE_TF_FUNCTIONS, MERGE_OPS, RESHAPE_OPS, SEPARABLE_OPS
from edgekit.ir.sequence import ATTENTION_OPS, BIDIRECTIONAL_OPS

PASS_THROUGH_OPS = frozenset({
    "Activation", "ReLU", "LeakyReLU", "ELU", "ThresholdedReLU", "Dropout", "SpatialDropout1D",
    "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
    "ActivityRegularization", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D",
    "AveragePooling2D", "AveragePooling3D", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D",
    "Cropping2D", "Cropping3D", "UpSampling1D", "UpSampling2D", "UpSampling3D", "RepeatVector", "Softmax",
    "Rescaling", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
})
# Weightless layers that work for any channel count, so one layer object may serve several calls.
_SHAPE_AGNOSTIC_OPS = PASS_THROUGH_OPS | MERGE_OPS | {"Concatenate", "Flatten"}
_CHANNEL_NORMALISING_ACTIVATIONS = frozenset({"softmax", "log_softmax"})

Keep = Mapping[int, frozenset[int]]  # group id -> kept units; a group left out keeps all its units


@dataclass(frozen=True)
class ChannelRef:
    """Where a group's channels appear in one layer: slots of `tensor`'s channel axis and their units.

    role: "out" (the layer produces these channels), "in" (it reads them: kernel input axis, or Dense
    rows after a Flatten, several slots per unit), "channelwise" (per-channel weights: BN, depthwise).
    """

    node: str
    role: str
    tensor: str
    slots: tuple[int, ...]
    units: tuple[int, ...]

    @property
    def offset(self) -> int:
        """First slot of this group in the tensor (a Concatenate input's channel offset)."""
        return min(self.slots)


@dataclass(frozen=True)
class ChannelGroup:
    """Channels that are kept or removed together: `size` units, their places, which are frozen and why."""

    id: int
    size: int
    members: tuple[ChannelRef, ...]
    frozen_units: frozenset[int]
    frozen_reasons: tuple[str, ...] = ()

    @property
    def sources(self) -> tuple[str, ...]:
        """Layers producing this group's channels (a residual group has several)."""
        return tuple(dict.fromkeys(m.node for m in self.members if m.role == ROLE_OUT))

    @property
    def prunable_units(self) -> int:
        return self.size - len(self.frozen_units)

    @property
    def prunable(self) -> bool:
        return self.prunable_units > 0 and bool(self.sources)


@dataclass(frozen=True)
class FrozenLayer:
    """A layer whose channels are never pruned, and why."""

    node: str
    op: str
    reason: str


@dataclass(frozen=True)
class ChannelGroups:
    """All channel groups of a graph, the frozen layers, and each tensor's slots as (group, unit)."""

    graph: Graph
    groups: tuple[ChannelGroup, ...]
    frozen_layers: tuple[FrozenLayer, ...]
    slot_units: Mapping[str, tuple[tuple[int, int], ...]]

    def group(self, group_id: int) -> ChannelGroup:
        return self.groups[group_id]

    @property
    def prunable_groups(self) -> tuple[ChannelGroup, ...]:
        return tuple(g for g in self.groups if g.prunable)

    def groups_of(self, node: str) -> tuple[ChannelGroup, ...]:
        """Groups with `node` among their members."""
        return tuple(g for g in self.groups if any(m.node == node for m in g.members))

    def kept_mask(self, tensor: str, keep: Keep) -> tuple[bool, ...]:
        """Per channel slot of `tensor`: does it survive `keep`?"""
        return tuple(_kept(keep, g, u) for g, u in self.slot_units[tensor])

    def keep_all(self) -> dict[int, frozenset[int]]:
        return {g.id: frozenset(range(g.size)) for g in self.groups}


def _kept(keep: Keep, group: int, unit: int) -> bool:
    units = keep.get(group)
    return units is None or unit in units


# --------------------------------------------------------------------------------------------- building


class _Builder:
    """Labels per tensor slot, a union-find over labels (units) and one over their creators (groups)."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.parent: list[int] = []
        self.creator: list[int] = []          # label -> creator id
        self.creator_parent: list[int] = []   # union-find over creators
        self.frozen: dict[int, str] = {}      # label -> first reason
        self.labels: dict[str, list[int]] = {}
        self.refs: list[tuple[str, str, str, list[int]]] = []
        self.frozen_layers: list[FrozenLayer] = []

    # -- union-find
    def new(self, n: int) -> list[int]:
        creator = len(self.creator_parent)
        self.creator_parent.append(creator)
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        self.creator.extend([creator] * n)
        return list(range(start, start + n))

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def _find_creator(self, c: int) -> int:
        while self.creator_parent[c] != c:
            self.creator_parent[c] = self.creator_parent[self.creator_parent[c]]
            c = self.creator_parent[c]
        return c

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra
        ca, cb = self._find_creator(self.creator[a]), self._find_creator(self.creator[b])
        if ca != cb:
            self.creator_parent[cb] = ca

    def freeze(self, labels: list[int], reason: str) -> None:
        for label in labels:
            self.frozen.setdefault(label, reason)

    # -- helpers for the rules
    def shape(self, tensor: str) -> tuple[int, ...]:
        return self.graph.tensors[tensor].shape

    def channels(self, tensor: str) -> int:
        return self.graph.tensors[tensor].channels

    def ref(self, node: Node, role: str, tensor: str, labels: list[int]) -> None:
        self.refs.append((node.name, role, tensor, labels))

    def freeze_layer(self, node: Node, reason: str) -> None:
        self.frozen_layers.append(FrozenLayer(node.name, node.op, reason))
        for t in node.inputs:
            self.freeze(self.labels[t], f"read by {node.name} ({node.op}): {reason}")
        for t in node.outputs:
            self.labels[t] = self.new(self.channels(t))
            self.freeze(self.labels[t], f"produced by {node.name} ({node.op}): {reason}")

    # -- the end
    def finish(self) -> ChannelGroups:
        group_of_creator: dict[int, int] = {}
        unit_of_root: dict[int, tuple[int, int]] = {}
        sizes: list[int] = []
        frozen_units: list[dict[int, str]] = []
        for label in range(len(self.parent)):
            c = self._find_creator(self.creator[label])
            if c not in group_of_creator:
                group_of_creator[c] = len(sizes)
                sizes.append(0)
                frozen_units.append({})
            gid = group_of_creator[c]
            root = self.find(label)
            if root not in unit_of_root:
                unit_of_root[root] = (gid, sizes[gid])
                sizes[gid] += 1
            if label in self.frozen:
                frozen_units[gid].setdefault(unit_of_root[root][1], self.frozen[label])

        def place(label: int) -> tuple[int, int]:
            return unit_of_root[self.find(label)]

        members: list[list[ChannelRef]] = [[] for _ in sizes]
        for node, role, tensor, labels in self.refs:
            by_group: dict[int, tuple[list[int], list[int]]] = {}
            for slot, label in enumerate(labels):
                gid, unit = place(label)
                slots, units = by_group.setdefault(gid, ([], []))
                slots.append(slot)
                units.append(unit)
            for gid, (slots, units) in by_group.items():
                members[gid].append(ChannelRef(node, role, tensor, tuple(slots), tuple(units)))
        groups = tuple(
            ChannelGroup(gid, sizes[gid], tuple(members[gid]), frozenset(frozen_units[gid]),
                         tuple(dict.fromkeys(frozen_units[gid].values())))
            for gid in range(len(sizes)))
        slot_units = {t: tuple(place(label) for label in labels) for t, labels in self.labels.items()}
        return ChannelGroups(self.graph, groups, tuple(self.frozen_layers), MappingProxyType(slot_units))


# --------------------------------------------------------------------------------------------- rules


def _base_name(node: Node) -> str:
    head, sep, tail = node.name.rpartition(":")
    return head if sep and tail.isdigit() else node.name


def _shared_layers(graph: Graph) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in graph.nodes:
        counts[_base_name(node)] = counts.get(_base_name(node), 0) + 1
    return {name: n for name, n in counts.items() if n > 1}


def _is_channel_axis(axis, rank_with_batch: int) -> bool:
    if isinstance(axis, (list, tuple)):
        return len(axis) == 1 and _is_channel_axis(axis[0], rank_with_batch)
    return axis is not None and int(axis) in (-1, rank_with_batch - 1)


def _unsupported_reason(b: _Builder, node: Node, shared: dict[str, int]) -> str | None:
    """Why the rules cannot follow this layer's channels, or None if they can."""
    op, attrs = node.op, node.attrs
    known = SOURCE_OPS | CHANNELWISE_OPS | PASS_THROUGH_OPS | MERGE_OPS | RESHAPE_OPS | {"Concatenate"}
    if op == "TFOpLambda":
        function = attrs.get("function")
        if function not in ELEMENTWISE_TF_FUNCTIONS or not attrs.get("scalar_operands"):
            return f"TF operation {function} is not an element-wise operation with scalar operands"
        if len(node.inputs) != 1 or len(node.outputs) != 1 or b.shape(node.inputs[0]) != b.shape(node.outputs[0]):
            return f"TF operation {function} changes the shape or reads several tensors"
        return None
    if op == "LayerNormalization":
        return "normalises across channels, so removing one changes the others"
    if op in BIDIRECTIONAL_OPS and bidirectional_unsupported(node) is not None:
        return bidirectional_unsupported(node)
    if op in ATTENTION_OPS:
        if _base_name(node) in shared:
            return f"shared layer (applied {shared[_base_name(node)]} times)"
        if any(d < 0 for t in (*node.inputs, *node.outputs) for d in b.shape(t)):
            return "tensor shape not fully known"
        return attention_unsupported(b.shape, node)
    if op not in known:
        return f"{op} is not a layer the pruner can follow channels through"
    if _base_name(node) in shared and op not in _SHAPE_AGNOSTIC_OPS:
        return f"shared layer (applied {shared[_base_name(node)]} times)"
    if attrs.get("data_format") == "channels_first":
        return "channels_first layout"
    if len(node.inputs) != 1 and op not in MERGE_OPS | {"Concatenate"}:
        return f"{len(node.inputs)} inputs where one is expected"
    if len(node.outputs) != 1:
        return f"{len(node.outputs)} outputs where one is expected"
    x = node.inputs[0]
    if any(d < 0 for t in (*node.inputs, *node.outputs) for d in b.shape(t)):
        return "tensor shape not fully known"
    if int(attrs.get("groups", 1) or 1) != 1:
        return f"grouped convolution (groups={attrs.get('groups')})"
    if op == "BatchNormalization" and not _is_channel_axis(attrs.get("axis", -1), len(b.shape(x)) + 1):
        return f"normalises axis {attrs.get('axis')}, not the channel axis"
    if op == "PReLU" and (len(node.weights) != 1 or node.weights[0].shape[-1] != b.channels(x)):
        return "alpha is shared across channels"
    if op == "Softmax" and _is_channel_axis(attrs.get("axis", -1), len(b.shape(x)) + 1):
        return "softmax normalises across channels"
    if op == "Activation" and attrs.get("activation") in _CHANNEL_NORMALISING_ACTIVATIONS:
        return f"{attrs.get('activation')} normalises across channels"
    if op == "Rescaling" and not all(isinstance(attrs.get(k, 0.0), (int, float)) for k in ("scale", "offset")):
        return "per-channel scale or offset"
    if op in RESHAPE_OPS:
        y = node.outputs[0]
        if not b.shape(x) or not b.shape(y) or b.shape(y)[-1] % b.channels(x):
            return f"reshapes {b.shape(x)} to {b.shape(y)}, moving channels off the last axis"
    if op in MERGE_OPS:
        width = b.channels(node.outputs[0])
        odd = [b.channels(t) for t in node.inputs if b.channels(t) not in (width, 1)]
        if odd:
            return f"inputs with {odd} channels cannot be matched to the output's {width}"
    return None


def _source(b: _Builder, node: Node) -> None:
    x, y = node.inputs[0], node.outputs[0]
    if node.op in EMBEDDING_OPS:
        b.freeze(b.labels[x], f"read by {node.name} (Embedding): token ids, not channels")
    else:
        b.ref(node, ROLE_IN, x, b.labels[x])
    if node.op in SEPARABLE_OPS:
        b.ref(node, ROLE_CHANNELWISE, x, b.labels[x])
    out = b.new(b.channels(y))
    b.labels[y] = out
    b.ref(node, ROLE_OUT, y, out)
    if node.activation in _CHANNEL_NORMALISING_ACTIVATIONS:
        b.freeze(out, f"produced by {node.name}: {node.activation} normalises across channels")


def _channelwise(b: _Builder, node: Node) -> None:
    x, y = node.inputs[0], node.outputs[0]
    labels = b.labels[x]
    b.ref(node, ROLE_CHANNELWISE, x, labels)
    if node.op in DEPTHWISE_OPS:
        m = int(node.attrs.get("depth_multiplier", 1) or 1)
        labels = [label for label in labels for _ in range(m)]  # channel c, multiplier j -> c * m + j
    b.labels[y] = list(labels)


def _pass_through(b: _Builder, node: Node) -> None:
    b.labels[node.outputs[0]] = list(b.labels[node.inputs[0]])


def _reshape(b: _Builder, node: Node) -> None:
    # Channels-last flattening: element k of the output holds channel k % C (checked: last dim % C == 0).
    labels = b.labels[node.inputs[0]]
    width = b.channels(node.outputs[0])
    b.labels[node.outputs[0]] = [labels[i % len(labels)] for i in range(width)]


def _merge(b: _Builder, node: Node) -> None:
    width = b.channels(node.outputs[0])
    full = [b.labels[t] for t in node.inputs if b.channels(t) == width]
    for other in full[1:]:  # a 1-channel input broadcasts over all channels and ties nothing
        for a, c in zip(full[0], other):
            b.union(a, c)
    b.labels[node.outputs[0]] = list(full[0])


def _concatenate(b: _Builder, node: Node) -> None:
    rank = len(b.shape(node.outputs[0])) + 1
    if _is_channel_axis(node.attrs.get("axis", -1), rank):
        b.labels[node.outputs[0]] = [label for t in node.inputs for label in b.labels[t]]
    else:  # joined along a spatial axis: channel c of every input is channel c of the output
        _merge(b, node)


def _rule(op: str):
    if op in ATTENTION_OPS:
        return attention_rule
    if op in BIDIRECTIONAL_OPS:
        return bidirectional_rule
    if op in SOURCE_OPS:
        return _source
    if op in CHANNELWISE_OPS:
        return _channelwise
    if op in RESHAPE_OPS:
        return _reshape
    if op in MERGE_OPS:
        return _merge
    if op == "Concatenate":
        return _concatenate
    return _pass_through


def build_groups(graph: Graph) -> ChannelGroups:
    """The channel dependency groups of `graph`, with frozen layers and the reasons.

    Model inputs and the model's output channels are frozen (a pruned model keeps its interface).
    """
    b = _Builder(graph)
    for t in graph.inputs:
        b.labels[t] = b.new(b.channels(t))
        b.freeze(b.labels[t], f"model input {t}")
    shared = _shared_layers(graph)
    for node in graph.nodes:
        reason = _unsupported_reason(b, node, shared)
        if reason is not None:
            b.freeze_layer(node, reason)
        else:
            _rule(node.op)(b, node)
    for t in graph.outputs:
        producer = graph.producer(t)
        name = producer.name if producer is not None else t
        b.freeze(b.labels[t], f"model output ({name})")
        if producer is not None and all(f.node != name for f in b.frozen_layers):
            b.frozen_layers.append(FrozenLayer(name, producer.op, "model output"))
    return b.finish()
