"""Costs of a converted model read from its flatbuffer (pure): MACs per TFLite op, memory, op support.

Counts follow edgekit.costmodel.layer_costs (multiply-accumulates of the ops that multiply weights or
activations; biases are not MACs), here from the op's own tensor shapes (`attrs["input_shapes"]`,
full shapes with the batch of 1):

- CONV_2D: output elements x kernel height x width x input channels per group (filter O x H x W x I)
- DEPTHWISE_CONV_2D: output elements x kernel height x width
- FULLY_CONNECTED: output elements x input features (weights O x I)
- TRANSPOSE_CONV: input elements x kernel height x width x output channels
- BATCH_MATMUL: output elements x the contracted dimension
- UNIDIRECTIONAL_SEQUENCE_LSTM: steps x (every input and recurrent gate weight)

Ops in control-flow subgraphs (a GRU's WHILE body) run an unknown number of times: they are listed
for op support but not counted.
"""

from __future__ import annotations

import math

from edgekit.costmodel.analysis import RUNTIMES, Analysis, UnsupportedOp
from edgekit.costmodel.layer_costs import LayerCost, ModelCost, WeightBytes
from edgekit.costmodel.memory import Buffer, plan_greedy, tensor_lifetimes
from edgekit.costmodel.size import ArenaEstimate, SizeEstimate
from edgekit.ir.graph import Graph, Node, dtype_bytes
from edgekit.ir.ops import supported
from edgekit.precisions import PRECISIONS

_ELEMENTWISE = frozenset({"ADD", "SUB", "MUL", "DIV", "RELU", "RELU6", "LOGISTIC", "TANH", "HARD_SWISH", "SOFTMAX",
                          "LEAKY_RELU", "PRELU", "ELU", "EXP", "SQUARED_DIFFERENCE", "RSQRT", "SQRT", "MAXIMUM",
                          "MINIMUM", "GELU", "ABS", "NEG", "SQUARE", "LOG_SOFTMAX", "QUANTIZE", "DEQUANTIZE"})
_POOLS = frozenset({"AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D"})
_REDUCTIONS = frozenset({"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD"})
_LSTM_WEIGHT_INPUTS = range(1, 9)   # input-to-gate (4) and recurrent-to-gate (4) weights


def _shape(node: Node, position: int, key: str = "input_shapes") -> tuple[int, ...] | None:
    shapes = node.attrs.get(key) or []
    if position >= len(shapes) or shapes[position] is None:
        return None
    return tuple(max(int(d), 1) for d in shapes[position])


def _elements(shape: tuple[int, ...] | None) -> int:
    return math.prod(shape) if shape else 0


def tflite_macs(node: Node) -> int:
    """Multiply-accumulates of one TFLite op (per invoke, batch as converted)."""
    out = _elements(_shape(node, 0, "output_shapes"))
    op, w = node.op, _shape(node, 1)
    if op == "CONV_2D" and w and len(w) == 4:
        return out * w[1] * w[2] * w[3]
    if op == "DEPTHWISE_CONV_2D" and w and len(w) == 4:
        return out * w[1] * w[2]
    if op == "FULLY_CONNECTED" and w and len(w) == 2:
        return out * w[1]
    if op == "TRANSPOSE_CONV":
        x, w = _shape(node, 2), _shape(node, 1)
        return _elements(x) * w[1] * w[2] * w[0] if x and w and len(w) == 4 else 0
    if op == "BATCH_MATMUL":
        x = _shape(node, 0)
        adj_x = bool(node.attrs.get("adj_x", False))
        return out * (x[-2] if adj_x else x[-1]) if x and len(x) >= 2 else 0
    if op == "UNIDIRECTIONAL_SEQUENCE_LSTM":
        x = _shape(node, 0)
        steps = x[1] if x and len(x) == 3 else 1   # (batch, time, features), time-major off
        return steps * sum(_elements(_shape(node, i)) for i in _LSTM_WEIGHT_INPUTS)
    return 0


def tflite_ops(node: Node) -> int:
    """Non-MAC arithmetic of one TFLite op: element-wise ops, pooling windows, reductions."""
    out = _elements(_shape(node, 0, "output_shapes"))
    if node.op in _ELEMENTWISE:
        return out
    if node.op in _POOLS or node.op in _REDUCTIONS:
        return _elements(_shape(node, 0))
    return 0


def tflite_cost(graph: Graph) -> ModelCost:
    """Per-op costs of a graph built by edgekit.ir.from_tflite."""
    layers = []
    for node in graph.nodes:
        outs = graph.output_tensors(node)
        params = node.params
        layers.append(LayerCost(
            name=node.name, op=node.op, output_shape=outs[0].shape if outs else (), params=params,
            macs=tflite_macs(node), ops=tflite_ops(node),
            weight_bytes=WeightBytes(4 * params, 2 * params, _int8_bytes(node)),
            activation_bytes_float32=sum(t.elements * 4 for t in outs),
            activation_bytes_int8=sum(t.elements for t in outs)))
    return ModelCost(tuple(layers))


def _int8_bytes(node: Node) -> int:
    return sum(w.size * (4 if w.role == "bias" else 1) for w in node.weights)


def activation_plan_bytes(graph: Graph, bytes_per_element: int | None = None) -> int:
    """Greedy (TFLM-style) arena plan of the activations; each tensor at its own dtype unless given."""
    spans = tensor_lifetimes([(n.inputs, n.outputs) for n in graph.nodes], graph.inputs, graph.outputs)
    buffers = []
    for t, (start, end) in spans.items():
        tensor = graph.tensors[t]
        per = bytes_per_element or dtype_bytes(tensor.dtype)
        buffers.append(Buffer(t, tensor.elements * per, start, max(end, start)))
    return plan_greedy(buffers).peak_bytes


def analyze_tflite(graph: Graph, *, file_bytes: int, constant_bytes: int, n_tensors: int,
                   subgraph_ops: tuple[str, ...] = (), arena: ArenaEstimate | None = None) -> Analysis:
    """The Analysis of a .tflite file: real ops and sizes; `arena` measured by TFLM when given, else the
    greedy plan of the activations (the head alone: TFLM adds its own bookkeeping, the tail)."""
    layer_ops = {n.name: (n.op,) for n in graph.nodes}
    extra = tuple(dict.fromkeys(subgraph_ops))
    if extra:
        layer_ops["(control-flow subgraphs)"] = extra
    unsupported = {rt: tuple(UnsupportedOp(layer, op, rt) for layer, ops in layer_ops.items()
                             for op in dict.fromkeys(ops) if not supported(op, rt)) for rt in RUNTIMES}
    size = SizeEstimate(file_bytes, constant_bytes, file_bytes - constant_bytes, len(graph.nodes), n_tensors)
    head = activation_plan_bytes(graph)
    return Analysis(
        graph=graph, cost=tflite_cost(graph), layer_ops=layer_ops,
        peak_activation_bytes={"int8": activation_plan_bytes(graph, 1), "float32": activation_plan_bytes(graph, 4)},
        tflite_bytes={p: size for p in PRECISIONS},   # the file is what ships, whatever the precision asked
        tflm_arena=arena or ArenaEstimate(head, head, 0), unsupported=unsupported, ops_source="flatbuffer")
