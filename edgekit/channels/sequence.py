"""Channel rules for recurrent and attention layers (pure): RNN units, attention heads and key/value dims.

A recurrent layer (LSTM, GRU, SimpleRNN) creates `units` channels like a Dense creates its units, but
each unit owns one column in every gate block of the kernel, the recurrent kernel and the bias, and
one row of the recurrent kernel: removing unit i removes all of them (weight axis kind "gates": the out
mask repeated once per gate block).

MultiHeadAttention creates three groups no tensor shows (Torch-Pruning does this for PyTorch; here for
Keras): its heads, its key dimensions (shared by query and key) and its value dimensions (shared by
value and the output projection). They live on internal tensors named `<layer>#heads`,
`<layer>#key_dim`, `<layer>#value_dim`, so the grouping, ranking and selection treat them like any
channels. Its output has as many channels as its query unless `output_shape` is set, so those two are
tied.

A Bidirectional around an LSTM, GRU or SimpleRNN holds two such layers (tf_keras keeps the forward
layer's weights first, then the backward layer's). Its backward weights carry the kinds "out_backward"
and "gates_backward". With merge_mode "concat" the output channels are [forward units, backward units]:
two groups, pruned independently; with "sum", "mul" or "ave" output channel i merges unit i of both
directions, so they form one group and both directions keep the same units.

    >>> internal_tensor("mha", "heads")
    'mha#heads'
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping

from edgekit.ir.graph import Node, Weight
from edgekit.ir.sequence import (
    ATTENTION_OPS,
    BIDIRECTIONAL_OPS,
    RNN_OPS,
    attention_part,
    attention_sizes,
    gates,
    recurrent_op,
    wrapped_op,
)

ROLE_OUT = "out"                  # channels the layer produces (kernel output axis, bias)
ROLE_IN = "in"                    # channels the layer reads (kernel input axis; Dense rows after Flatten)
ROLE_CHANNELWISE = "channelwise"  # per-channel weights on channels passing through (BN, depthwise, PReLU)

ATTENTION_KINDS = ("heads", "key_dim", "value_dim")
BACKWARD = "_backward"  # suffix of a Bidirectional's backward-direction axis kinds
#: Axis kinds of the weights that produce a recurrent layer's units (both directions of a Bidirectional).
RECURRENT_OUT_KINDS = ("out", "gates", "out" + BACKWARD, "gates" + BACKWARD)
MERGE_MODES = frozenset({"concat", "sum", "mul", "ave"})
_INPUT_KIND = {"query": "in", "key": "in_key", "value": "in_value"}
_PART_AXES = {  # attention part -> the kinds of its kernel axes; its bias drops the first
    "query": ("heads", "key_dim"), "key": ("heads", "key_dim"), "value": ("heads", "value_dim"),
}


def internal_tensor(node_name: str, kind: str) -> str:
    """The name of a layer's internal channel set (attention heads, key dims, value dims)."""
    return f"{node_name}#{kind}"


def internal_kind(tensor: str) -> str | None:
    """'heads' for 'mha#heads'; None for a real tensor."""
    _, sep, kind = tensor.rpartition("#")
    return kind if sep and kind in ATTENTION_KINDS else None


def sequence_weight_axes(node: Node, weight: Weight) -> dict[int, str]:
    """{axis: kind} of an RNN, Bidirectional or MultiHeadAttention weight (kinds: in, out, gates, heads, ...)."""
    if node.op in BIDIRECTIONAL_OPS:
        if bidirectional_unsupported(node) is not None:  # frozen: its weights are kept whole
            return {}
        axes = _recurrent_axes(weight)
        if not is_backward(node, weight):
            return axes
        return {axis: kind if kind == "in" else kind + BACKWARD for axis, kind in axes.items()}
    if node.op in RNN_OPS:
        return _recurrent_axes(weight)
    part = attention_part(weight)
    if node.op not in ATTENTION_OPS or part is None:
        return {}
    if part == "attention_output":
        return {0: "heads", 1: "value_dim", 2: "out"} if weight.role == "kernel" else {0: "out"}
    head_axes = _PART_AXES[part]
    if weight.role == "kernel":
        return {0: _INPUT_KIND[part], 1: head_axes[0], 2: head_axes[1]}
    return {0: head_axes[0], 1: head_axes[1]} if weight.role == "bias" else {}


def _recurrent_axes(weight: Weight) -> dict[int, str]:
    if weight.role == "kernel":
        return {0: "in", 1: "gates"}
    if weight.role == "recurrent_kernel":
        return {0: "out", 1: "gates"}
    return {len(weight.shape) - 1: "gates"} if weight.role == "bias" else {}   # GRU reset_after: (2, 3 * units)


def sequence_masks(node: Node, masks: Mapping[str, tuple[bool, ...]], out_mask: list[bool]) -> dict[str, list[bool]]:
    """Extra kept-slot masks by kind for an RNN ("gates"), a Bidirectional (each direction's "out" and
    "gates") or a MultiHeadAttention (heads, dims, inputs)."""
    if node.op in RNN_OPS:
        return {"gates": list(out_mask) * gates(node.op)}
    if node.op in BIDIRECTIONAL_OPS and bidirectional_unsupported(node) is None:
        forward, backward = direction_masks(node, out_mask)
        n_gates = gates(recurrent_op(node))
        return {"out": forward, "gates": forward * n_gates,
                "out" + BACKWARD: backward, "gates" + BACKWARD: backward * n_gates}
    if node.op not in ATTENTION_OPS:
        return {}
    _, value, key = attention_inputs(node)
    extra = {"in_value": list(masks[value]), "in_key": list(masks[key])}
    for kind, size in zip(ATTENTION_KINDS, attention_sizes(node)):
        # A frozen attention layer has no internal channel sets: it keeps all of them.
        extra[kind] = list(masks.get(internal_tensor(node.name, kind), (True,) * size))
    return extra


def attention_inputs(node: Node) -> tuple[str, str, str]:
    """(query, value, key) tensors of a MultiHeadAttention node (key defaults to value, value to query)."""
    query = node.inputs[0]
    value = node.inputs[1] if len(node.inputs) > 1 else query
    return query, value, node.inputs[2] if len(node.inputs) > 2 else value


def resized_attrs(node: Node, by_kind: Mapping[str, list[bool]], config: Mapping | None = None) -> dict:
    """Config values to change after pruning (units; num_heads, key_dim, value_dim; a Bidirectional's
    layer and backward_layer). config: the layer's own config, when it is not node.attrs (the surgery)."""
    if node.op in RNN_OPS and "out" in by_kind:
        return {"units": int(sum(by_kind["out"]))}
    if node.op in BIDIRECTIONAL_OPS and "out" + BACKWARD in by_kind:
        return bidirectional_layers(node.attrs if config is None else config, int(sum(by_kind["out"])),
                                    int(sum(by_kind["out" + BACKWARD])))
    if node.op in ATTENTION_OPS and "heads" in by_kind:
        return {"num_heads": int(sum(by_kind["heads"])), "key_dim": int(sum(by_kind["key_dim"])),
                "value_dim": int(sum(by_kind["value_dim"]))}
    return {}


def query_rescale(node: Node, by_kind: Mapping[str, list[bool]]) -> float:
    """Factor for the query projection after removing key dims: attention divides scores by
    sqrt(key_dim), so sqrt(kept / before) keeps every remaining score as it was."""
    if node.op not in ATTENTION_OPS or "key_dim" not in by_kind:
        return 1.0
    return math.sqrt(sum(by_kind["key_dim"]) / len(by_kind["key_dim"]))


def attention_unsupported(shape_of, node: Node) -> str | None:
    """Why the attention rule cannot follow this MultiHeadAttention, or None."""
    if not 1 <= len(node.inputs) <= 3 or len(node.outputs) != 1:
        return f"{len(node.inputs)} inputs / {len(node.outputs)} outputs (attention masks are not followed)"
    axes = node.attrs.get("attention_axes")
    rank = len(shape_of(node.inputs[0])) + 1   # with the batch axis
    if axes is not None and sorted(int(a) % rank for a in axes) != list(range(1, rank - 1)):
        return f"attention over axes {axes}"  # tf_keras stores the default (every axis but batch, channels)
    try:
        sizes = attention_sizes(node)
    except (KeyError, ValueError):
        return "its query/key/value weights are not recognised"
    query, value, key = attention_inputs(node)
    dims = {"query": shape_of(query)[-1], "key": shape_of(key)[-1], "value": shape_of(value)[-1]}
    for w in node.weights:
        part = attention_part(w)
        if part in dims and w.role == "kernel" and w.shape[0] != dims[part]:
            return f"{part} kernel {w.shape} does not match the {part} input's {dims[part]} channels"
    return None if all(s > 0 for s in sizes) else "empty heads"


def attention_rule(b, node: Node) -> None:
    """Refs for the inputs, fresh groups for heads / key dims / value dims, the output (tied to the query)."""
    query, value, key = attention_inputs(node)
    for tensor in dict.fromkeys((query, value, key)):
        b.ref(node, ROLE_IN, tensor, b.labels[tensor])
    for kind, size in zip(ATTENTION_KINDS, attention_sizes(node)):
        name = internal_tensor(node.name, kind)
        b.labels[name] = b.new(size)
        b.ref(node, ROLE_OUT, name, b.labels[name])
    y = node.outputs[0]
    out = b.new(b.channels(y))
    b.labels[y] = out
    b.ref(node, ROLE_OUT, y, out)
    if node.attrs.get("output_shape") is None:  # output width follows the query's width when rebuilt
        for a, c in zip(b.labels[query], out):
            b.union(a, c)


# --------------------------------------------------------------------------------------------- Bidirectional


def is_backward(node: Node, weight: Weight) -> bool:
    """Whether `weight` is the backward layer's (the second half of a Bidirectional's weights, as tf_keras'
    own set_weights splits them)."""
    if node.op not in BIDIRECTIONAL_OPS:
        return False
    names = [w.name for w in node.weights]
    return names.index(weight.name) >= len(names) // 2


def direction_units(node: Node) -> tuple[int, int]:
    """(forward, backward) units of a Bidirectional, read from its two recurrent kernels."""
    forward, backward = (w.shape[0] for w in node.weights if w.role == "recurrent_kernel")
    return forward, backward


def concatenates(node: Node) -> bool:
    return node.attrs.get("merge_mode", "concat") == "concat"


def direction_masks(node: Node, out_mask) -> tuple[list[bool], list[bool]]:
    """(forward, backward) kept units of a Bidirectional from its output's kept-slot mask."""
    if not concatenates(node):  # merged slot by slot: both directions keep the same units
        return list(out_mask), list(out_mask)
    forward, _ = direction_units(node)
    return list(out_mask[:forward]), list(out_mask[forward:])


def direction_offset(node: Node, kind: str) -> int:
    """First output slot of the direction an axis kind belongs to (the backward units follow the forward
    ones when concatenated)."""
    return direction_units(node)[0] if kind.endswith(BACKWARD) and concatenates(node) else 0


def bidirectional_unsupported(node: Node) -> str | None:
    """Why the Bidirectional rule cannot follow this layer, or None."""
    inner = recurrent_op(node)
    if inner is None:
        return f"wraps {wrapped_op(node)}, not an LSTM, GRU or SimpleRNN"
    mode = node.attrs.get("merge_mode", "concat")
    if mode not in MERGE_MODES:
        return f"merge_mode {mode!r} (one output per direction)"
    backward = node.attrs.get("backward_layer")
    if isinstance(backward, dict) and backward.get("class_name") != inner:
        return f"its backward layer is a {backward.get('class_name')}, its forward layer a {inner}"
    if len(node.weights) % 2 or [w.role for w in node.weights].count("recurrent_kernel") != 2:
        return "its forward and backward weights are not recognised"
    forward, backward_units = direction_units(node)
    if mode != "concat" and forward != backward_units:
        return f"merges {forward} forward and {backward_units} backward units"
    return None


def bidirectional_rule(b, node: Node) -> None:
    """The input read by both directions; fresh units per direction (concat) or one set for both (merged)."""
    x, y = node.inputs[0], node.outputs[0]
    b.ref(node, ROLE_IN, x, b.labels[x])
    forward, backward = direction_units(node)
    out = b.new(forward) + (b.new(backward) if concatenates(node) else [])
    b.labels[y] = out
    b.ref(node, ROLE_OUT, y, out)


def bidirectional_layers(config: Mapping, forward: int, backward: int) -> dict:
    """A Bidirectional's "layer" (and "backward_layer") configs with `forward` / `backward` units.

    Directions of different widths need an explicit backward layer: tf_keras otherwise copies the forward
    one (with go_backwards flipped), so that copy is written out with its own units.
    """
    layer = copy.deepcopy(dict(config["layer"]))
    out = {"layer": layer}
    if isinstance(config.get("backward_layer"), dict):
        out["backward_layer"] = copy.deepcopy(dict(config["backward_layer"]))
    elif backward != forward:
        out["backward_layer"] = copy.deepcopy(layer)
        inner = out["backward_layer"]["config"]
        inner["go_backwards"] = not inner.get("go_backwards", False)
    layer["config"]["units"] = forward
    if "backward_layer" in out:
        out["backward_layer"]["config"]["units"] = backward
    return out
