"""Build the graph IR from a .tflite flatbuffer itself (no interpreter, no TensorFlow, no converter).

One node per operator of the main subgraph, named `<index>:<OP>` and with the builtin op name as its
op (CONV_2D, FULLY_CONNECTED ...), so analysis can tell TFLite nodes from Keras layers (Keras class
names are CamelCase). Constant inputs become the node's weights (a constant shared by several ops
belongs to its first reader); integer constants (shapes, axes, paddings) are not weights, except the
int32 biases of the ops that multiply-accumulate. Tensors are per sample: a leading batch dimension of
1 (or unknown) is dropped; `attrs["input_shapes"]` / `["output_shapes"]` keep the full shapes for the
cost formulas (edgekit.costmodel.tflite_costs).

    >>> model = read_tflite(data)                                   # doctest: +SKIP
    >>> graph, facts = from_tflite(model, subgraph_op_names(model))  # doctest: +SKIP
    >>> graph.node("0:CONV_2D").weights[0].shape                    # doctest: +SKIP
    (8, 3, 3, 1)
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.errors import BadInputError
from edgekit.ir.graph import Graph, Node, Tensor, Weight

#: TFLite ops whose constant inputs at these positions are the kernel and the bias.
KERNEL_AND_BIAS = {"CONV_2D": (1, 2), "DEPTHWISE_CONV_2D": (1, 2), "FULLY_CONNECTED": (1, 2),
                   "TRANSPOSE_CONV": (1, 3), "CONV_3D": (1, 2)}
#: Ops with int32 constants that are weights (quantised biases, LSTM biases).
_INTEGER_WEIGHT_OPS = frozenset(KERNEL_AND_BIAS) | {"UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM",
                                                     "SVDF", "UNIDIRECTIONAL_SEQUENCE_RNN", "LSTM"}
_INTEGER_TYPES = frozenset({2, 4, 6, 12})  # INT32, INT64, BOOL, UINT32 (schema TensorType)
_DTYPE_NAMES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool", 7: "int16", 9: "int8",
                16: "float64"}


@dataclass(frozen=True)
class FlatbufferFacts:
    """What the IR does not hold: ops in control-flow subgraphs and the bytes of every constant."""

    subgraph_ops: tuple[str, ...]       # ops of subgraphs after the main one (WHILE / IF bodies)
    constant_bytes: int
    n_tensors: int
    n_ops: int


def _name(tensor, index: int) -> str:
    raw = tensor.name
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")
    return text or f"tensor_{index}"


def _full_shape(tensor) -> tuple[int, ...]:
    shape = [int(d) for d in (tensor.shape if tensor.shape is not None else [])]
    signature = tensor.shapeSignature
    if signature is not None and len(signature) == len(shape):
        shape = [-1 if int(s) < 0 else d for d, s in zip(shape, signature)]
    return tuple(shape)


def _per_sample(shape: tuple[int, ...]) -> tuple[int, ...]:
    return shape[1:] if len(shape) >= 2 and shape[0] in (1, -1) else shape


def _is_constant(model, tensor) -> bool:
    if not 0 < tensor.buffer < len(model.buffers):
        return False
    data = model.buffers[tensor.buffer].data
    return data is not None and len(data) > 0 or bool(getattr(model.buffers[tensor.buffer], "size", 0))


def _constant_size(model, tensor) -> int:
    buffer = model.buffers[tensor.buffer]
    return len(buffer.data) if buffer.data is not None else int(getattr(buffer, "size", 0) or 0)


def _role(op: str, position: int) -> str:
    kernel_bias = KERNEL_AND_BIAS.get(op)
    if kernel_bias is None:
        return "other"
    return "kernel" if position == kernel_bias[0] else "bias" if position == kernel_bias[1] else "other"


def from_tflite(model, op_names: list[list[str]], name: str = "model",
                label: str = "model.tflite") -> tuple[Graph, FlatbufferFacts]:
    """(IR of the main subgraph, facts the IR does not hold) from a parsed flatbuffer.

    model: the schema object API's ModelT and op_names the builtin names of each subgraph's operators, both from
    edgekit.model_io.flatbuffer (`read_tflite`, `subgraph_op_names`): this module reads no bytes and imports no
    runtime. BadInputError for an inconsistent graph.
    """
    subgraph = model.subgraphs[0]
    tensors = list(subgraph.tensors or [])
    names = _unique_names(tensors)
    ops = list(op_names[0])
    subgraph_ops = tuple(o for names_ in op_names[1:] for o in names_)
    constant = [_is_constant(model, t) for t in tensors]
    graph_inputs = [names[i] for i in _indices(subgraph.inputs, len(tensors), label)]
    produced = set(graph_inputs)
    owned: set[int] = set()
    ir_tensors = {names[i]: Tensor(names[i], _per_sample(_full_shape(t)), _DTYPE_NAMES.get(int(t.type), "other"))
                  for i, t in enumerate(tensors)}
    nodes = []
    for index, (operator, op) in enumerate(zip(subgraph.operators or [], ops)):
        inputs = _indices(operator.inputs, len(tensors), label, optional=True)
        outputs = _indices(operator.outputs, len(tensors), label)
        weights, activations = [], []
        for position, t in enumerate(inputs):
            if t < 0:
                continue
            tensor = tensors[t]
            if constant[t]:
                is_weight = int(tensor.type) not in _INTEGER_TYPES or op in _INTEGER_WEIGHT_OPS
                if is_weight and t not in owned:
                    owned.add(t)
                    weights.append(Weight(names[t], _full_shape(tensor), _role(op, position)))
            elif names[t] in produced:
                activations.append(names[t])   # variable state tensors (LSTM) are neither weights nor inputs
        attrs = {"tflite_index": index,
                 "input_shapes": [list(_full_shape(tensors[t])) if t >= 0 else None for t in inputs],
                 "output_shapes": [list(_full_shape(tensors[t])) for t in outputs]}
        nodes.append(Node(f"{index}:{op}", op, tuple(activations), tuple(names[t] for t in outputs), attrs,
                          tuple(weights)))
        produced.update(names[t] for t in outputs)
    graph_outputs = [names[i] for i in _indices(subgraph.outputs, len(tensors), label)]
    try:
        graph = Graph.build(ir_tensors.values(), nodes, graph_inputs, graph_outputs, name=name)
    except ValueError as exc:
        raise BadInputError(f"{label}: the operator graph is inconsistent ({exc}); re-export the model") from exc
    constant_bytes = sum(_constant_size(model, t) for t, c in zip(tensors, constant) if c)
    return graph, FlatbufferFacts(subgraph_ops, constant_bytes, len(tensors), len(ops))


def _indices(values, n_tensors: int, label: str, optional: bool = False) -> list[int]:
    out = [int(v) for v in (values if values is not None else [])]
    for v in out:
        if v >= n_tensors or v < (-1 if optional else 0):
            raise BadInputError(f"{label}: an operator refers to tensor {v} of {n_tensors}; re-export the model")
    return out


def _unique_names(tensors) -> list[str]:
    seen: dict[str, int] = {}
    names = []
    for i, t in enumerate(tensors):
        name = _name(t, i)
        if name in seen:
            name = f"{name}~{i}"
        seen[name] = i
        names.append(name)
    return names
