"""Predict the TFLite file size and the TFLite Micro arena of a graph without converting it (pure).

Both are linear models over counts taken from `edgekit.memory.lower` (the predicted converted graph),
with coefficients fitted on real conversions and real TFLM runs (tests/test_size_model.py re-measures
them on fresh models; benchmarks report the error):

- flash bytes = weight bytes after BatchNorm folding + per-tensor and per-op flatbuffer overhead
  + 12 B per quantisation channel (float32 scale + int64 zero point) for int8.
- TFLM arena = greedy-planned activation head + the persistent tail TFLM allocates: one
  TfLiteEvalTensor (24 B) per tensor, one NodeAndRegistration (64 B) per op, TfLiteTensor structs for
  graph inputs/outputs, kernel op data (per-channel multipliers/shifts for conv and depthwise), and a
  fixed allocator overhead.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.costs import CONV_OPS, DENSE_OPS, DEPTHWISE_OPS, SEPARABLE_OPS, TRANSPOSED_CONV_OPS, analyze
from edgekit.graph import Graph
from edgekit.memory import lower, peak_activation_bytes

# Fitted on int8 conversions of a Conv1D net, DS-CNN, ResNet-8, MobileNet V1 0.25 and V2 0.35 at
# 96x96 and a dense autoencoder (TF 2.21 converter): per tensor, per op, fixed.
FLATBUFFER_BYTES_PER_TENSOR = 143
FLATBUFFER_BYTES_PER_OP = 128
FLATBUFFER_FIXED_BYTES = 1200
QUANT_BYTES_PER_CHANNEL = 12

TFLM_EVAL_TENSOR_BYTES = 24
TFLM_NODE_BYTES = 64
TFLM_IO_TENSOR_BYTES = 80
TFLM_FIXED_BYTES = 730
TFLM_OP_DATA_BYTES = 48

_CONSTS_PER_KIND = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2, "TRANSPOSE_CONV": 3,
                    "EXPAND_DIMS": 1, "RESHAPE": 1, "PAD": 1, "MEAN": 1, "REDUCE_MAX": 1, "MUL_ADD": 2}


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
    overhead = (FLATBUFFER_FIXED_BYTES + FLATBUFFER_BYTES_PER_TENSOR * n_tensors
                + FLATBUFFER_BYTES_PER_OP * n_ops + quant)
    return SizeEstimate(weight_bytes + overhead, weight_bytes, overhead, n_ops, n_tensors)


def estimate_tflm_arena(graph: Graph) -> ArenaEstimate:
    """Predicted TFLite Micro arena (int8 model): planned head plus persistent tail."""
    runtime = lower(graph)
    head = peak_activation_bytes(graph, "int8").peak_bytes
    n_consts = sum(_CONSTS_PER_KIND.get(op.kind, 0) for op in runtime.ops)
    n_tensors = len(runtime.tensor_elements) + n_consts
    op_data = 0
    for op in runtime.ops:
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "SEPARABLE", "TRANSPOSE_CONV"):
            op_data += 8 * runtime.tensor_elements[op.outputs[0]] // max(1, _spatial(graph, op.layer))
        op_data += TFLM_OP_DATA_BYTES
    tail = (TFLM_FIXED_BYTES + TFLM_EVAL_TENSOR_BYTES * n_tensors + TFLM_NODE_BYTES * len(runtime.ops)
            + TFLM_IO_TENSOR_BYTES * (len(runtime.inputs) + len(runtime.outputs)) + op_data)
    return ArenaEstimate(head + tail, head, tail)


def _spatial(graph: Graph, layer: str) -> int:
    """Spatial positions of a layer's output (elements / channels)."""
    try:
        t = graph.tensors[graph.node(layer).outputs[0]]
    except KeyError:
        return 1
    return max(1, t.elements // max(1, t.channels))
