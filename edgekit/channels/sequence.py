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

    >>> internal_tensor("mha", "heads")
    'mha#heads'
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from edgekit.ir.graph import Node, Weight
from edgekit.ir.sequence import ATTENTION_OPS, RNN_OPS, attention_part, attention_sizes, gates

ROLE_OUT = "out"                  # channels the layer produces (kernel output axis, bias)
ROLE_IN = "in"                    # channels the layer reads (kernel input axis; Dense rows after Flatten)
ROLE_CHANNELWISE = "channelwise"  # per-channel weights on channels passing through (BN, depthwise, PReLU)

ATTENTION_KINDS = ("heads", "key_dim", "value_dim")
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
    """{axis: kind} of an RNN or MultiHeadAttention weight (kinds: in, out, gates, heads, key_dim, ...)."""
    rank = len(weight.shape)
    if node.op in RNN_OPS:
        if weight.role == "kernel":
            return {0: "in", 1: "gates"}
        if weight.role == "recurrent_kernel":
            return {0: "out", 1: "gates"}
        return {rank - 1: "gates"} if weight.role == "bias" else {}   # GRU reset_after: (2, 3 * units)
    part = attention_part(weight)
    if node.op not in ATTENTION_OPS or part is None:
        return {}
    if part == "attention_output":
        return {0: "heads", 1: "value_dim", 2: "out"} if weight.role == "kernel" else {0: "out"}
    head_axes = _PART_AXES[part]
    if weight.role == "kernel":
        return {0: _INPUT_KIND[part], 1: head_axes[0], 2: head_axes[1]}
    return {0: head_axes[0], 1: head_axes[1]} if weight.role == "bias" else {}


def sequence_masks(node: Node, masks: Mapping[str, tuple[bool, ...]], out_mask: list[bool]) -> dict[str, list[bool]]:
    """Extra kept-slot masks by kind for an RNN ("gates") or a MultiHeadAttention (heads, dims, inputs)."""
    if node.op in RNN_OPS:
        return {"gates": list(out_mask) * gates(node.op)}
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


def resized_attrs(node: Node, by_kind: Mapping[str, list[bool]]) -> dict:
    """Config values to change after pruning (units; num_heads, key_dim, value_dim)."""
    if node.op in RNN_OPS and "out" in by_kind:
        return {"units": int(sum(by_kind["out"]))}
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
