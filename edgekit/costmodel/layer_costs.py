"""Per-layer costs over the graph IR: params, MACs, other ops, weight and activation bytes (pure).

Conventions (the same as STM32Cube.AI's and most papers' MAC counts):
- MACs count multiply-accumulates of conv, depthwise, separable, transposed conv and dense layers,
  per sample; bias additions are not MACs. Recurrent layers (LSTM, GRU, SimpleRNN, Bidirectional):
  per time step every gate's input x kernel and state x recurrent kernel, times the steps.
  MultiHeadAttention: the four projections plus heads x Tq x Tk x (key_dim + value_dim) for the
  scores and the weighted sum of values.
- `ops` counts the other arithmetic: pooling window reads, element-wise merges (n-1 per output),
  activations, BatchNormalization (scale and shift, 2 per element; folded into the conv by TFLite).
- Weight bytes per precision: float32 = 4 B, float16 = 2 B per weight; int8 as TFLite stores it:
  kernels 1 B, biases 4 B (int32), BatchNormalization folded into a preceding conv/dense (0 B, or a
  new int32 bias when that layer had none), other weights 1 B; int16x8 as int8 but biases of 8 B (int64,
  the bias type of TFLite's and CMSIS-NN's 16x8 conv / fully connected kernels).
- Activation bytes: the layer's output tensors, per sample, at float32 and at int8.

    >>> from edgekit.ir.graph import Graph, Node, Tensor, Weight
    >>> g = Graph.build([Tensor("x", (8,)), Tensor("y", (4,))],
    ...                 [Node("d", "Dense", ("x",), ("y",), {"units": 4},
    ...                       (Weight("k", (8, 4), "kernel"), Weight("b", (4,), "bias")))], ["x"], ["y"])
    >>> analyze(g).macs
    32
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgekit.ir.graph import Graph, Node
from edgekit.ir.ops import (
    ACTIVATION_OPS,
    CONV_OPS,
    DENSE_OPS,
    DEPTHWISE_OPS,
    FOLDABLE_INTO,
    GLOBAL_POOL_OPS,
    KERNEL_ROLES,
    MAC_OPS,
    MERGE_OPS,
    POOL_OPS,
    TRANSPOSED_CONV_OPS,
)
from edgekit.ir.sequence import (
    ATTENTION_OPS,
    BIDIRECTIONAL_OPS,
    RNN_OPS,
    attention_sizes,
    attention_weights,
    positions,
    recurrent_op,
    time_steps,
)

SEQUENCE_OPS = RNN_OPS | BIDIRECTIONAL_OPS | ATTENTION_OPS


@dataclass(frozen=True)
class WeightBytes:
    float32: int
    float16: int
    int8: int
    int64_bias_extra: int = 0   # what int16x8 adds to int8: its conv / dense biases are int64, not int32

    def at(self, precision: str) -> int:
        if precision in ("int8", "dynamic_int8"):
            return self.int8
        if precision == "int16x8":
            return self.int8 + self.int64_bias_extra
        if precision == "float16":
            return self.float16
        return self.float32


@dataclass(frozen=True)
class LayerCost:
    name: str
    op: str
    output_shape: tuple[int, ...]
    params: int
    macs: int
    ops: int
    weight_bytes: WeightBytes
    activation_bytes_float32: int
    activation_bytes_int8: int


@dataclass(frozen=True)
class ModelCost:
    layers: tuple[LayerCost, ...]

    @property
    def params(self) -> int:
        return sum(c.params for c in self.layers)

    @property
    def macs(self) -> int:
        return sum(c.macs for c in self.layers)

    @property
    def ops(self) -> int:
        return sum(c.ops for c in self.layers)

    @property
    def weight_bytes(self) -> WeightBytes:
        return WeightBytes(*(sum(getattr(c.weight_bytes, p) for c in self.layers)
                             for p in ("float32", "float16", "int8", "int64_bias_extra")))

    def layer(self, name: str) -> LayerCost:
        return next(c for c in self.layers if c.name == name)


def _spatial(shape: tuple[int, ...]) -> int:
    """Elements of all axes but the last (channels)."""
    return math.prod(shape[:-1]) if len(shape) > 1 else 1


def _window(node: Node, key: str) -> int:
    value = node.attrs.get(key) or 1
    return math.prod(value) if isinstance(value, (list, tuple)) else int(value)


def _recurrent_macs(graph: Graph, node: Node) -> int:
    """Per step: input x kernel plus state x recurrent kernel (every gate), times the steps."""
    steps = time_steps(graph.input_tensors(node)[0].shape)
    return steps * sum(w.size for w in node.weights if w.role in ("kernel", "recurrent_kernel"))


def _attention_macs(graph: Graph, node: Node) -> int:
    """Query/key/value/output projections plus the scores (Q K^T) and the weighted sum of values, per head."""
    ins = graph.input_tensors(node)
    query, value = ins[0], ins[1] if len(ins) > 1 else ins[0]
    key = ins[2] if len(ins) > 2 else value
    tq, tk = positions(query.shape), positions(key.shape)
    parts = attention_weights(node)
    heads, key_dim, value_dim = attention_sizes(node)
    projections = (tq * parts["query"]["kernel"].size + tk * parts["key"]["kernel"].size
                   + positions(value.shape) * parts["value"]["kernel"].size
                   + tq * parts["attention_output"]["kernel"].size)
    return projections + heads * tq * tk * (key_dim + value_dim)


def layer_macs(graph: Graph, node: Node) -> int:
    """Multiply-accumulates of one layer application, per sample."""
    if recurrent_op(node) is not None:
        return _recurrent_macs(graph, node)
    if node.op in ATTENTION_OPS:
        return _attention_macs(graph, node)
    if node.op not in MAC_OPS:
        return 0
    x = graph.input_tensors(node)[0]
    y = graph.output_tensors(node)[0]
    if node.op in DENSE_OPS:
        return _spatial(x.shape) * x.channels * y.channels
    kernel = node.weight("depthwise_kernel") or node.weight("kernel")
    k_spatial = math.prod(kernel.shape[:-2]) if kernel else _window(node, "kernel_size")
    if node.op in CONV_OPS:
        groups = int(node.attrs.get("groups", 1) or 1)
        return _spatial(y.shape) * y.channels * k_spatial * (x.channels // groups)
    if node.op in TRANSPOSED_CONV_OPS:
        return _spatial(x.shape) * x.channels * k_spatial * y.channels
    mult = int(node.attrs.get("depth_multiplier", 1) or 1)
    depthwise = _spatial(y.shape) * x.channels * mult * k_spatial
    if node.op in DEPTHWISE_OPS:
        return depthwise
    return depthwise + _spatial(y.shape) * x.channels * mult * y.channels  # separable: + pointwise


def layer_ops(graph: Graph, node: Node) -> int:
    """Non-MAC arithmetic of one layer application (pooling, merges, activations, normalisation)."""
    outs = graph.output_tensors(node)
    out_elems = sum(t.elements for t in outs)
    fused_activation = out_elems if node.op in MAC_OPS and node.activation not in (None, "linear") else 0
    if node.op in POOL_OPS:
        return out_elems * _window(node, "pool_size")
    if node.op in GLOBAL_POOL_OPS:
        return graph.input_tensors(node)[0].elements
    if node.op in MERGE_OPS:
        return out_elems * max(len(node.inputs) - 1, 1)
    if recurrent_op(node) is not None:  # per step: a bias add and an activation per gate, the state update
        steps = time_steps(graph.input_tensors(node)[0].shape)
        return steps * sum(2 * w.shape[-1] for w in node.weights if w.role == "recurrent_kernel")
    if node.op in ATTENTION_OPS:  # softmax over the scores
        heads = attention_sizes(node)[0]
        ins = graph.input_tensors(node)
        return heads * positions(ins[0].shape) * positions(ins[-1].shape)
    if node.op == "BatchNormalization":
        return 2 * out_elems
    if node.op == "LayerNormalization":
        return 5 * out_elems
    if node.op in ACTIVATION_OPS or node.op == "TFOpLambda":
        return out_elems
    if node.op in ("UpSampling1D", "UpSampling2D", "Rescaling", "Normalization", "Resizing"):
        return out_elems
    return fused_activation


def _bn_folds(graph: Graph, node: Node) -> Node | None:
    """The conv/dense a BatchNormalization folds into (its sole-consumer producer), else None."""
    if node.op != "BatchNormalization":
        return None
    producer = graph.producer(node.inputs[0])
    if producer is not None and producer.op in FOLDABLE_INTO and len(graph.consumers(node.inputs[0])) == 1 \
            and producer.activation in (None, "linear"):
        return producer
    return None


def layer_weight_bytes(graph: Graph, node: Node) -> WeightBytes:
    params = node.params
    int8 = 0
    folded_into = _bn_folds(graph, node)
    if folded_into is not None:
        # Folding rewrites the conv's kernel and bias; only a conv without a bias gains new bytes.
        int8 = 0 if folded_into.weight("bias") else 4 * graph.output_tensors(node)[0].channels
    else:
        for w in node.weights:
            int8 += w.size * (1 if w.role in KERNEL_ROLES or node.op not in MAC_OPS | SEQUENCE_OPS else 4)
        if node.op == "BatchNormalization":  # unfused: TFLite keeps a MUL and an ADD constant
            int8 = 2 * graph.output_tensors(node)[0].channels
    biases = sum(w.size for w in node.weights if w.role == "bias") if node.op in MAC_OPS and folded_into is None else 0
    return WeightBytes(4 * params, 2 * params, int8, 4 * biases)


def layer_cost(graph: Graph, node: Node) -> LayerCost:
    """The costs of one layer application in `graph`."""
    outs = graph.output_tensors(node)
    return LayerCost(
        name=node.name,
        op=node.op,
        output_shape=outs[0].shape if outs else (),
        params=node.params,
        macs=layer_macs(graph, node),
        ops=layer_ops(graph, node),
        weight_bytes=layer_weight_bytes(graph, node),
        activation_bytes_float32=sum(t.elements * 4 for t in outs),
        activation_bytes_int8=sum(t.elements for t in outs),
    )


def _cost_inputs(graph: Graph, node: Node) -> tuple:
    """Everything of `graph` besides `node` itself that layer_cost reads (the tensors, BN folding's neighbour)."""
    fold = None
    if node.op == "BatchNormalization":
        producer = graph.producer(node.inputs[0])
        fold = (None if producer is None else (producer.op, producer.activation, producer.weight("bias") is None),
                len(graph.consumers(node.inputs[0])))
    return tuple(graph.input_tensors(node)), tuple(graph.output_tensors(node)), fold


def _cached_layer_cost(graph: Graph, node: Node) -> LayerCost:
    # Nodes are immutable and a shrunk graph (edgekit.channels.keep.shrink_graph) reuses the ones whose
    # channels did not change, so a cost kept on the node with what it was computed from saves most of the
    # work of a planner's cost evaluation.
    key = _cost_inputs(graph, node)
    cached = node.__dict__.get("_layer_cost")
    if cached is not None and cached[0] == key:
        return cached[1]
    cost = layer_cost(graph, node)
    object.__setattr__(node, "_layer_cost", (key, cost))
    return cost


def analyze(graph: Graph) -> ModelCost:
    """Per-layer costs of every node, in execution order (computed once per graph)."""
    cost = graph.__dict__.get("_model_cost")
    if cost is None:
        cost = ModelCost(tuple(_cached_layer_cost(graph, node) for node in graph.nodes))
        object.__setattr__(graph, "_model_cost", cost)
    return cost
