"""Patch-based execution of a model's first stage: regions, overlap MACs and the predicted peak (pure).

The first ops of a CNN (a chain of convolutions on large feature maps) set the arena peak. Run per
spatial patch of the stage's output, each op needs only the region of its input that the patch's
receptive field covers, so only one patch's intermediates are alive at a time (MCUNetV2, Lin et al.
2021). The price is the overlap: neighbouring patches recompute the halo rows and columns.

    >>> conv = ChainOp("CONV_2D", (8, 8), (4, 4), kernel=(3, 3), stride=(2, 2), pad_before=(0, 0),
    ...                macs_per_pixel=27 * 4)
    >>> input_region(conv, Region(0, 2, 0, 4))    # rows 0-1 of the output read input rows 0..4
    (Region(top=0, bottom=5, left=0, right=8), (0, 0, 0, 1))

Coordinates are (row, column) of one sample (batch 1); a `Region` is half-open. An op is described by
its geometry only: a convolution-like window (CONV_2D, DEPTHWISE_CONV_2D) with kernel, stride,
dilation and the zero padding it adds before the image (SAME padding's top / left amount), an explicit
PAD (kernel 1, its own amounts), or an element-wise op (kernel 1). `input_region` returns the clipped
input region and how many padding rows / columns the patch needs on each side: only patches touching
the image border pad, so a patch runs its op with VALID padding after an explicit PAD.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from edgekit.costmodel.arena_plan import OpGeometry, plan_arena
from edgekit.costmodel.schedule import Dataflow, DataflowOp, lifetimes

WINDOW_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D"})
PAD_OPS = frozenset({"PAD", "PADV2"})
POINTWISE_OPS = frozenset({"RELU", "RELU6", "RELU_N1_TO_1", "LEAKY_RELU", "HARD_SWISH", "LOGISTIC", "TANH"})


@dataclass(frozen=True)
class Region:
    """Rows [top, bottom) and columns [left, right) of a feature map."""

    top: int
    bottom: int
    left: int
    right: int

    @property
    def pixels(self) -> int:
        return max(0, self.bottom - self.top) * max(0, self.right - self.left)

    @property
    def shape(self) -> tuple[int, int]:
        return self.bottom - self.top, self.right - self.left


@dataclass(frozen=True)
class ChainOp:
    """One op of the stage: its kind, input / output size (rows, columns) and window."""

    kind: str
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    pad_before: tuple[int, int] = (0, 0)   # zero rows above / columns left of the image the op reads
    in_channels: int = 1
    out_channels: int = 1
    macs_per_pixel: int = 0                # per output pixel (all output channels)


def same_pad_before(in_size: int, out_size: int, kernel: int, stride: int, dilation: int = 1) -> int:
    """SAME padding's leading amount as TFLite computes it (the odd extra row goes after)."""
    return max((out_size - 1) * stride + (kernel - 1) * dilation + 1 - in_size, 0) // 2


def _axis_range(start: int, stop: int, size: int, kernel: int, stride: int, dilation: int, pad: int):
    first = start * stride - pad
    last = (stop - 1) * stride + (kernel - 1) * dilation + 1 - pad
    return max(first, 0), min(last, size), max(0, -first), max(0, last - size)


def input_region(op: ChainOp, out: Region) -> tuple[Region, tuple[int, int, int, int]]:
    """The input region an output region reads, and the padding (top, bottom, left, right) it needs."""
    top, bottom, pad_top, pad_bottom = _axis_range(out.top, out.bottom, op.in_hw[0], op.kernel[0], op.stride[0],
                                                   op.dilation[0], op.pad_before[0])
    left, right, pad_left, pad_right = _axis_range(out.left, out.right, op.in_hw[1], op.kernel[1], op.stride[1],
                                                   op.dilation[1], op.pad_before[1])
    return Region(top, bottom, left, right), (pad_top, pad_bottom, pad_left, pad_right)


def grid_regions(hw: tuple[int, int], grid: tuple[int, int]) -> list[Region]:
    """The stage output cut into grid (rows, columns) patches, row-major, sizes differing by at most one."""
    rows = [round(i * hw[0] / grid[0]) for i in range(grid[0] + 1)]
    cols = [round(j * hw[1] / grid[1]) for j in range(grid[1] + 1)]
    return [Region(rows[i], rows[i + 1], cols[j], cols[j + 1]) for i in range(grid[0]) for j in range(grid[1])]


@dataclass(frozen=True)
class PatchStep:
    """One op of one patch: the regions it reads and writes and the padding it adds first."""

    op: int                                   # index in the chain
    in_region: Region
    out_region: Region
    padding: tuple[int, int, int, int]        # (top, bottom, left, right) zero-point rows / columns


@dataclass(frozen=True)
class PatchPlan:
    """The stage run per patch: each patch's steps, and the MACs the overlap costs."""

    chain: tuple[ChainOp, ...]
    grid: tuple[int, int]
    patches: tuple[tuple[PatchStep, ...], ...]
    stage_macs: int          # the stage run whole
    patched_macs: int        # summed over the patches

    @property
    def extra_macs(self) -> int:
        return self.patched_macs - self.stage_macs


def plan_patches(chain: tuple[ChainOp, ...], grid: tuple[int, int]) -> PatchPlan:
    """Back-propagate every patch of the last op's output through the chain."""
    if not chain:
        raise ValueError("an empty stage has no patches")
    for before, after in itertools.pairwise(chain):
        if before.out_hw != after.in_hw:
            raise ValueError(f"{before.kind} writes {before.out_hw}, {after.kind} reads {after.in_hw}: not a chain")
    patches = []
    for cell in grid_regions(chain[-1].out_hw, grid):
        steps, out = [], cell
        for index in range(len(chain) - 1, -1, -1):
            region, padding = input_region(chain[index], out)
            steps.append(PatchStep(index, region, out, padding))
            out = region
        patches.append(tuple(reversed(steps)))
    stage = sum(op.out_hw[0] * op.out_hw[1] * op.macs_per_pixel for op in chain)
    patched = sum(step.out_region.pixels * chain[step.op].macs_per_pixel for steps in patches for step in steps)
    return PatchPlan(tuple(chain), grid, tuple(patches), stage, patched)


def stage_dataflow(plan: PatchPlan, element_bytes: int = 1, peel: bool = False) -> Dataflow:
    """The patched stage as the exporter emits it (SLICE, PAD where needed, op, ..., CONCATENATION per row
    of patches when there are several columns, then along the rows) with activation bytes per tensor;
    peel: rows bottom up with the input's remaining rows sliced off after each row (export.patches)."""
    return _stage(plan, element_bytes, peel)[0]


def _stage(plan: PatchPlan, element_bytes: int, peel: bool) -> tuple[Dataflow, dict[int, OpGeometry]]:
    """The stage's dataflow, and per op the geometry of its streamed input (what overlaps may use)."""
    chain, sizes, ops, shapes, geometry = plan.chain, {}, [], {}, {}

    def tensor(height: int, width: int, channels: int) -> int:
        sizes[len(sizes)] = height * width * channels * element_bytes
        shapes[len(sizes) - 1] = (height, width, channels)
        return len(sizes) - 1

    def emit(source: int, out: int, kind: str, **window) -> None:
        geometry[len(ops)] = OpGeometry(kind, shapes[source], shapes[out], element_bytes, element_bytes, **window)
        ops.append(DataflowOp((source,), (out,)))

    h, w = chain[0].in_hw
    rest = stage_in = tensor(h, w, chain[0].in_channels)
    rows, cols = plan.grid
    pieces = [0] * len(plan.patches)
    for i in (range(rows - 1, -1, -1) if peel else range(rows)):
        for j in range(cols):
            steps = plan.patches[i * cols + j]
            current = tensor(*steps[0].in_region.shape, chain[0].in_channels)
            emit(rest, current, "SLICE")
            if peel and j == cols - 1 and i > 0:
                bottom = plan.patches[(i - 1) * cols][0].in_region.bottom
                source, rest = rest, tensor(bottom, w, chain[0].in_channels)
                emit(source, rest, "SLICE", slice_offset_bytes=0)
            for step in steps:
                op = chain[step.op]
                if any(step.padding):
                    t, b, lft, r = step.padding
                    padded = tensor(step.in_region.shape[0] + t + b, step.in_region.shape[1] + lft + r,
                                    op.in_channels)
                    emit(current, padded, "PAD", pad_top=t)
                    current = padded
                if op.kind not in PAD_OPS:
                    out = tensor(*step.out_region.shape, op.out_channels)
                    emit(current, out, op.kind, kernel=op.kernel[0], stride=op.stride[0], dilation=op.dilation[0])
                    current = out
            pieces[i * cols + j] = current
    out_h, out_w = chain[-1].out_hw
    channels = chain[-1].out_channels
    if cols > 1:
        row_outputs = []
        for i in range(rows):
            cell = plan.patches[i * cols][-1].out_region
            out = tensor(cell.shape[0], out_w, channels)
            ops.append(DataflowOp(tuple(pieces[i * cols:(i + 1) * cols]), (out,)))
            row_outputs.append(out)
        pieces = row_outputs
    if len(pieces) > 1:
        out = tensor(out_h, out_w, channels)
        ops.append(DataflowOp(tuple(pieces), (out,)))
    flow = Dataflow(tuple(ops), sizes, (stage_in,), (pieces[0] if len(pieces) == 1 else len(sizes) - 1,))
    return flow, geometry


def predicted_stage_peak_bytes(plan: PatchPlan, element_bytes: int = 1, peel: bool = False,
                               overlap: bool = False) -> int:
    """Peak activation bytes of the patched stage in emitted order with an offline plan; overlap: outputs
    may overlap the input dying at their op (convolutions, PAD, the peeled input in place). peel without
    overlap: only the peeled input is placed in place (fast enough to rank dozens of candidates).

    The stage input counts: it is alive until the last patch's SLICE (the last peel). The model after the
    stage is not included; the arena peak is the larger of this and the rest's.
    """
    flow, geometry = _stage(plan, element_bytes, peel)
    shapes = geometry if overlap else {op: g for op, g in geometry.items() if g.slice_offset_bytes is not None}
    return plan_arena(flow, (lambda op, source: shapes.get(op)) if shapes else None, reorder=False,
                      offline=True).peak_bytes


def stage_live_peak_bytes(plan: PatchPlan, element_bytes: int = 1, peel: bool = False) -> int:
    """Most activation bytes alive at one op of the patched stage (the bound an offline plan approaches);
    a peeled input's remaining rows count once, being in place. Cheap enough to rank every candidate."""
    flow, geometry = _stage(plan, element_bytes, peel)
    buffers = lifetimes(flow, tuple(range(len(flow.ops))))
    in_place = {flow.ops[op].outputs[0] for op, g in geometry.items() if g.slice_offset_bytes is not None}
    peak = 0
    for step in range(len(flow.ops) + 1):
        peak = max(peak, sum(b.size_bytes for b in buffers if b.first_op <= step <= b.last_op
                             and not (int(b.name) in in_place and b.first_op == step)))
    return peak


def unpatched_stage_peak_bytes(chain: tuple[ChainOp, ...], element_bytes: int = 1) -> int:
    """Largest input + output of one op of the stage run whole (the live-bytes peak without overlaps)."""
    return max((math.prod(op.in_hw) * op.in_channels + math.prod(op.out_hw) * op.out_channels) * element_bytes
               for op in chain)


# TFLM's tail per extra op and tensor, fitted to its recording allocator on a 64-bit host (a 32-bit MCU
# build needs less): a node struct and its index arrays per op, an eval-tensor struct per tensor, and for
# convolutions the kernel's op data plus per-channel output multipliers and shifts (int32 each). Within
# about 10 % of the measured growth on MobileNetV1 stages (2x2 to 4x4 patches); used to rank candidates.
TAIL_NODE_BYTES = 96
TAIL_TENSOR_BYTES = 24
TAIL_CONV_DATA_BYTES = 96
TAIL_CHANNEL_BYTES = 8


def predicted_tail_growth_bytes(plan: PatchPlan, peel: bool = False) -> int:
    """TFLM tail bytes the patched stage adds to the unpatched one (copies of each op, SLICE, PAD, CONCAT;
    peel: one more SLICE and its output and begin / size vectors per row of patches but the last)."""
    flow = stage_dataflow(plan)
    peels = plan.grid[0] - 1 if peel else 0
    extra_ops = len(flow.ops) - len(plan.chain) + peels
    extra_tensors = len(flow.tensor_bytes) - 1 - len(plan.chain) + len(plan.patches) * 2 + 3 * peels
    per_patch = sum(TAIL_CONV_DATA_BYTES + TAIL_CHANNEL_BYTES * op.out_channels
                    for op in plan.chain if op.kind in WINDOW_OPS)
    return (extra_ops * TAIL_NODE_BYTES + extra_tensors * TAIL_TENSOR_BYTES
            + (len(plan.patches) - 1) * per_patch)
