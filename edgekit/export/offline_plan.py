"""Store a peak-minimising operator order and an offline memory plan in a TFLite flatbuffer for TFLM (no run).

The plan (edgekit.costmodel.arena_plan) beats TFLM's greedy planner in two ways: better offsets where
largest-first placement wastes space, and outputs that overlap the input dying at their op where the
kernel's raster order allows it (a conv's output starting a few rows below its input, a PAD's output
over its input, a SLICE of whole rows in place), which TFLM's own planner never does.
edgekit.export.memory_plan proves each plan in the real interpreter.

    >>> planned = plan_memory(int8_bytes)                                   # doctest: +SKIP
    >>> planned.predicted_tflm_bytes, planned.predicted_bytes               # doctest: +SKIP

TFLite Micro executes the operators in stored order and, when the model carries metadata named
"OfflineMemoryAllocation", places the tensors at the offsets it lists instead of running its greedy
planner. The buffer is int32: [version 0, subgraph 0, number of tensors, one offset per tensor of all
subgraphs], -1 for a tensor left to the online planner (constants, and anything not planned here);
offsets count from the start of the non-persistent ("head") part of the arena. Kernel scratch
buffers stay online: TFLM places them in the gaps of the offline plan or above it.
(tflite-micro micro_allocation_info.cc, GetOfflinePlannedOffsets; verified with the host interpreter.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekit.costmodel.arena_plan import CONCATENATION, PAD_OPS, OpGeometry, plan_arena
from edgekit.costmodel.schedule import Dataflow, DataflowOp
from edgekit.model_io.flatbuffer import ints, read_model, tensor_bytes, write_model

OFFLINE_PLAN_METADATA = "OfflineMemoryAllocation"
ONLINE_PLANNED = -1
CHECK_SAMPLES = 8  # samples per input run through TFLM before and after each plan
_TYPE_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 9: 1, 10: 8, 16: 4, 17: 1}  # schema TensorType
_CONTROL_FLOW = {"IF", "WHILE", "CALL_ONCE"}


@dataclass(frozen=True)
class MemoryPlanResult:
    """A model with an operator order and offline offsets, and the head (activation) bytes each plan needs.

    predicted_tflm_bytes: TFLM's greedy planner on the stored order (edgekit's replica of it);
    predicted_bytes: the order and offsets written here. Kernel scratch buffers are in neither.
    """

    tflite_bytes: bytes
    order: tuple[int, ...]
    reordered: bool
    predicted_tflm_bytes: int
    predicted_order_only_bytes: int  # new order, TFLM's greedy placement
    predicted_offline_bytes: int     # new order, edgekit's offsets without overlapping buffers
    predicted_bytes: int             # what is stored: order, offsets and overlaps
    proven_optimal: bool             # the offsets reach the live-bytes lower bound (or the search finished)
    order_exact: bool                # the order minimises the live-bytes peak
    overlaps: int                    # ops whose output overlaps the input they consume last
    skipped: str = ""                # why nothing was planned ("" when planned)


def dataflow(model) -> Dataflow | None:
    """The activation dataflow of a `ModelT`'s only subgraph; None when it cannot be planned statically."""
    from edgekit.model_io.flatbuffer import op_name

    if len(model.subgraphs or []) != 1:
        return None
    subgraph = model.subgraphs[0]
    sizes: dict[int, int] = {}
    for index, tensor in enumerate(subgraph.tensors or []):
        data = model.buffers[tensor.buffer].data if 0 < tensor.buffer < len(model.buffers or []) else None
        if (data is not None and len(data)) or tensor.isVariable:
            continue
        shape = ints(tensor.shape)
        if any(d < 0 for d in shape) or int(tensor.type) not in _TYPE_BYTES:
            return None
        size = int(np.prod(shape, dtype=np.int64)) * _TYPE_BYTES[int(tensor.type)]
        if size:
            sizes[index] = size
    ops = []
    for operator in subgraph.operators or []:
        if op_name(model, operator) in _CONTROL_FLOW:
            return None
        ops.append(DataflowOp(tuple(t for t in ints(operator.inputs) if t in sizes),
                              tuple(t for t in ints(operator.outputs) if t in sizes)))
    return Dataflow(tuple(ops), sizes, tuple(ints(subgraph.inputs)), tuple(ints(subgraph.outputs)))


def plan_memory(tflite_bytes: bytes, reorder: bool = True, offline: bool = True,
                overlap: bool = True) -> MemoryPlanResult:
    """The model with the best operator order found (reorder) and an offline plan (offline) stored.

    overlap (needs offline): let an op's output overlap the input that dies there, where the kernel's
    raster order allows (edgekit.costmodel.overlap). Pure flatbuffer editing: nothing is run. Models
    with several subgraphs, control flow or dynamic shapes come back unchanged with `skipped` saying why.
    """
    model = read_model(tflite_bytes)
    graph = dataflow(model)
    if graph is None:
        return MemoryPlanResult(tflite_bytes, (), False, 0, 0, 0, 0, False, False, 0,
                                skipped="several subgraphs, control flow or dynamic shapes")
    geometry = _flatbuffer_geometry(model) if overlap else None
    planned = plan_arena(graph, geometry, reorder=reorder, offline=offline)
    subgraph = model.subgraphs[0]
    operators = list(subgraph.operators or [])
    subgraph.operators = [operators[i] for i in planned.order]
    _set_offline_offsets(model, None if planned.plan is None else planned.plan.offsets)
    return MemoryPlanResult(
        write_model(model), planned.order, planned.reordered, planned.tflm_bytes, planned.order_only_bytes,
        planned.offline_bytes, planned.peak_bytes,
        planned.plan.proven_optimal if planned.plan is not None else False, planned.order_exact,
        len(planned.overlaps))


def _flatbuffer_geometry(model):
    """(op index, input tensor) -> OpGeometry, read from the operator's tensors and options."""
    from edgekit.model_io.flatbuffer import op_name

    subgraph = model.subgraphs[0]
    tensors = subgraph.tensors

    def geometry(op_index: int, source: int) -> OpGeometry | None:
        operator = subgraph.operators[op_index]
        kind = op_name(model, operator)
        inputs, out = ints(operator.inputs), ints(operator.outputs)[0]
        in_full, out_full = ints(tensors[source].shape), ints(tensors[out].shape)
        if not in_full or not out_full or in_full[0] != 1 or out_full[0] != 1:
            return None  # batch 1 only: the rules count rows of one sample
        sizes = _TYPE_BYTES[int(tensors[source].type)], _TYPE_BYTES[int(tensors[out].type)]
        options = operator.builtinOptions
        common = {"kind": kind, "in_shape": tuple(in_full[1:]), "out_shape": tuple(out_full[1:]),
                  "in_element_bytes": sizes[0], "out_element_bytes": sizes[1]}
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            return OpGeometry(**common, kernel=ints(tensors[inputs[1]].shape)[1], stride=int(options.strideH),
                              dilation=max(1, int(options.dilationHFactor)), same_padding=int(options.padding) == 0,
                              streams=inputs[0] == source)
        if kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            return OpGeometry(**common, kernel=int(options.filterHeight), stride=int(options.strideH),
                              same_padding=int(options.padding) == 0, streams=inputs[0] == source)
        if kind in PAD_OPS and inputs[0] == source and len(in_full) == 4:
            amounts = tensor_bytes(model, subgraph, inputs[1])
            if amounts is not None and len(amounts) == 32:
                return OpGeometry(**common, pad_top=int(amounts.view("<i4")[2]))
            return None
        if kind == "SLICE" and inputs[0] == source:
            return OpGeometry(**common, slice_offset_bytes=_contiguous_slice_offset(model, operator, sizes[0]))
        if kind == CONCATENATION:
            axis = int(options.axis) % len(out_full)
            return OpGeometry(**common, axis=axis - 1) if axis > 0 else None
        return OpGeometry(**common)

    return geometry


def _contiguous_slice_offset(model, operator, element_bytes: int) -> int | None:
    """Bytes into its input where a SLICE's output starts when it is one contiguous block (whole rows of an
    NHWC map, batch 1) at a 16-byte boundary; None otherwise."""
    subgraph = model.subgraphs[0]
    source, begin_index, size_index = ints(operator.inputs)[:3]
    shape, begin, size = ints(subgraph.tensors[source].shape), *(tensor_bytes(model, subgraph, i)
                                                                  for i in (begin_index, size_index))
    if begin is None or size is None or len(shape) != 4 or len(begin) != 16 or len(size) != 16:
        return None
    begin, size = begin.view("<i4"), size.view("<i4")
    if begin[0] or begin[2] or begin[3] or (size[2] not in (-1, shape[2])) or (size[3] not in (-1, shape[3])):
        return None
    offset = int(begin[1]) * shape[2] * shape[3] * element_bytes
    return offset if offset % 16 == 0 else None


def _set_offline_offsets(model, offsets: dict[str, int] | None) -> None:
    """Replace any OfflineMemoryAllocation metadata with `offsets` (tensor index as str -> bytes)."""
    from ai_edge_litert import schema_py_generated as schema

    kept = [m for m in model.metadata or [] if _decode(m.name) != OFFLINE_PLAN_METADATA]
    model.metadata = kept or None
    if offsets is not None:
        count = len(model.subgraphs[0].tensors or [])
        values = np.full(3 + count, ONLINE_PLANNED, dtype="<i4")
        values[:3] = (0, 0, count)
        for name, offset in offsets.items():
            values[3 + int(name)] = offset
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(values.tobytes(), dtype=np.uint8).copy()
        model.buffers = [*(model.buffers or []), buffer]
        metadata = schema.MetadataT()
        metadata.name = OFFLINE_PLAN_METADATA
        metadata.buffer = len(model.buffers) - 1
        model.metadata = [*kept, metadata]
    from edgekit.model_io.flatbuffer import compact

    compact(model)  # drops the buffer of a replaced plan


def offline_offsets(tflite_bytes: bytes) -> list[int] | None:
    """The per-tensor offsets of a model's OfflineMemoryAllocation metadata, or None."""
    model = read_model(tflite_bytes)
    for metadata in model.metadata or []:
        if _decode(metadata.name) == OFFLINE_PLAN_METADATA:
            values = np.frombuffer(bytes(np.asarray(model.buffers[metadata.buffer].data, np.uint8)), "<i4")
            return [int(v) for v in values[3:3 + int(values[2])]]
    return None


def _decode(text) -> str:
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else (text or "")


# ----------------------------------------------------------------------------- checking in TFLM


def check_inputs(tflite_bytes: bytes, check_data, count: int = CHECK_SAMPLES) -> list[np.ndarray]:
    """Up to `count` samples per model input: from check_data (array, list or dict per input), else seeded noise."""
    from edgekit.runners.base import ordered_inputs

    if check_data is not None:
        return [np.asarray(x)[:count] for x in ordered_inputs(tflite_bytes, check_data)]
    subgraph = read_model(tflite_bytes).subgraphs[0]
    rng = np.random.default_rng(0)
    return [rng.standard_normal((count, *ints(subgraph.tensors[i].shape)[1:])).astype(np.float32)
            for i in ints(subgraph.inputs)]


def tflm_outputs(tflite_bytes: bytes, inputs: list[np.ndarray]) -> list[np.ndarray]:
    from edgekit.runners import tflm

    return list(tflm.predict_named(tflite_bytes, inputs).values())


def same_outputs(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
