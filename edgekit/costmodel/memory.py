"""Peak activation memory: plan the buffers of the lowered graph (`edgekit.ir.lowering`) (pure).

Two steps, each testable alone:
1. `edgekit.ir.lowering.lower(graph)` predicts the converted TFLite graph: BatchNormalization folded into the conv before
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
