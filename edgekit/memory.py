"""Peak activation memory: lower the IR to the ops a TFLite runtime executes, then plan buffers (pure).

Two steps, each testable alone:
1. `lower(graph)` predicts the converted TFLite graph: BatchNormalization folded into the conv before
   it, ReLU/ReLU6 fused into the producing op, Dropout and friends removed, and every 1D spatial op
   (Conv1D, pooling 1D, ...) expanded to EXPAND_DIMS -> 2D op -> RESHAPE as the converter emits it.
   TFLite Micro does not alias RESHAPE/EXPAND_DIMS outputs, so those copies cost arena bytes.
2. `plan_greedy(buffers)` places each buffer at the lowest offset that does not overlap a placed buffer
   alive at the same time, largest first, as TFLite Micro's GreedyMemoryPlanner does; the peak is the
   highest end offset (TFLM's "head" section of the arena).

    >>> plan = plan_greedy([Buffer("a", 100, 0, 1), Buffer("b", 50, 1, 2), Buffer("c", 100, 2, 3)])
    >>> plan.peak_bytes   # a and c never live together, so they share offset 0
    160
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.costs import DEPTHWISE_OPS, MAC_OPS, SEPARABLE_OPS
from edgekit.graph import Graph, Node, dtype_bytes

TFLM_ALIGNMENT = 16

# Removed by the converter at inference time: output is the input.
IDENTITY_OPS = frozenset({"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
                          "GaussianDropout", "AlphaDropout", "ActivityRegularization", "InputLayer"})
# Activations TFLite fuses into the op that produces their input.
FUSABLE_ACTIVATIONS = frozenset({"relu", "relu6"})
FUSING_OPS = MAC_OPS | frozenset({"Add", "Subtract", "Multiply", "MaxPooling2D", "AveragePooling2D",
                                  "MaxPooling1D", "AveragePooling1D"})
# 1D layers the converter runs as 2D ops on a 4D view. Convolutions expand axis 1 (1 x L x C), pooling
# axis 2 (L x 1 x C). With a static batch (edgekit converts at batch 1) the converter cancels the squeeze
# and expand between two such ops of the same layout; between different layouts one RESHAPE remains.
ONE_D_LAYOUT = {"Conv1D": "conv", "DepthwiseConv1D": "conv", "SeparableConv1D": "conv", "Conv1DTranspose": "conv",
                "MaxPooling1D": "pool", "AveragePooling1D": "pool"}
EXPANDED_1D_OPS = frozenset(ONE_D_LAYOUT)
RESHAPE_OPS = frozenset({"Flatten", "Reshape"})


@dataclass(frozen=True)
class RuntimeOp:
    """One op the runtime executes, with the Keras layer it came from."""

    kind: str
    layer: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class RuntimeGraph:
    ops: tuple[RuntimeOp, ...]
    tensor_elements: dict[str, int]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class Buffer:
    """An activation buffer alive from op `first_op` to op `last_op` inclusive."""

    name: str
    size_bytes: int
    first_op: int
    last_op: int


@dataclass(frozen=True)
class MemoryPlan:
    buffers: tuple[Buffer, ...]
    offsets: dict[str, int]
    peak_bytes: int


def _aligned(n: int, alignment: int) -> int:
    return -(-n // alignment) * alignment


def plan_greedy(buffers: list[Buffer], alignment: int = TFLM_ALIGNMENT) -> MemoryPlan:
    """Largest-first, lowest-offset placement of buffers whose lifetimes overlap."""
    order = sorted(buffers, key=lambda b: (-b.size_bytes, b.first_op))
    placed: list[tuple[int, int, Buffer]] = []  # (offset, aligned size, buffer)
    offsets: dict[str, int] = {}
    for buf in order:
        size = _aligned(buf.size_bytes, alignment)
        live = sorted((off, sz) for off, sz, other in placed
                      if other.first_op <= buf.last_op and buf.first_op <= other.last_op)
        offset = 0
        for off, sz in live:
            if offset + size <= off:
                break
            offset = max(offset, off + sz)
        placed.append((offset, size, buf))
        offsets[buf.name] = offset
    peak = max((off + sz for off, sz, _ in placed), default=0)
    return MemoryPlan(tuple(buffers), offsets, peak)


_ACTIVATION_KINDS = {"relu": "RELU", "relu6": "RELU6", "sigmoid": "LOGISTIC", "tanh": "TANH", "softmax": "SOFTMAX",
                     "elu": "ELU", "swish": "LOGISTIC+MUL", "silu": "LOGISTIC+MUL", "hard_sigmoid": "HARD_SIGMOID",
                     "hard_swish": "HARD_SWISH", "gelu": "GELU", "leaky_relu": "LEAKY_RELU", "log_softmax": "LOG_SOFTMAX",
                     "exponential": "EXP", "softplus": "SOFTPLUS", "selu": "SELU"}
_LAYER_KINDS = {"LeakyReLU": "LEAKY_RELU", "PReLU": "PRELU", "ELU": "ELU", "UpSampling1D": "RESIZE_NEAREST_NEIGHBOR",
                "UpSampling2D": "RESIZE_NEAREST_NEIGHBOR", "Resizing": "RESIZE_BILINEAR", "Cropping1D": "STRIDED_SLICE",
                "Cropping2D": "STRIDED_SLICE", "Permute": "TRANSPOSE", "Embedding": "GATHER",
                "LayerNormalization": "MEAN+SQUARED_DIFFERENCE+RSQRT+MUL+SUB+ADD", "Rescaling": "MUL+ADD",
                "Normalization": "SUB+MUL", "RepeatVector": "TILE", "LSTM": "UNIDIRECTIONAL_SEQUENCE_LSTM"}


def _kind(node: Node) -> str:
    op = node.op
    if op == "Activation":
        return _ACTIVATION_KINDS.get(str(node.attrs.get("activation")), str(node.attrs.get("activation")).upper())
    if op == "ReLU":
        max_value = node.attrs.get("max_value")
        return "RELU6" if max_value in (6, 6.0) else ("RELU" if max_value is None else "MINIMUM+RELU")
    if op in _LAYER_KINDS:
        return _LAYER_KINDS[op]
    if op in SEPARABLE_OPS:
        return "SEPARABLE"
    if op in DEPTHWISE_OPS:
        return "DEPTHWISE_CONV_2D"
    return {
        "Conv1D": "CONV_2D", "Conv2D": "CONV_2D", "Dense": "FULLY_CONNECTED", "Add": "ADD", "Subtract": "SUB",
        "Multiply": "MUL", "Concatenate": "CONCATENATION", "MaxPooling1D": "MAX_POOL_2D",
        "MaxPooling2D": "MAX_POOL_2D", "AveragePooling1D": "AVERAGE_POOL_2D", "AveragePooling2D": "AVERAGE_POOL_2D",
        "GlobalAveragePooling1D": "MEAN", "GlobalAveragePooling2D": "MEAN", "GlobalMaxPooling1D": "REDUCE_MAX",
        "GlobalMaxPooling2D": "REDUCE_MAX", "Softmax": "SOFTMAX", "ZeroPadding1D": "PAD", "ZeroPadding2D": "PAD",
        "Conv2DTranspose": "TRANSPOSE_CONV", "Conv1DTranspose": "TRANSPOSE_CONV", "Average": "ADD",
        "Maximum": "MAXIMUM", "Minimum": "MINIMUM", "BatchNormalization": "MUL_ADD",
    }.get(op, op.upper())


def lower(graph: Graph) -> RuntimeGraph:
    """Predict the ops and activation tensors of the converted TFLite model."""
    alias: dict[str, str] = {}
    elements: dict[str, int] = {t: graph.tensors[t].elements for t in graph.inputs}
    ops: list[RuntimeOp] = []
    made_by: dict[str, Node] = {}  # runtime tensor -> the Keras layer whose op wrote it

    def src(t: str) -> str:
        while t in alias:
            t = alias[t]
        return t

    layout: dict[str, str] = {}  # runtime tensor held in a 1D op's 4D layout -> that layout

    def emit(kind: str, layer: str, ins: list[str], out: str, n: int) -> str:
        elements[out] = n
        made_by[out] = node
        ops.append(RuntimeOp(kind, layer, tuple(ins), (out,)))
        return out

    def squeezed(t: str) -> str:
        """`t` in its Keras (3D) layout: a RESHAPE copy when a 1D op left it in 4D."""
        if t not in layout:
            return t
        layout.pop(t)
        out = f"{t}/squeezed"
        alias[t] = emit("RESHAPE", made_by[t].name, [t], out, elements[t])
        return out

    for node in graph.nodes:
        ins = [src(t) for t in node.inputs]
        out_t = graph.tensors[node.outputs[0]] if node.outputs else None
        producer = graph.producer(node.inputs[0]) if node.inputs else None
        sole_consumer = bool(node.inputs) and len(graph.consumers(node.inputs[0])) == 1
        if node.op in IDENTITY_OPS:
            alias[node.outputs[0]] = ins[0]
            continue
        if node.op == "BatchNormalization" and producer is not None and producer.op in MAC_OPS \
                and sole_consumer and producer.activation in (None, "linear"):
            alias[node.outputs[0]] = ins[0]
            continue
        activation = node.attrs.get("activation") if node.op == "Activation" else (
            "relu" if node.op == "ReLU" and node.attrs.get("max_value") in (None, 6.0, 6)
            and not node.attrs.get("negative_slope") and not node.attrs.get("threshold") else None)
        writer = made_by.get(ins[0]) if ins else None
        if activation in FUSABLE_ACTIVATIONS and writer is not None and writer.op in FUSING_OPS \
                and sole_consumer and writer.activation in (None, "linear") and ops \
                and ops[-1].outputs[0] == ins[0]:
            alias[node.outputs[0]] = ins[0]
            continue
        if node.op in ("Activation",) and activation in (None, "linear"):
            alias[node.outputs[0]] = ins[0]
            continue
        n_out = out_t.elements if out_t is not None else 0
        if node.op in RESHAPE_OPS:
            layout.pop(ins[0], None)  # squeezing a 1D op's 4D output and this reshape merge into one RESHAPE
            emit("RESHAPE", node.name, ins, node.outputs[0], n_out)
            continue
        my_layout = ONE_D_LAYOUT.get(node.op)
        x = []
        for t in ins:
            if my_layout is not None and layout.get(t) == my_layout:
                x.append(t)  # static batch: the converter cancels squeeze + expand between same-layout 1D ops
            elif my_layout is not None:
                x.append(emit("RESHAPE", node.name, [t], f"{node.name}/expand", elements[t]))
            else:
                x.append(squeezed(t))
        if node.op in SEPARABLE_OPS:
            x_t = graph.tensors[node.inputs[0]]
            mult = int(node.attrs.get("depth_multiplier", 1) or 1)
            spatial = n_out // out_t.channels
            x = [emit("DEPTHWISE_CONV_2D", node.name, x, f"{node.name}/depthwise",
                      spatial * x_t.channels * mult)]
            kind = "CONV_2D"
        else:
            kind = _kind(node)
        act = node.activation if node.op != "Activation" else None
        separate_act = act not in (None, "linear", *FUSABLE_ACTIVATIONS)
        core_out = f"{node.name}/core" if separate_act else node.outputs[0]
        emit(kind, node.name, x, core_out, n_out)
        if separate_act:  # e.g. Dense(..., activation="softmax") -> FULLY_CONNECTED then SOFTMAX
            emit(_ACTIVATION_KINDS.get(act, act.upper()), node.name, [core_out], node.outputs[0], n_out)
        if my_layout is not None:
            layout[node.outputs[0]] = my_layout
        for extra in node.outputs[1:]:
            elements[extra] = graph.tensors[extra].elements
    for t in graph.outputs:
        squeezed(src(t))
    outputs = tuple(src(t) for t in graph.outputs)
    return RuntimeGraph(tuple(ops), elements, tuple(src(t) for t in graph.inputs), outputs)


def activation_buffers(runtime: RuntimeGraph, bytes_per_element: int) -> list[Buffer]:
    """Lifetimes of every activation tensor over the runtime op order."""
    first: dict[str, int] = {t: 0 for t in runtime.inputs}
    last: dict[str, int] = {}
    for i, op in enumerate(runtime.ops):
        for t in op.outputs:
            first.setdefault(t, i)
            last.setdefault(t, i)
        for t in op.inputs:
            last[t] = max(last.get(t, i), i)
    end = max(len(runtime.ops) - 1, 0)
    for t in runtime.outputs:
        last[t] = end
    return [Buffer(t, runtime.tensor_elements[t] * bytes_per_element, first[t], last.get(t, first[t]))
            for t in first if t in runtime.tensor_elements]


def peak_activation_bytes(graph: Graph, precision: str = "int8", float_io: bool = True) -> MemoryPlan:
    """Greedy-planned activation arena of the graph at a precision (int8: 1 B, float: 4 B per element).

    float_io: an int8 model with float inputs/outputs (edgekit's default conversion) runs a QUANTIZE
    first and a DEQUANTIZE last, so the float input and output tensors are in the arena too.
    """
    runtime = lower(graph)
    bpe = 1 if precision == "int8" else dtype_bytes("float32")
    buffers = activation_buffers(runtime, bpe)
    if precision == "int8" and float_io:
        n = len(runtime.ops)
        shifted = []
        for b in buffers:
            first = 0 if b.name in runtime.inputs else b.first_op + 1
            last = n + 1 if b.name in runtime.outputs else b.last_op + 1
            shifted.append(Buffer(b.name, b.size_bytes, first, last))
        shifted += [Buffer(f"{t}/float", 4 * runtime.tensor_elements[t], 0, 0) for t in runtime.inputs]
        shifted += [Buffer(f"{t}/float", 4 * runtime.tensor_elements[t], n + 1, n + 1) for t in runtime.outputs]
        buffers = shifted
    return plan_greedy(buffers)
