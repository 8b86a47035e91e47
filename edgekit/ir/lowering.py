"""Lower the IR to the ops the TFLite converter emits, as the runtime will execute them (pure).

`lower(graph)` predicts the converted TFLite graph: BatchNormalization folded into the conv before it,
ReLU/ReLU6 fused into the producing op, Dropout and friends removed, and every 1D spatial op (Conv1D,
pooling 1D, ...) expanded to EXPAND_DIMS -> 2D op -> RESHAPE as the converter emits it. TFLite Micro does
not alias RESHAPE/EXPAND_DIMS outputs, so those copies cost arena bytes. `fold_same_padding(graph)` folds a
ZeroPadding2D that equals SAME padding into the conv after it, as the converter does.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.ir.graph import Graph, Node
from edgekit.ir.ops import DEPTHWISE_OPS, MAC_OPS, RESHAPE_OPS, SEPARABLE_OPS
from edgekit.ir.sequence import recurrent_op, wrapped_op

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


_ACTIVATION_KINDS = {"relu": "RELU", "relu6": "RELU6", "sigmoid": "LOGISTIC", "tanh": "TANH", "softmax": "SOFTMAX",
                     "elu": "ELU", "swish": "LOGISTIC+MUL", "silu": "LOGISTIC+MUL", "hard_sigmoid": "HARD_SIGMOID",
                     "hard_swish": "HARD_SWISH", "gelu": "GELU", "leaky_relu": "LEAKY_RELU",
                     "log_softmax": "LOG_SOFTMAX",
                     "exponential": "EXP", "softplus": "SOFTPLUS", "selu": "SELU"}
_LAYER_KINDS = {"LeakyReLU": "LEAKY_RELU", "PReLU": "PRELU", "ELU": "ELU", "UpSampling1D": "RESIZE_NEAREST_NEIGHBOR",
                "UpSampling2D": "RESIZE_NEAREST_NEIGHBOR", "Resizing": "RESIZE_BILINEAR", "Cropping1D": "STRIDED_SLICE",
                "Cropping2D": "STRIDED_SLICE", "Permute": "TRANSPOSE", "Embedding": "GATHER",
                "LayerNormalization": "MEAN+SQUARED_DIFFERENCE+RSQRT+MUL+SUB+ADD", "Rescaling": "MUL+ADD",
                "Normalization": "SUB+MUL", "RepeatVector": "TILE", "LSTM": "UNIDIRECTIONAL_SEQUENCE_LSTM",
                # What the converter emitted for these on this host (TF 2.21): GRU and SimpleRNN become a
                # WHILE loop over FULLY_CONNECTED and gate math; attention a chain of matmuls.
                "GRU": "WHILE+FULLY_CONNECTED+LOGISTIC+TANH+MUL+ADD+SUB+SPLIT+GATHER+LESS+STRIDED_SLICE",
                "SimpleRNN": "WHILE+FULLY_CONNECTED+TANH+ADD+GATHER+LESS+STRIDED_SLICE",
                "MultiHeadAttention": "FULLY_CONNECTED+RESHAPE+TRANSPOSE+BATCH_MATMUL+MUL+SOFTMAX"}


def _kind(node: Node) -> str:
    op = node.op
    if op == "Activation":
        return _ACTIVATION_KINDS.get(str(node.attrs.get("activation")), str(node.attrs.get("activation")).upper())
    if op == "ReLU":
        max_value = node.attrs.get("max_value")
        return "RELU6" if max_value in (6, 6.0) else ("RELU" if max_value is None else "MINIMUM+RELU")
    if op in _LAYER_KINDS:
        return _LAYER_KINDS[op]
    if op == "Bidirectional":  # both directions, the backward one on a reversed sequence, then merged
        inner = _LAYER_KINDS.get(wrapped_op(node) or "", "UNSUPPORTED_RNN")
        return f"{inner}+REVERSE_V2+CONCATENATION"
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
    """Predict the ops and activation tensors of the converted TFLite model.

    Computed once per graph and kept on it (a Graph is immutable): one cost evaluation asks for it from
    the size, arena and latency estimates alike. The result is shared: do not modify it."""
    return _cached_on(graph, "_lowered_cache", _lower)


def _lower(graph: Graph) -> RuntimeGraph:
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
        act = node.activation if node.op != "Activation" and recurrent_op(node) is None else None  # RNN: internal
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



_PAD_FUSING_OPS = frozenset({"Conv2D", "DepthwiseConv2D"})


def _pairs(value) -> list[tuple[int, int]] | None:
    """ZeroPadding2D's padding attribute as [(top, bottom), (left, right)]."""
    if isinstance(value, int):
        return [(value, value)] * 2
    try:
        pairs = [(int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1])) for v in value]
    except (TypeError, ValueError, IndexError):
        return None
    return pairs if len(pairs) == 2 else None


def _same_padding(n: int, k: int, s: int, d: int) -> tuple[int, int]:
    total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
    return total // 2, total - total // 2


def _pad_fuses(graph: Graph, pad: Node) -> Node | None:
    """The valid-padded conv a ZeroPadding2D folds into, else None.

    The converter drops a PAD whose amounts equal what SAME padding adds for the conv or depthwise conv
    that is its only consumer (MobileNet's ((0, 1), (0, 1)) before a stride-2 layer); pooling keeps its PAD.
    """
    if pad.op != "ZeroPadding2D":
        return None
    consumers = graph.consumers(pad.outputs[0])
    if (
        len(consumers) != 1
        or consumers[0].op not in _PAD_FUSING_OPS
        or consumers[0].attrs.get("padding") != "valid"
    ):
        return None
    conv = consumers[0]
    x = graph.tensors[pad.inputs[0]]
    pairs = _pairs(pad.attrs.get("padding", 1))
    if pairs is None or len(x.shape) != 3:
        return None
    kernel = conv.weight("depthwise_kernel") or conv.weight("kernel")
    sizes = kernel.shape[:2] if kernel else tuple(conv.attrs.get("kernel_size", (1, 1)))
    strides = tuple(conv.attrs.get("strides", (1, 1)))
    dilation = tuple(conv.attrs.get("dilation_rate", (1, 1)))
    for axis in range(2):
        if pairs[axis] != _same_padding(
            x.shape[axis], int(sizes[axis]), int(strides[axis]), int(dilation[axis])
        ):
            return None
    return conv


def fold_same_padding(graph: Graph) -> Graph:
    """The graph as the converter leaves it: ZeroPadding2D equal to SAME padding folded into the conv.

    Computed once per graph and kept on it, so `lower` of the folded graph is computed once too."""
    return _cached_on(graph, "_folded_cache", _fold_same_padding)


def _cached_on(graph: Graph, key: str, compute):
    """compute(graph), kept on the (frozen) graph under key and reused."""
    cached = graph.__dict__.get(key)
    if cached is None:
        cached = compute(graph)
        object.__setattr__(graph, key, cached)
    return cached


def _fold_same_padding(graph: Graph) -> Graph:
    folds = {pad.name: conv for pad in graph.nodes if (conv := _pad_fuses(graph, pad)) is not None}
    if not folds:
        return graph
    rewired = {conv.name: graph.node(pad_name).inputs[0] for pad_name, conv in folds.items()}
    nodes = []
    for node in graph.nodes:
        if node.name in folds:
            continue
        if node.name in rewired:
            node = Node(
                node.name,
                node.op,
                (rewired[node.name], *node.inputs[1:]),
                node.outputs,
                {**node.attrs, "padding": "same"},
                node.weights,
            )
        nodes.append(node)
    used = {t for n in nodes for t in (*n.inputs, *n.outputs)} | set(graph.inputs) | set(graph.outputs)
    return Graph.build(
        [t for name, t in graph.tensors.items() if name in used],
        nodes,
        graph.inputs,
        graph.outputs,
        graph.name,
    )


# ------------------------------------------------------------------------------------- workloads


