"""Arena plans where an op's output overlaps the input it consumes last (pure).

TFLite Micro's kernels write their output in raster order (row by row of the output feature map) and
read, for output row r, input rows from r * stride - pad_top on. Once an input dies at an op, the rows
above the ones still to be read are free, so the output can start `shift_bytes` below the input and
grow into it: a 3x3 stride-1 convolution over 32x32x16 needs 16 KB + about two rows for input and
output instead of 32 KB. Elementwise ops (ADD, MUL, activations with equal input and output element
sizes) can write over the input in place (shift 0). TFLM supports this only through an offline plan;
its online planner never overlaps buffers alive at the same op.

    >>> conv_shift_bytes(in_rows=32, in_row_bytes=512, out_rows=32, out_row_bytes=512, stride=1, pad_top=1)
    1024
    >>> a, b = Buffer("a", 4096, 0, 1), Buffer("b", 4096, 1, 2)
    >>> plan_with_overlaps([a, b], [Overlap("a", "b", 1024)]).peak_bytes
    5120

The rule relies on the kernels' loop order (output rows outer), which TFLM's reference kernels and
CMSIS-NN's convolution, depthwise and pooling kernels follow; a plan is checked by running the model
in TFLM and comparing outputs bit for bit (edgekit.export.memory_plan).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.costmodel.memory import TFLM_ALIGNMENT, Buffer, MemoryPlan, aligned_bytes

SEARCH_NODE_BUDGET = 4_000


@dataclass(frozen=True)
class Overlap:
    """Place `output` at offset(input) - shift_bytes (it may grow into `input`, which dies at that op)."""

    input: str
    output: str
    shift_bytes: int


def conv_shift_bytes(in_rows: int, in_row_bytes: int, out_rows: int, out_row_bytes: int,
                     stride: int, pad_top: int, alignment: int = TFLM_ALIGNMENT) -> int:
    """Smallest aligned shift so no output row overwrites an input row still to be read.

    Output row r (written whole before row r + 1 is computed) must end at or below the first input
    row any output row >= r reads: r * stride - pad_top.
    """
    shift = 0
    for r in range(out_rows):
        first_needed = min(max(0, r * stride - pad_top), in_rows)
        shift = max(shift, (r + 1) * out_row_bytes - first_needed * in_row_bytes)
    return aligned_bytes(shift, alignment)


def elementwise_shift_bytes(elements: int, in_element_bytes: int, out_element_bytes: int,
                            alignment: int = TFLM_ALIGNMENT) -> int:
    """Element i is read before it is written: the output may start where the input starts if not wider."""
    return aligned_bytes(max(0, elements * (out_element_bytes - in_element_bytes)), alignment)


# ----------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class _Piece:
    rel: int          # offset from the item's base
    size: int         # aligned
    buffer: Buffer


def _items(buffers: list[Buffer], overlaps, alignment: int) -> list[tuple[_Piece, ...]]:
    """Chains of buffers tied by overlaps, each as pieces at fixed offsets from a common base."""
    by_name = {b.name: b for b in buffers}
    below: dict[str, Overlap] = {}
    for o in overlaps:  # one input per output and one output per input: items are chains
        if o.input in by_name and o.output in by_name and o.input not in below and \
                all(other.output != o.output for other in below.values()):
            below[o.input] = o
    has_parent = {o.output for o in below.values()}
    items = []
    for start in (b for b in buffers if b.name not in has_parent):
        rels, name, rel = [], start.name, 0
        while True:
            rels.append((rel, by_name[name]))
            link = below.get(name)
            if link is None:
                break
            name, rel = link.output, rel - link.shift_bytes
        low = min(r for r, _ in rels)
        items.append(tuple(_Piece(r - low, aligned_bytes(b.size_bytes, alignment), b) for r, b in rels))
    return items


def _live(a: Buffer, b: Buffer) -> bool:
    return a.first_op <= b.last_op and b.first_op <= a.last_op


def _lowest_base(item: tuple[_Piece, ...], placed: list[tuple[int, int, Buffer]]) -> int:
    conflicts = [[(off, sz) for off, sz, other in placed if _live(piece.buffer, other)] for piece in item]
    candidates = sorted({0} | {off + sz - piece.rel for piece, spans in zip(item, conflicts)
                               for off, sz in spans if off + sz - piece.rel > 0})
    for base in candidates:
        if all(base + piece.rel + piece.size <= off or off + sz <= base + piece.rel
               for piece, spans in zip(item, conflicts) for off, sz in spans):
            return base
    raise AssertionError("unreachable: the highest candidate is always free")  # pragma: no cover


def _place(items, order) -> tuple[dict[str, int], int]:
    placed: list[tuple[int, int, Buffer]] = []
    for index in order:
        base = _lowest_base(items[index], placed)
        placed += [(base + p.rel, p.size, p.buffer) for p in items[index]]
    return {b.name: off for off, _, b in placed}, max((off + sz for off, sz, _ in placed), default=0)


def lower_bound(items) -> int:
    """Most bytes alive at one op, counting each item's live pieces as one span."""
    steps = {p.buffer.first_op for item in items for p in item}
    best = 0
    for step in steps:
        total = 0
        for item in items:
            live = [p for p in item if p.buffer.first_op <= step <= p.buffer.last_op]
            if live:
                total += max(p.rel + p.size for p in live) - min(p.rel for p in live)
        best = max(best, total)
    return best


def _span(item) -> int:
    return max(p.rel + p.size for p in item)


_KEYS = (
    lambda it: (-_span(it), min(p.buffer.first_op for p in it)),
    lambda it: (min(p.buffer.first_op for p in it), -_span(it)),
    lambda it: (-(max(p.buffer.last_op for p in it) - min(p.buffer.first_op for p in it)), -_span(it)),
    lambda it: (-max(p.buffer.last_op for p in it), -_span(it)),
)


def plan_with_overlaps(buffers: list[Buffer], overlaps=(), alignment: int = TFLM_ALIGNMENT,
                       node_budget: int = SEARCH_NODE_BUDGET) -> MemoryPlan:
    """Offsets for buffers where each Overlap fixes an output's offset relative to its input's.

    Heuristic orders with lowest-base placement, then a bounded branch and bound over item orders.
    `proven_optimal` only when the live-bytes lower bound is reached.
    """
    items = _items(list(buffers), overlaps, alignment)
    bound = lower_bound(items)
    best = None
    for key in _KEYS:
        order = sorted(range(len(items)), key=lambda i: key(items[i]))
        offsets, peak = _place(items, order)
        if best is None or peak < best[1]:
            best = (offsets, peak, order)
        if peak <= bound:
            break
    if best[1] > bound:
        best = _search(items, best, bound, node_budget)
    return MemoryPlan(tuple(buffers), best[0], best[1], proven_optimal=best[1] <= bound)


def _search(items, incumbent, bound: int, budget: int):
    best = list(incumbent)
    nodes = [0]
    placed: list[tuple[int, int, Buffer]] = []

    def visit(remaining: list[int], top: int, chosen: list[int]) -> bool:
        if not remaining:
            best[:] = [{b.name: off for off, _, b in placed}, top, list(chosen)]
            return best[1] > bound
        for i in remaining:
            nodes[0] += 1
            if nodes[0] > budget:
                return False
            base = _lowest_base(items[i], placed)
            new_top = max(top, base + _span(items[i]))
            if new_top >= best[1]:
                continue
            placed.extend((base + p.rel, p.size, p.buffer) for p in items[i])
            chosen.append(i)
            go_on = visit([j for j in remaining if j != i], new_top, chosen)
            chosen.pop()
            del placed[len(placed) - len(items[i]):]
            if not go_on:
                return False
        return True

    visit(list(incumbent[2]), 0, [])
    return tuple(best)
