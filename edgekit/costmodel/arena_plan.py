"""The whole arena plan for TFLM: operator order, offline offsets and overlapping outputs (pure).

`plan_arena` works on any `Dataflow` whose ops can describe their geometry: the exporter feeds it the
converted flatbuffer (edgekit.export.memory_plan), `predict_planned_arena` the Keras graph as the
converter will lower it (edgekit.ir.lowering), so planning can count on the smaller arena before
converting anything.

    >>> from edgekit.examples.zoo import resnet8                          # doctest: +SKIP
    >>> plan = predict_planned_arena(from_keras(resnet8()))               # doctest: +SKIP
    >>> plan.tflm_bytes, plan.peak_bytes                                  # doctest: +SKIP
    (49152, 33792)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from edgekit.costmodel.memory import SEARCH_NODE_BUDGET, MemoryPlan, plan_greedy, plan_offline
from edgekit.costmodel.overlap import Overlap, conv_shift_bytes, elementwise_shift_bytes, plan_with_overlaps
from edgekit.costmodel.schedule import STATE_BUDGET, Dataflow, DataflowOp, best_order, lifetimes

RASTER_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D"})
PAD_OPS = frozenset({"PAD", "PADV2"})  # raster order too, when the exporter knows the top padding
CONCATENATION = "CONCATENATION"  # copies slice k of every input, k = 0, 1, ...: each input streams
ELEMENTWISE_OPS = frozenset({"ADD", "SUB", "MUL", "RELU", "RELU6", "RELU_N1_TO_1", "LOGISTIC", "TANH", "LEAKY_RELU",
                             "HARD_SWISH", "QUANTIZE", "ABS", "NEG", "PRELU"})


@dataclass(frozen=True)
class OpGeometry:
    """What the overlap rule needs of one op and one of its inputs (shapes without the batch axis)."""

    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    in_element_bytes: int = 1
    out_element_bytes: int = 1
    kernel: int = 1             # rows of the window (raster ops)
    stride: int = 1
    dilation: int = 1
    same_padding: bool = False
    axis: int = -1              # CONCATENATION
    streams: bool = True        # False: this input is not the one the kernel walks (a conv's weights, ...)
    pad_top: int | None = None  # PAD / PADV2: rows added above (None: unknown, no overlap)
    slice_offset_bytes: int | None = None  # SLICE of a contiguous block this far into its input (None: not one)


def overlap_shift_bytes(g: OpGeometry) -> int | None:
    """How far below its input the output may start (None: it may not overlap it)."""
    if not g.streams:
        return None
    if g.kind in ELEMENTWISE_OPS:
        if g.in_shape != g.out_shape:
            return None  # a broadcast input is read again and again; the full-shape one streams
        return elementwise_shift_bytes(math.prod(g.out_shape), g.in_element_bytes, g.out_element_bytes)
    if g.kind == CONCATENATION:
        if g.in_element_bytes != g.out_element_bytes or len(g.in_shape) != len(g.out_shape) or not g.out_shape:
            return None
        axis = g.axis % len(g.out_shape)
        rows = math.prod(g.out_shape[:axis])
        return conv_shift_bytes(rows, math.prod(g.in_shape[axis:]) * g.in_element_bytes, rows,
                                math.prod(g.out_shape[axis:]) * g.out_element_bytes, 1, 0)
    if g.kind == "SLICE" and g.slice_offset_bytes is not None:
        return -g.slice_offset_bytes  # a contiguous block copied onto itself: the output sits inside the input
    if g.kind in PAD_OPS and g.pad_top is not None and len(g.in_shape) == 3 and len(g.out_shape) == 3:
        # the reference kernel writes the padded output in order, copying input row r - pad_top into row r
        return conv_shift_bytes(g.in_shape[0], math.prod(g.in_shape[1:]) * g.in_element_bytes, g.out_shape[0],
                                math.prod(g.out_shape[1:]) * g.out_element_bytes, 1, g.pad_top)
    if g.kind in RASTER_OPS and len(g.in_shape) == 3 and len(g.out_shape) == 3:
        in_rows, out_rows = g.in_shape[0], g.out_shape[0]
        pad_total = max((out_rows - 1) * g.stride + (g.kernel - 1) * g.dilation + 1 - in_rows, 0)
        return conv_shift_bytes(in_rows, math.prod(g.in_shape[1:]) * g.in_element_bytes, out_rows,
                                math.prod(g.out_shape[1:]) * g.out_element_bytes, g.stride,
                                pad_total // 2 if g.same_padding else 0)
    return None


@dataclass(frozen=True)
class ArenaPlan:
    """Head (activation) bytes under TFLM's own plan and under edgekit's; kernel scratch is in neither."""

    order: tuple[int, ...]
    tflm_bytes: int             # TFLM's greedy plan on the stored order
    order_only_bytes: int       # chosen order, TFLM's greedy placement
    offline_bytes: int          # chosen order, edgekit's offsets, no overlaps
    peak_bytes: int             # what edgekit stores: order, offsets, overlaps
    plan: MemoryPlan | None     # the offsets to store; None when TFLM's own placement is as good
    overlaps: tuple[Overlap, ...]
    order_exact: bool

    @property
    def reordered(self) -> bool:
        return self.order != tuple(range(len(self.order)))


GeometryOf = Callable[[int, int], "OpGeometry | None"]  # (op index, input tensor) -> geometry


def plan_arena(graph: Dataflow, geometry: GeometryOf | None = None, reorder: bool = True,
               offline: bool = True, search_nodes: int = SEARCH_NODE_BUDGET,
               order_states: int = STATE_BUDGET) -> ArenaPlan:
    """Best of the stored order and the live-peak-minimising one, each with offsets (and overlaps when
    `geometry` describes the ops; None: no overlaps). search_nodes: the offline plan's branch-and-bound budget
    (0: first fit over its heuristic orders only); order_states: the operator-order search's (exact below it)."""
    identity = tuple(range(len(graph.ops)))
    stored = lifetimes(graph, identity)
    stored_greedy = plan_greedy(stored)
    tflm = stored_greedy.peak_bytes
    schedule = best_order(graph, state_budget=order_states) if reorder else None
    orders = [identity] if schedule is None or schedule.order == identity else [identity, schedule.order]
    scored = []
    for order in orders:  # the identity first: it wins ties, so an unchanged order stays unchanged
        buffers = stored if order == identity else lifetimes(graph, order)
        greedy_plan = stored_greedy if order == identity else plan_greedy(buffers)
        greedy = greedy_plan.peak_bytes
        plain = plan_offline(buffers, greedy=greedy_plan, node_budget=search_nodes) if offline else None
        chosen, overlaps = plain, ()
        if offline and geometry is not None:
            overlaps = useful_overlaps(buffers, candidate_overlaps(graph, order, buffers, geometry), plain.peak_bytes)
            if overlaps:
                chosen = plan_with_overlaps(buffers, overlaps)
                if chosen.peak_bytes >= plain.peak_bytes:
                    chosen, overlaps = plain, ()
        peak = min(greedy, chosen.peak_bytes) if chosen else greedy
        scored.append((peak, order, greedy, plain, chosen, overlaps))
    peak, order, order_only, plain, plan, overlaps = min(scored, key=lambda item: item[0])
    if plan is not None and plan.peak_bytes >= order_only:
        plan, overlaps = None, ()  # TFLM's own placement is as good: store no plan
    return ArenaPlan(order, tflm, order_only, min(order_only, plain.peak_bytes) if plain else order_only, peak,
                     plan, overlaps, schedule.exact if schedule is not None else False)


def candidate_overlaps(graph: Dataflow, order: tuple[int, ...], buffers, geometry: GeometryOf) -> list[Overlap]:
    """Input/output pairs that may overlap: the input dies at the op and the kernel streams it in raster order."""
    life = {b.name: b for b in buffers}
    outputs = set(graph.outputs)
    found = []
    for position, op_index in enumerate(order, start=1):
        op = graph.ops[op_index]
        if len(op.outputs) != 1:
            continue
        out = op.outputs[0]
        for source in dict.fromkeys(op.inputs):
            if source in outputs or life[str(source)].last_op != position:
                continue
            g = geometry(op_index, source)
            shift = overlap_shift_bytes(g) if g is not None else None
            if shift is not None and shift < graph.tensor_bytes[out]:
                found.append(Overlap(str(source), str(out), shift))
    return found


def useful_overlaps(buffers, candidates: list[Overlap], peak: int) -> tuple[Overlap, ...]:
    """Per output (in op order), the candidate that lowers the heuristic plan's peak most, if none raises it."""
    kept: list[Overlap] = []
    for output in dict.fromkeys(c.output for c in candidates):
        trials = []
        for candidate in (c for c in candidates if c.output == output):
            if all(k.input != candidate.input for k in kept):
                trials.append((plan_with_overlaps(buffers, [*kept, candidate], node_budget=0).peak_bytes,
                               candidate.shift_bytes, candidate))
        if trials:
            trial, _, best = min(trials, key=lambda item: item[:2])
            if trial <= peak:
                kept.append(best)
                peak = trial
    return tuple(kept)


# ----------------------------------------------------------------------------- from the Keras graph


def predict_planned_arena(graph, reorder: bool = True, offline: bool = True, overlap: bool = True,
                          search_nodes: int = SEARCH_NODE_BUDGET, order_states: int = STATE_BUDGET) -> ArenaPlan:
    """The plan for the int8 model (int8 input and output) the converter will make of an IR graph."""
    from edgekit.ir.lowering import fold_same_padding, lower

    graph = fold_same_padding(graph)
    runtime = lower(graph)
    index = {name: i for i, name in enumerate(runtime.tensor_elements)}
    ops = tuple(DataflowOp(tuple(index[t] for t in op.inputs if t in index),
                           tuple(index[t] for t in op.outputs if t in index)) for op in runtime.ops)
    sizes = {index[t]: n for t, n in runtime.tensor_elements.items() if n}
    flow = Dataflow(ops, sizes, tuple(index[t] for t in runtime.inputs), tuple(index[t] for t in runtime.outputs))
    names = list(runtime.tensor_elements)

    def geometry(op_index: int, source: int) -> OpGeometry | None:
        return _ir_geometry(graph, runtime.ops[op_index], names[source])

    return plan_arena(flow, geometry if overlap else None, reorder, offline, search_nodes, order_states)


def _ir_geometry(graph, op, source: str) -> OpGeometry | None:
    """Geometry of a lowered op from its Keras layer; runtime inputs follow the layer's inputs in order."""
    try:
        node = graph.node(op.layer)
    except (KeyError, ValueError):
        return None
    if source not in op.inputs or not node.outputs or not node.inputs:
        return None
    position = op.inputs.index(source)
    attrs = node.attrs
    final = tuple(graph.tensors[node.outputs[0]].shape)
    first_in = tuple(graph.tensors[node.inputs[0]].shape)
    mult = int(attrs.get("depth_multiplier", 1) or 1)
    if source.endswith("/depthwise"):  # the pointwise half of a separable conv: 1x1, stride 1
        return OpGeometry(op.kind, (*final[:-1], first_in[-1] * mult), final)
    in_shape = tuple(graph.tensors[node.inputs[position]].shape) if position < len(node.inputs) else None
    out_shape = (*final[:-1], first_in[-1] * mult) if op.outputs[0].endswith("/depthwise") else final
    if in_shape is None or math.prod(in_shape) == 0:
        return None
    if op.kind in RASTER_OPS:
        if len(in_shape) != 3 or position != 0:
            return None  # 1D ops run on reshaped copies; only the first input streams
        window = attrs.get("kernel_size") or attrs.get("pool_size") or (1,)
        strides = attrs.get("strides") or window
        dilation = attrs.get("dilation_rate") or (1,)
        return OpGeometry(op.kind, in_shape, out_shape, kernel=int(_first(window)), stride=int(_first(strides)),
                          dilation=int(_first(dilation)), same_padding=attrs.get("padding") == "same")
    axis = attrs.get("axis", -1)
    if op.kind == CONCATENATION and not isinstance(axis, int):
        return None
    axis = axis - 1 if isinstance(axis, int) and axis > 0 else axis  # Keras counts the batch axis
    return OpGeometry(op.kind, in_shape, out_shape, axis=axis if isinstance(axis, int) else -1)


def _first(value) -> int:
    return value[0] if isinstance(value, (list, tuple)) else value
