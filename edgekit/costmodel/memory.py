"""Peak activation memory: plan the buffers of the lowered graph (`edgekit.ir.lowering`) (pure).

Two steps, each testable alone:
1. `edgekit.ir.lowering.lower(graph)` predicts the converted TFLite graph: BatchNormalization folded into the conv
before
   it, ReLU/ReLU6 fused into the producing op, Dropout and friends removed, and every 1D spatial op
   (Conv1D, pooling 1D, ...) expanded to EXPAND_DIMS -> 2D op -> RESHAPE as the converter emits it.
   TFLite Micro does not alias RESHAPE/EXPAND_DIMS outputs, so those copies cost arena bytes.
2. `plan_greedy(buffers)` places each buffer at the lowest offset that does not overlap a placed buffer
   alive at the same time, largest first, as TFLite Micro's GreedyMemoryPlanner does; the peak is the
   highest end offset (TFLM's "head" section of the arena).

`plan_offline(buffers)` is what edgekit stores in the model for TFLM instead (OfflineMemoryAllocation,
edgekit.export.memory_plan): the best of several placement orders, then an exact branch and bound;
`live_lower_bound` is the most bytes alive at one op, which no placement can beat. Operator order:
edgekit.costmodel.schedule; outputs overlapping their dying input: edgekit.costmodel.overlap.

    >>> plan = plan_greedy([Buffer("a", 100, 0, 1), Buffer("b", 50, 1, 2), Buffer("c", 100, 2, 3)])
    >>> plan.peak_bytes   # a and c never live together, so they share offset 0 (b: 50 -> 64 aligned)
    176
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edgekit.ir.graph import Graph, dtype_bytes
from edgekit.ir.lowering import RuntimeGraph, lower

TFLM_ALIGNMENT = 16

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
    proven_optimal: bool = False  # plan_offline: no placement of these buffers peaks lower


def aligned_bytes(n: int, alignment: int = TFLM_ALIGNMENT) -> int:
    """n rounded up to a multiple of alignment, as TFLM sizes every arena buffer."""
    return -(-n // alignment) * alignment


_aligned = aligned_bytes


def plan_greedy(buffers: list[Buffer], alignment: int = TFLM_ALIGNMENT) -> MemoryPlan:
    """Largest-first, lowest-offset placement of buffers whose lifetimes overlap."""
    order = sorted(buffers, key=lambda b: (-b.size_bytes, b.first_op))
    offsets, peak = _first_fit(order, alignment)
    return MemoryPlan(tuple(buffers), offsets, peak)


def _conflicts(spans: list[tuple[int, int]]) -> list[list[int]]:
    """For each (first_op, last_op) span, the indices of the others alive at some common op.

    A sweep in first-op order: a buffer only meets those starting before it dies, so this costs the number
    of pairs alive together (a few per buffer in a CNN), not every pair."""
    by_first = sorted(range(len(spans)), key=lambda i: spans[i][0])
    out: list[list[int]] = [[] for _ in spans]
    for k, i in enumerate(by_first):
        first, last = spans[i]
        for k_next in range(k + 1, len(by_first)):
            j = by_first[k_next]
            if spans[j][0] > last:
                break
            if spans[j][1] >= first:
                out[i].append(j)
                out[j].append(i)
    return out


def _lowest_free(size: int, alive: list[tuple[int, int]]) -> int:
    """The lowest offset where `size` bytes fit beside the (offset, end) blocks of the placed buffers alive
    with it, walking them in offset order as TFLM's greedy planner does."""
    offset = 0
    for off, end in sorted(alive):
        if offset + size <= off:
            break
        offset = max(offset, end)
    return offset


def _first_fit(order: list[Buffer], alignment: int) -> tuple[dict[str, int], int]:
    """Place buffers in the given order, each at the lowest offset free over its whole lifetime."""
    sizes = [_aligned(b.size_bytes, alignment) for b in order]
    return _place(order, range(len(order)), sizes, _conflicts([(b.first_op, b.last_op) for b in order]))


def _place(buffers: list[Buffer], order, sizes: list[int], conflicts: list[list[int]]) -> tuple[dict[str, int], int]:
    """First fit of buffers[i] for i in `order`, given their aligned sizes and `_conflicts`."""
    placed: list[tuple[int, int] | None] = [None] * len(buffers)  # (offset, end) once placed
    offsets: dict[str, int] = {}
    peak = 0
    for i in order:
        offset = _lowest_free(sizes[i], [placed[j] for j in conflicts[i] if placed[j] is not None])
        placed[i] = (offset, offset + sizes[i])
        offsets[buffers[i].name] = offset
        peak = max(peak, offset + sizes[i])
    return offsets, peak


def live_lower_bound(buffers: list[Buffer], alignment: int = TFLM_ALIGNMENT) -> int:
    """The most bytes alive at one op: no placement of these buffers can peak lower.

    A sweep over the ops where a buffer starts (the bytes alive only grow there): started minus ended sizes."""
    spans = [(b.first_op, b.last_op, _aligned(b.size_bytes, alignment)) for b in buffers if b.first_op <= b.last_op]
    starts = sorted((first, size) for first, _, size in spans)
    ends = sorted((last, size) for _, last, size in spans)
    best = alive = ended = 0
    for k, (step, size) in enumerate(starts):
        alive += size
        if k + 1 < len(starts) and starts[k + 1][0] == step:
            continue  # count every buffer starting at this op first
        while ended < len(ends) and ends[ended][0] < step:
            alive -= ends[ended][1]
            ended += 1
        best = max(best, alive)
    return best


# Orders tried before the exact search: TFLM's (largest first) and a few that suit chains and branches.
_HEURISTIC_ORDERS = (
    lambda b: (-b.size_bytes, b.first_op),
    lambda b: (b.first_op, -b.size_bytes),
    lambda b: (-(b.last_op - b.first_op), -b.size_bytes),
    lambda b: (-b.size_bytes * (b.last_op - b.first_op + 1), b.first_op),
    lambda b: (-b.last_op, -b.size_bytes),
)
SEARCH_NODE_BUDGET = 20_000


def plan_offline(buffers: list[Buffer], alignment: int = TFLM_ALIGNMENT,
                 node_budget: int = SEARCH_NODE_BUDGET, greedy: MemoryPlan | None = None) -> MemoryPlan:
    """Offsets at least as good as TFLM's greedy plan: heuristics, then an exact branch and bound.

    Every optimal placement is the first-fit placement of some buffer order (place the buffers of an
    optimal plan in increasing offset order: none can land higher), so a search over orders with
    first-fit is exact. It stops at `node_budget` nodes; `proven_optimal` says whether the result
    reaches the live-bytes lower bound or the search finished. greedy: `plan_greedy(buffers, alignment)`
    when the caller has it (it is the first order tried).

        >>> plan_offline([Buffer("a", 32, 0, 1), Buffer("b", 16, 1, 2), Buffer("c", 48, 2, 3)]).peak_bytes
        64
    """
    buffers = list(buffers)
    bound = live_lower_bound(buffers, alignment)
    sizes = [_aligned(b.size_bytes, alignment) for b in buffers]
    conflicts = _conflicts([(b.first_op, b.last_op) for b in buffers])

    def first_fit(key) -> tuple[dict[str, int], int]:
        return _place(buffers, sorted(range(len(buffers)), key=lambda i: key(buffers[i])), sizes, conflicts)

    best_offsets, best_peak = (dict(greedy.offsets), greedy.peak_bytes) if greedy is not None else first_fit(
        _HEURISTIC_ORDERS[0])
    for key in _HEURISTIC_ORDERS[1:]:
        if best_peak <= bound:
            break
        offsets, peak = first_fit(key)
        if peak < best_peak:
            best_offsets, best_peak = offsets, peak
    finished = best_peak <= bound
    if not finished:
        found, finished = _branch_and_bound(buffers, sizes, conflicts, best_peak, bound, node_budget)
        if found is not None:
            best_offsets, best_peak = found
    return MemoryPlan(tuple(buffers), best_offsets, best_peak, proven_optimal=finished or best_peak <= bound)


def _branch_and_bound(buffers: list[Buffer], sizes: list[int], conflicts: list[list[int]], incumbent: int, bound: int,
                      budget: int):
    """((offsets, peak) better than incumbent or None, whether the search space was exhausted)."""
    order = sorted(range(len(buffers)), key=lambda i: (-sizes[i], buffers[i].first_op))
    best: list = [None, incumbent]
    nodes = [0]
    placed: list[tuple[int, int] | None] = [None] * len(buffers)  # (offset, end) of the buffers on the path
    path: list[int] = []

    def visit(remaining: list[int], top: int) -> bool:  # False: budget exhausted
        if not remaining:
            best[0], best[1] = {buffers[i].name: placed[i][0] for i in path}, top
            return True
        for i in remaining:
            nodes[0] += 1
            if nodes[0] > budget:
                return False
            offset = _lowest_free(sizes[i], [placed[j] for j in conflicts[i] if placed[j] is not None])
            new_top = max(top, offset + sizes[i])
            if new_top >= best[1]:
                continue
            placed[i] = (offset, offset + sizes[i])
            path.append(i)
            complete = visit([j for j in remaining if j != i], new_top)
            path.pop()
            placed[i] = None
            if not complete:
                return False
            if best[1] <= bound:
                return True
        return True

    exhausted = visit(order, 0)
    return (None if best[0] is None else (best[0], best[1])), exhausted


def tensor_lifetimes(ops: Sequence[tuple[Sequence[str], Sequence[str]]], inputs: Sequence[str],
                     outputs: Sequence[str]) -> dict[str, tuple[int, int]]:
    """(first op, last op) of every tensor an op writes or a graph input, over ops given as (inputs, outputs)
    in execution order; graph inputs start at op 0, graph outputs live to the last op."""
    first: dict[str, int] = {t: 0 for t in inputs}
    last: dict[str, int] = {}
    for i, (op_inputs, op_outputs) in enumerate(ops):
        for t in op_outputs:
            first.setdefault(t, i)
            last.setdefault(t, i)
        for t in op_inputs:
            last[t] = max(last.get(t, i), i)
    end = max(len(ops) - 1, 0)
    for t in outputs:
        last[t] = end
    return {t: (start, last.get(t, start)) for t, start in first.items()}


def activation_buffers(runtime: RuntimeGraph, bytes_per_element: int) -> list[Buffer]:
    """Lifetimes of every activation tensor over the runtime op order."""
    spans = tensor_lifetimes([(op.inputs, op.outputs) for op in runtime.ops], runtime.inputs, runtime.outputs)
    return [Buffer(t, runtime.tensor_elements[t] * bytes_per_element, start, end)
            for t, (start, end) in spans.items() if t in runtime.tensor_elements]


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
