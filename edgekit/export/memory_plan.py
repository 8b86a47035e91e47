"""Store a peak-minimising operator order and an offline memory plan in a TFLite flatbuffer for TFLM.

The plan (edgekit.costmodel.arena_plan) beats TFLM's greedy planner in two ways: better offsets where
largest-first placement wastes space, and outputs that overlap the input dying at their op where the
kernel's raster order allows it (a conv's output starting a few rows below its input), which TFLM's
own planner never does. `optimise_arena` proves each step in the real interpreter: outputs bit for
bit and the arena by bisection.

    >>> planned = plan_memory(int8_bytes)                                   # doctest: +SKIP
    >>> planned.predicted_tflm_bytes, planned.predicted_bytes               # doctest: +SKIP
    >>> checked = optimise_arena(int8_bytes)   # measured in TFLM, outputs compared  # doctest: +SKIP

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

from edgekit.costmodel.arena_plan import CONCATENATION, OpGeometry, plan_arena
from edgekit.costmodel.schedule import Dataflow, DataflowOp
from edgekit.model_io.flatbuffer import ints, read_model, write_model

OFFLINE_PLAN_METADATA = "OfflineMemoryAllocation"
ONLINE_PLANNED = -1
CHECK_SAMPLES = 8  # samples per input run through TFLM before and after each step
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
        if kind == CONCATENATION:
            axis = int(options.axis) % len(out_full)
            return OpGeometry(**common, axis=axis - 1) if axis > 0 else None
        return OpGeometry(**common)

    return geometry


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


# ----------------------------------------------------------------------------- measured in TFLM


@dataclass(frozen=True)
class ArenaStep:
    """One optimisation applied on top of the previous ones, and the arena TFLM needs with it."""

    name: str            # "tflm" (TFLM's own order and plan), "order", "offline plan", "overlap"
    arena_bytes: int     # measured minimum (bisection in the host TFLM)
    head_bytes: int      # TFLM's recorded non-persistent (activation + scratch) section
    outputs_identical: bool


@dataclass(frozen=True)
class ArenaOptimisation:
    tflite_bytes: bytes             # the best model whose outputs are bit-identical (the input if none)
    steps: tuple[ArenaStep, ...]    # the ladder, first step "tflm"
    plan: MemoryPlanResult

    @property
    def arena_bytes(self) -> int:
        return min(s.arena_bytes for s in self.steps if s.outputs_identical)

    @property
    def baseline_arena_bytes(self) -> int:
        return self.steps[0].arena_bytes


STEPS = (("order", {"reorder": True, "offline": False, "overlap": False}),
         ("offline plan", {"reorder": True, "offline": True, "overlap": False}),
         ("overlap", {"reorder": True, "offline": True, "overlap": True}))


def optimise_arena(tflite_bytes: bytes, check_data: np.ndarray | None = None,
                   steps: tuple[str, ...] = ("order", "offline plan", "overlap")) -> ArenaOptimisation:
    """Plan memory, measure each step's arena in the host TFLM and keep the smallest bit-identical model.

    check_data: float samples per input (an array, or a list / dict per input; the first CHECK_SAMPLES
    are used, seeded noise when None) run before and after: a step whose outputs differ in any bit is
    reported and not used. Slow-ish: one arena bisection (about 20 interpreter builds) per step.
    """
    from edgekit.runners import tflm

    x = _check_inputs(tflite_bytes, check_data)
    reference = _outputs(tflite_bytes, x)
    base = tflm.measure_arena(tflite_bytes)
    ladder = [ArenaStep("tflm", base.arena_bytes, base.recorded_head_bytes, True)]
    best, best_arena, best_plan = tflite_bytes, base.arena_bytes, None
    seen: dict[bytes, ArenaStep] = {tflite_bytes: ladder[0]}
    for name, options in STEPS:
        if name not in steps:
            continue
        planned = plan_memory(tflite_bytes, **options)
        best_plan = best_plan or planned
        if planned.tflite_bytes in seen:  # the step changed nothing: same figures
            ladder.append(ArenaStep(name, *[getattr(seen[planned.tflite_bytes], f)
                                            for f in ("arena_bytes", "head_bytes", "outputs_identical")]))
            continue
        identical = _same(reference, _outputs(planned.tflite_bytes, x))
        arena = tflm.measure_arena(planned.tflite_bytes)
        step = ArenaStep(name, arena.arena_bytes, arena.recorded_head_bytes, identical)
        seen[planned.tflite_bytes] = step
        ladder.append(step)
        if identical and arena.arena_bytes < best_arena:
            best, best_arena, best_plan = planned.tflite_bytes, arena.arena_bytes, planned
    return ArenaOptimisation(best, tuple(ladder), best_plan or plan_memory(tflite_bytes, False, False, False))


MCU_STEPS = (("operator order", {"reorder": True, "offline": False, "overlap": False}),
             ("offline memory plan", {"reorder": True, "offline": True, "overlap": False}),
             ("offline memory plan + output overlap", {"reorder": True, "offline": True, "overlap": True}))
OVERLAP_CAVEAT = ("assumes kernels that write their output in the reference kernels' raster order; not verified "
                  "against CMSIS-NN or other optimised kernels")


@dataclass(frozen=True)
class MemoryStep:
    """One step of the MCU export's memory ladder, tried on top of the steps applied before it."""

    name: str                        # a name of MCU_STEPS
    applied: bool
    arena_before_bytes: int          # measured in TFLM (bisection) on the model before this step
    flash_before_bytes: int
    arena_after_bytes: int | None    # measured; None when the step was not run in TFLM (see why)
    flash_after_bytes: int | None
    outputs_identical: bool | None   # TFLM outputs of the step's model vs the unplanned one, bit for bit
    why: str = ""                    # why not applied

    def to_dict(self) -> dict:
        return {"name": self.name, "applied": self.applied, "arena_before_bytes": self.arena_before_bytes,
                "arena_after_bytes": self.arena_after_bytes, "flash_before_bytes": self.flash_before_bytes,
                "flash_after_bytes": self.flash_after_bytes, "outputs_identical": self.outputs_identical,
                "why": self.why}


@dataclass(frozen=True)
class McuMemoryOptimisation:
    """The MCU export's memory step: the model kept and every step tried, each measured in TFLM."""

    tflite_bytes: bytes
    steps: tuple[MemoryStep, ...]
    baseline_arena_bytes: int
    arena_bytes: int
    check_samples: int

    @property
    def applied(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.steps if s.applied)

    def to_dict(self) -> dict:
        return {"applied": list(self.applied), "arena_before_bytes": self.baseline_arena_bytes,
                "arena_after_bytes": self.arena_bytes, "check_samples": self.check_samples,
                "steps": [s.to_dict() for s in self.steps]}

    def note(self) -> str:
        """One line for the export / fit report."""
        if not self.applied:
            return "memory optimisation: none applied (" + "; ".join(f"{s.name}: {s.why}" for s in self.steps) + ")"
        caveat = f"; output overlap {OVERLAP_CAVEAT}" if any("overlap" in n for n in self.applied) else ""
        return (f"memory optimisation: {', '.join(self.applied)}: arena {self.baseline_arena_bytes} -> "
                f"{self.arena_bytes} bytes (measured in TFLM, outputs bit-identical on {self.check_samples} "
                f"check samples){caveat}")


def optimise_for_mcu(model_bytes: bytes, check_data=None, overlap: bool = False) -> McuMemoryOptimisation:
    """The MCU export's memory step: try order, offline plan (and overlap) in turn, keep what TFLM proves.

    A step is kept only when TFLM runs its model with outputs bit-identical to the unplanned model's on
    the check samples and needs a smaller arena (bisection). A step the plan predicts no gain for is not
    run. overlap: also try outputs overlapping their dying input (OVERLAP_CAVEAT). Shared vectors
    (edgekit.export.strip) stay shared.
    """
    from edgekit.export.strip import share_vectors
    from edgekit.runners import tflm

    x = _check_inputs(model_bytes, check_data)
    reference = _outputs(model_bytes, x)
    arena = baseline = tflm.measure_arena(model_bytes).arena_bytes
    current, predicted, reorder = model_bytes, None, True
    steps: list[MemoryStep] = []
    for name, options in MCU_STEPS:
        if "overlap" in name and not overlap:
            continue
        planned = plan_memory(model_bytes, **{**options, "reorder": reorder})
        predicted = planned.predicted_tflm_bytes if predicted is None else predicted
        before = (name, False, arena, len(current))
        if planned.skipped:
            steps.append(MemoryStep(*before, None, None, None, f"not planned: {planned.skipped}"))
            break
        if name == "operator order" and not planned.reordered:
            steps.append(MemoryStep(*before, None, None, None, "the stored order already has the lowest peak"))
            reorder = False
            continue
        if planned.predicted_bytes >= predicted:
            steps.append(MemoryStep(*before, None, None, None, f"planned activations {planned.predicted_bytes} B, "
                                    f"no fewer than the {predicted} B before it: not run"))
            reorder = reorder and name != "operator order"
            continue
        candidate = share_vectors(planned.tflite_bytes)
        identical = _same(reference, _outputs(candidate, x))
        after = tflm.measure_arena(candidate).arena_bytes
        applied = identical and after < arena
        why = "" if applied else ("TFLM outputs differ from the unplanned model's" if not identical
                                  else f"measured arena {after} B is no smaller")
        steps.append(MemoryStep(*before[:1], applied, *before[2:], after, len(candidate), identical, why))
        if applied:
            current, arena, predicted = candidate, after, planned.predicted_bytes
        elif name == "operator order":
            reorder = False
    return McuMemoryOptimisation(current, tuple(steps), baseline, arena, len(x[0]) if x else 0)


def _check_inputs(tflite_bytes: bytes, check_data, count: int = CHECK_SAMPLES) -> list[np.ndarray]:
    """Up to `count` samples per model input: from check_data (array, list or dict per input), else seeded noise."""
    from edgekit.runners.base import ordered_inputs

    if check_data is not None:
        return [np.asarray(x)[:count] for x in ordered_inputs(tflite_bytes, check_data)]
    subgraph = read_model(tflite_bytes).subgraphs[0]
    rng = np.random.default_rng(0)
    return [rng.standard_normal((count, *ints(subgraph.tensors[i].shape)[1:])).astype(np.float32)
            for i in ints(subgraph.inputs)]


def _outputs(tflite_bytes: bytes, inputs: list[np.ndarray]) -> list[np.ndarray]:
    from edgekit.runners import tflm

    return list(tflm.predict_named(tflite_bytes, inputs).values())


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
