"""Which axis of each weight carries which channels, per layer type (pure; no TensorFlow).

One table serves three readers: the IR shrinker (new weight shapes), the importance criteria (which
slices belong to a channel) and the surgery (which slices to copy). Axis kinds:

- ``"in"``: the layer's input channels (a kernel's input axis, BatchNormalization's vectors, a
  depthwise kernel's channel axis);
- ``"out"``: the channels the layer produces (a kernel's output axis, the bias);
- ``"mid"``: a SeparableConv's depthwise output (input channel c, multiplier j at c * m + j), which the
  pointwise kernel reads;
- RNN and attention kinds (``"gates"``, ``"out_backward"``, ``"gates_backward"``, ``"heads"``,
  ``"key_dim"``, ``"value_dim"``, ``"in_key"``, ``"in_value"``): see edgekit.channels.sequence.

    >>> from edgekit.ir.graph import Node, Weight
    >>> conv = Node("c", "Conv2D", ("x",), ("y",), {}, (Weight("k", (3, 3, 8, 16), "kernel"),))
    >>> weight_axes(conv, conv.weights[0])
    {2: 'in', 3: 'out'}
"""

from __future__ import annotations

from edgekit.channels.sequence import sequence_weight_axes
from edgekit.ir.graph import Node, Weight
from edgekit.ir.ops import CONV_OPS, DENSE_OPS, DEPTHWISE_OPS, SEPARABLE_OPS, TRANSPOSED_CONV_OPS
from edgekit.ir.sequence import ATTENTION_OPS, BIDIRECTIONAL_OPS, RNN_OPS

EMBEDDING_OPS = frozenset({"Embedding"})
#: Layers whose output channels are born there: each output channel can be kept or dropped on its own.
SOURCE_OPS = (CONV_OPS | TRANSPOSED_CONV_OPS | SEPARABLE_OPS | DENSE_OPS | EMBEDDING_OPS | RNN_OPS
              | BIDIRECTIONAL_OPS)
#: Layers with per-channel weights on channels that pass through them.
CHANNELWISE_OPS = DEPTHWISE_OPS | frozenset({"BatchNormalization", "PReLU"})

#: The config key that holds a source layer's output channel count.
WIDTH_KEY = {**{op: "filters" for op in CONV_OPS | TRANSPOSED_CONV_OPS | SEPARABLE_OPS},
             "Dense": "units", "Embedding": "output_dim", **{op: "units" for op in RNN_OPS}}

#: Weight roles that are kernels (read by the magnitude criteria); biases and BN vectors are not.


def weight_axes(node: Node, weight: Weight) -> dict[int, str]:
    """{axis: kind} of one weight of `node` (kinds "in", "out", "mid"); {} if no axis follows channels.

    Axes are non-negative. Called only for layers the grouping supports (see groups.py).
    """
    rank = len(weight.shape)
    op, role = node.op, weight.role
    if rank == 0:
        return {}
    if op in RNN_OPS | BIDIRECTIONAL_OPS | ATTENTION_OPS:
        return sequence_weight_axes(node, weight)
    if op in CONV_OPS | DENSE_OPS:
        if role == "kernel" and int(node.attrs.get("groups", 1) or 1) != 1:
            return {rank - 1: "out"}  # a grouped kernel's input axis holds one group's channels (layer frozen)
        if role == "kernel":
            return {rank - 2: "in", rank - 1: "out"}
        return {0: "out"} if role == "bias" else {}
    if op in TRANSPOSED_CONV_OPS:  # kernel (*k, out, in)
        if role == "kernel":
            return {rank - 2: "out", rank - 1: "in"}
        return {0: "out"} if role == "bias" else {}
    if op in SEPARABLE_OPS:
        if role == "depthwise_kernel":
            return {rank - 2: "in"}
        if role == "pointwise_kernel":
            return {rank - 2: "mid", rank - 1: "out"}
        return {0: "out"} if role == "bias" else {}
    if op in DEPTHWISE_OPS:
        if role == "depthwise_kernel":
            return {rank - 2: "in"}
        return {0: "out"} if role == "bias" else {}
    if op == "BatchNormalization":
        return {0: "in"} if role in ("gamma", "beta", "moving_mean", "moving_variance") else {}
    if op == "PReLU":
        return {rank - 1: "in"}  # grouping freezes PReLUs whose alpha is shared over the channel axis
    if op in EMBEDDING_OPS:
        return {rank - 1: "out"} if role == "embeddings" else {}
    return {}


def depth_multiplier(node: Node) -> int:
    return int(node.attrs.get("depth_multiplier", 1) or 1)


def mid_mask(in_mask: list[bool] | tuple[bool, ...], multiplier: int) -> list[bool]:
    """The depthwise output mask of a SeparableConv: input channel c appears at c * m + j."""
    return [kept for kept in in_mask for _ in range(multiplier)]
