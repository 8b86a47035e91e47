"""Predict the TFLite file size and the TFLite Micro arena of a graph without converting it (pure).

Both work on the predicted converted graph (`edgekit.costmodel.memory.lower` after
`edgekit.costmodel.latency.fold_same_padding`), as the converter and TFLM see it:

- flash bytes = weight bytes after BatchNorm folding + per-tensor and per-op flatbuffer overhead
  + ~12 B per quantisation channel (float32 scale + int64 zero point) for int8. Coefficients per precision
  (`FLATBUFFER`) fitted on real TF 2.21 conversions of the calibration micro-benchmarks;
  benchmarks/ram_model.py reports the error on a separate zoo.
- TFLM arena = head + tail, as TFLM's allocator lays them out (struct sizes of a 64-bit build, read from
  its recording allocator on one-op models; a 32-bit MCU build is a few percent smaller):
  head: greedy-planned activations, int8 (1 B per element) except the float32 input and output of a
  model with float I/O, which QUANTIZE / DEQUANTIZE convert; tail: one TfLiteEvalTensor (24 B) per
  tensor (constants included), one NodeAndRegistration (64 B, + ~24 B of allocator bookkeeping) per op,
  ~480 B of fixed allocator state, a TfLiteTensor (64 B) per graph
  input and output (+32 B of quantisation data when they are int8), each kernel's op data
  (`TFLM_OP_DATA_BYTES`) and 8 B (multiplier and shift) per output channel of conv, depthwise and
  fully connected ops, and the temporary memory fully connected kernels take while they prepare.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.costmodel.layer_costs import analyze
from edgekit.costmodel.memory import Buffer, activation_buffers, plan_greedy
from edgekit.ir.graph import Graph
from edgekit.ir.lowering import RuntimeGraph, fold_same_padding, lower
from edgekit.ir.ops import CONV_OPS, DENSE_OPS, DEPTHWISE_OPS, SEPARABLE_OPS, TRANSPOSED_CONV_OPS

QUANT_BYTES_PER_CHANNEL = 12


@dataclass(frozen=True)
class FlatbufferCoefficients:
    """Bytes a .tflite file spends beyond the weights: fixed + per tensor + per op + x quantisation bytes."""

    fixed_bytes: float
    per_tensor_bytes: float
    per_op_bytes: float
    quant_scale: float  # multiplies QUANT_BYTES_PER_CHANNEL x quantised channels


# Least squares (relative errors) on the TF 2.21 conversions of the 65 calibration micro-benchmarks
# (edgekit.workflows.microbenchmarks.MICRO_BENCHMARKS, biases non-zero) at each precision; the per-op cost came out ~0
# once tensors are counted. benchmarks/ram_model.py measures the error on a separate zoo.
FLATBUFFER = {
    "float32": FlatbufferCoefficients(486, 170, 0, 0),
    "float16": FlatbufferCoefficients(573, 158, 0, 0),
    "dynamic_int8": FlatbufferCoefficients(379, 228, 0, 1.26),
    "int8": FlatbufferCoefficients(814, 188, 0, 1.05),
}

# TFLM 64-bit host build (tflite-micro 2026), from print_allocations() on one-op int8 models.
TFLM_EVAL_TENSOR_BYTES = 24
TFLM_NODE_BYTES = 64 + 24  # NodeAndRegistration + allocator bookkeeping per op the report does not itemise
TFLM_IO_TENSOR_BYTES = 64
TFLM_IO_QUANT_BYTES = 32
TFLM_COMMON_BYTES = 16 + 460  # persistent buffers every model has + unitemised allocator state
TFLM_PER_CHANNEL_BYTES = 8
TFLM_OP_DATA_BYTES = {
    "CONV_2D": 80,
    "DEPTHWISE_CONV_2D": 80,
    "TRANSPOSE_CONV": 80,
    "FULLY_CONNECTED": 72,
    "ADD": 60,
    "SUB": 60,
    "MUL": 36,
    "CONCATENATION": 80,
    "MEAN": 44,
    "REDUCE_MAX": 44,
    "MAX_POOL_2D": 32,
    "AVERAGE_POOL_2D": 32,
    "SOFTMAX": 80,
    "LOGISTIC": 16,
    "TANH": 16,
    "PAD": 56,
    "QUANTIZE": 32,
    "DEQUANTIZE": 32,
    "RESHAPE": 0,
    "EXPAND_DIMS": 0,
    "SQUEEZE": 0,
    "RELU": 16,
    "RELU6": 16,
}
TFLM_OP_DATA_DEFAULT_BYTES = 48
# Fully connected kernels borrow 4 B per output channel of temporary memory while they prepare (bias
# folding), on top of the planned head: the arena needs it although the recording does not show it.
TFLM_FC_PREPARE_BYTES_PER_CHANNEL = 4
_PER_CHANNEL_KINDS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED"})

_CONSTS_PER_KIND = {
    "CONV_2D": 2,
    "DEPTHWISE_CONV_2D": 2,
    "FULLY_CONNECTED": 2,
    "TRANSPOSE_CONV": 3,
    "EXPAND_DIMS": 1,
    "RESHAPE": 1,
    "PAD": 1,
    "MEAN": 1,
    "REDUCE_MAX": 1,
    "MUL_ADD": 2,
}


@dataclass(frozen=True)
class SizeEstimate:
    flash_bytes: int
    weight_bytes: int
    overhead_bytes: int
    n_ops: int
    n_tensors: int


@dataclass(frozen=True)
class ArenaEstimate:
    arena_bytes: int
    head_bytes: int
    tail_bytes: int


def _quant_channels(graph: Graph) -> int:
    channels = 0
    for node in graph.nodes:
        if not node.outputs:
            continue
        out_c = graph.tensors[node.outputs[0]].channels
        if node.op in CONV_OPS | DEPTHWISE_OPS | TRANSPOSED_CONV_OPS:
            channels += 2 * out_c
        elif node.op in SEPARABLE_OPS:
            in_c = graph.tensors[node.inputs[0]].channels * int(node.attrs.get("depth_multiplier", 1) or 1)
            channels += 2 * in_c + 2 * out_c
        elif node.op in DENSE_OPS:
            channels += out_c + 1
    return channels


def estimate_tflite_bytes(graph: Graph, precision: str = "int8") -> SizeEstimate:
    """Predicted .tflite file size at a precision ('float32', 'float16', 'dynamic_int8', 'int8')."""
    graph = fold_same_padding(graph)
    runtime = lower(graph)
    weights = analyze(graph).weight_bytes
    n_ops = len(runtime.ops) + sum(1 for op in runtime.ops if op.kind == "SEPARABLE")
    n_consts = sum(_CONSTS_PER_KIND.get(op.kind, 0) for op in runtime.ops)
    if precision == "int8":
        weight_bytes = weights.int8
        quant = QUANT_BYTES_PER_CHANNEL * (_quant_channels(graph) + len(runtime.tensor_elements))
    elif precision == "float16":
        weight_bytes = weights.float16
        n_ops += n_consts  # a DEQUANTIZE op (and a float32 tensor) per float16 constant
        n_consts *= 2
        quant = 0
    elif precision == "dynamic_int8":
        weight_bytes = weights.int8
        quant = QUANT_BYTES_PER_CHANNEL * _quant_channels(graph) // 2
    else:
        weight_bytes = weights.float32
        quant = 0
    n_tensors = len(runtime.tensor_elements) + n_consts
    c = FLATBUFFER.get(precision, FLATBUFFER["float32"])
    overhead = round(
        c.fixed_bytes + c.per_tensor_bytes * n_tensors + c.per_op_bytes * n_ops + c.quant_scale * quant
    )
    return SizeEstimate(weight_bytes + overhead, weight_bytes, overhead, n_ops, n_tensors)


def _edge_ops(runtime: RuntimeGraph) -> RuntimeGraph:
    """The runtime graph of an int8 model with float I/O: QUANTIZE first, DEQUANTIZE last."""
    from edgekit.ir.lowering import RuntimeOp

    elements = dict(runtime.tensor_elements)
    ops = []
    inputs, outputs = [], []
    for t in runtime.inputs:
        elements[f"{t}/float"] = elements[t]
        ops.append(RuntimeOp("QUANTIZE", "", (f"{t}/float",), (t,)))
        inputs.append(f"{t}/float")
    ops += runtime.ops
    for t in runtime.outputs:
        elements[f"{t}/float"] = elements[t]
        ops.append(RuntimeOp("DEQUANTIZE", "", (t,), (f"{t}/float",)))
        outputs.append(f"{t}/float")
    return RuntimeGraph(tuple(ops), elements, tuple(inputs), tuple(outputs))


def _kinds(runtime: RuntimeGraph) -> list[str]:
    return [
        part
        for op in runtime.ops
        for part in op.kind.replace("SEPARABLE", "DEPTHWISE_CONV_2D+CONV_2D").split("+")
    ]


TFLM_PLANNING_BYTES_PER_TENSOR = 52


def estimate_tflm_arena(graph: Graph, float_io: bool = False) -> ArenaEstimate:
    """Predicted TFLite Micro arena of the int8 model: int8 input/output (what `edgekit export` makes for
    TFLM), or float32 ones converted by QUANTIZE / DEQUANTIZE with float_io=True."""
    runtime = lower(fold_same_padding(graph))
    if float_io:
        runtime = _edge_ops(runtime)
    buffers = [
        Buffer(b.name, b.size_bytes * (4 if b.name.endswith("/float") else 1), b.first_op, b.last_op)
        for b in activation_buffers(runtime, 1)
    ]
    head = plan_greedy(buffers).peak_bytes
    kinds = _kinds(runtime)
    n_consts = sum(_CONSTS_PER_KIND.get(kind, 0) for kind in kinds)
    op_data = sum(TFLM_OP_DATA_BYTES.get(kind, TFLM_OP_DATA_DEFAULT_BYTES) for kind in kinds)
    for op in runtime.ops:
        if op.kind.split("+")[0] in _PER_CHANNEL_KINDS or op.kind == "SEPARABLE":
            op_data += TFLM_PER_CHANNEL_BYTES * _out_channels(
                graph, op.layer, runtime.tensor_elements[op.outputs[0]]
            )
    n_io = len(runtime.inputs) + len(runtime.outputs)
    prepare = max(
        (
            TFLM_FC_PREPARE_BYTES_PER_CHANNEL * _out_channels(graph, op.layer, 0)
            for op in runtime.ops
            if op.kind.split("+")[0] == "FULLY_CONNECTED"
        ),
        default=0,
    )
    n_tensors = len(runtime.tensor_elements) + n_consts
    tail = prepare + (
        TFLM_COMMON_BYTES
        + TFLM_EVAL_TENSOR_BYTES * n_tensors
        + TFLM_NODE_BYTES * len(kinds)
        + n_io * (TFLM_IO_TENSOR_BYTES + (0 if float_io else TFLM_IO_QUANT_BYTES))
        + op_data
    )
    # While tensors are allocated, the memory planner's own bookkeeping (requirements, sorted lists,
    # allocation info: ~52 B per tensor) lives where the activations will go, so a thin model needs more
    # than head + tail (measured: Conv1D net width 8, 29 tensors, needs 5,016 B for a 4,136 B recording).
    return ArenaEstimate(max(head, TFLM_PLANNING_BYTES_PER_TENSOR * n_tensors) + tail, head, tail)


def _out_channels(graph: Graph, layer: str, elements: int) -> int:
    """Output channels of a layer's op (its output tensor's last axis)."""
    try:
        return graph.tensors[graph.node(layer).outputs[0]].channels
    except KeyError:
        return elements
