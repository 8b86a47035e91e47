"""Facts about recurrent and attention layers in the IR (pure): gate counts, weight parts, time steps.

Recurrent layers (LSTM, GRU, SimpleRNN, and Bidirectional around one) read a (steps, features) tensor;
their kernel is (features, gates * units), their recurrent kernel (units, gates * units), gate blocks
side by side (LSTM: i, f, c, o; GRU: z, r, h). MultiHeadAttention holds four EinsumDense projections:
query, key, value (kernel (dim, heads, key_dim or value_dim), bias (heads, dim)) and attention_output
(kernel (heads, value_dim, out), bias (out,)).

    >>> gates("LSTM"), gates("GRU")
    (4, 3)
"""

from __future__ import annotations

import math

from edgekit.ir.graph import Node, Weight

RNN_GATES = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}
RNN_OPS = frozenset(RNN_GATES)
BIDIRECTIONAL_OPS = frozenset({"Bidirectional"})
ATTENTION_OPS = frozenset({"MultiHeadAttention"})
ATTENTION_PARTS = ("query", "key", "value", "attention_output")


def gates(op: str) -> int:
    """Gate blocks in a recurrent layer's kernels (LSTM 4, GRU 3, SimpleRNN 1)."""
    return RNN_GATES[op]


def wrapped_op(node: Node) -> str | None:
    """The recurrent layer class a Bidirectional wraps (from its config), else None."""
    layer = node.attrs.get("layer")
    return layer.get("class_name") if isinstance(layer, dict) else None


def recurrent_op(node: Node) -> str | None:
    """LSTM / GRU / SimpleRNN for those layers and for a Bidirectional around one, else None."""
    op = wrapped_op(node) if node.op in BIDIRECTIONAL_OPS else node.op
    return op if op in RNN_OPS else None


def time_steps(shape: tuple[int, ...]) -> int:
    """Steps of a (steps, features) input; an unknown (-1) length counts as 1 step."""
    return max(shape[0], 1) if len(shape) >= 2 else 1


def attention_part(weight: Weight) -> str | None:
    """'query', 'key', 'value' or 'attention_output' for a MultiHeadAttention weight, from its name."""
    parts = weight.name.split(":")[0].split("/")
    return next((p for p in reversed(parts[:-1]) if p in ATTENTION_PARTS), None)


def attention_weights(node: Node) -> dict[str, dict[str, Weight]]:
    """{part: {"kernel": w, "bias": w}} of a MultiHeadAttention node."""
    out: dict[str, dict[str, Weight]] = {}
    for w in node.weights:
        part = attention_part(w)
        if part is not None:
            out.setdefault(part, {})[w.role] = w
    return out


def attention_sizes(node: Node) -> tuple[int, int, int]:
    """(heads, key_dim, value_dim) of a MultiHeadAttention node, read from its weights."""
    parts = attention_weights(node)
    heads, key_dim = parts["query"]["kernel"].shape[-2:]
    value_dim = parts["value"]["kernel"].shape[-1]
    return heads, key_dim, value_dim


def positions(shape: tuple[int, ...]) -> int:
    """Elements of all axes but the last (the positions attention runs over)."""
    return math.prod(shape[:-1]) if len(shape) > 1 else 1
