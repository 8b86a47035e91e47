"""Patch regions, overlap MACs and the patched stage's dataflow, computed by hand (pure, no TF)."""

import pytest

from edgekit.costmodel.patches import (
    ChainOp,
    Region,
    grid_regions,
    input_region,
    plan_patches,
    predicted_stage_peak_bytes,
    predicted_tail_growth_bytes,
    same_pad_before,
    stage_dataflow,
    stage_live_peak_bytes,
    unpatched_stage_peak_bytes,
)

# 8x8x3 -> conv 3x3 stride 2 SAME (4 channels) -> 4x4x4 -> depthwise 3x3 stride 1 SAME -> 4x4x4
CONV = ChainOp("CONV_2D", (8, 8), (4, 4), kernel=(3, 3), stride=(2, 2), pad_before=(0, 0),
               in_channels=3, out_channels=4, macs_per_pixel=9 * 3 * 4)
DEPTHWISE = ChainOp("DEPTHWISE_CONV_2D", (4, 4), (4, 4), kernel=(3, 3), pad_before=(1, 1),
                    in_channels=4, out_channels=4, macs_per_pixel=9 * 4)


def test_same_padding_puts_the_odd_row_after():
    assert same_pad_before(8, 4, 3, 2) == 0    # total 1: none before, one after
    assert same_pad_before(4, 4, 3, 1) == 1
    assert same_pad_before(96, 48, 3, 2) == 0
    assert same_pad_before(10, 10, 3, 1, dilation=2) == 2


def test_input_region_clips_at_the_border_and_reports_the_padding():
    # depthwise output rows 0-1: reads rows -1..2 -> rows 0..2 plus one zero row above
    assert input_region(DEPTHWISE, Region(0, 2, 0, 4)) == (Region(0, 3, 0, 4), (1, 0, 1, 1))
    assert input_region(DEPTHWISE, Region(2, 4, 0, 4)) == (Region(1, 4, 0, 4), (0, 1, 1, 1))
    # conv stride 2, output rows 1-3 read input rows 2..8: one zero row below the image
    assert input_region(CONV, Region(1, 4, 0, 4)) == (Region(2, 8, 0, 8), (0, 1, 0, 1))
    pad = ChainOp("PAD", (7, 7), (8, 8))   # ZeroPadding2D(((0, 1), (0, 1)))
    assert input_region(pad, Region(4, 8, 0, 4)) == (Region(4, 7, 0, 4), (0, 1, 0, 0))


def test_grid_covers_the_output_once():
    cells = grid_regions((6, 5), (4, 2))
    assert len(cells) == 8
    covered = [(r, c) for cell in cells for r in range(cell.top, cell.bottom) for c in range(cell.left, cell.right)]
    assert sorted(covered) == [(r, c) for r in range(6) for c in range(5)]


def test_plan_regions_and_overlap_macs_by_hand():
    plan = plan_patches((CONV, DEPTHWISE), (2, 1))
    first, second = plan.patches
    assert [s.out_region for s in first] == [Region(0, 3, 0, 4), Region(0, 2, 0, 4)]
    assert first[0].in_region == Region(0, 7, 0, 8) and first[0].padding == (0, 0, 0, 1)
    assert [s.out_region for s in second] == [Region(1, 4, 0, 4), Region(2, 4, 0, 4)]
    assert second[0].in_region == Region(2, 8, 0, 8) and second[0].padding == (0, 1, 0, 1)
    # whole: 16 conv pixels x 108 + 16 depthwise pixels x 36; patched: 12 + 12 conv pixels (row 1 and 2 twice)
    assert plan.stage_macs == 16 * 108 + 16 * 36
    assert plan.patched_macs == 24 * 108 + 16 * 36
    assert plan.extra_macs == 8 * 108


def test_stage_dataflow_and_peak_by_hand():
    plan = plan_patches((CONV, DEPTHWISE), (2, 1))
    flow = stage_dataflow(plan)
    # input; per patch: slice, pad (conv's right column), conv out, pad (depthwise), depthwise out; concat
    assert len(flow.ops) == 2 * 5 + 1
    sizes = flow.tensor_bytes
    assert sizes[0] == 8 * 8 * 3
    assert [sizes[t] for t in range(1, 6)] == [7 * 8 * 3, 7 * 9 * 3, 3 * 4 * 4, 4 * 6 * 4, 2 * 4 * 4]
    assert sizes[len(sizes) - 1] == 4 * 4 * 4
    # the unpatched stage: the conv's input and output, 192 + 64 bytes
    assert unpatched_stage_peak_bytes((CONV, DEPTHWISE)) == 192 + 64
    # patched peak: the input (192) stays alive until the second SLICE; aligned to 16 bytes each
    assert predicted_stage_peak_bytes(plan) == 192 + 176 + 192  # input + slice + padded slice at the first PAD


def test_a_broken_chain_is_refused():
    with pytest.raises(ValueError, match="not a chain"):
        plan_patches((DEPTHWISE, CONV), (2, 1))


def test_tail_growth_counts_every_copied_op_and_tensor():
    plan = plan_patches((CONV, DEPTHWISE), (2, 1))
    # 9 ops more (2 SLICE, 4 PAD, 2 op copies... minus the 2 originals, + CONCATENATION), 13 tensors more
    # (10 patch tensors + concat output - 2 originals + SLICE begin / size per patch), and one more copy of
    # each convolution's op data (96 B) and per-channel multipliers / shifts (4 channels x 8 B)
    assert predicted_tail_growth_bytes(plan) == 9 * 96 + 13 * 24 + 2 * (96 + 4 * 8)
    assert predicted_tail_growth_bytes(plan, peel=True) == predicted_tail_growth_bytes(plan) + 96 + 3 * 24


def test_live_peak_counts_the_peeled_input_in_place():
    plan = plan_patches((CONV, DEPTHWISE), (2, 1))
    # first PAD: the input (192), patch 0's slice (7x8x3) and its padded copy (7x9x3) alive
    assert stage_live_peak_bytes(plan) == 192 + 168 + 189
    # bottom up: after patch 1's slice (6x8x3), the rows patch 0 reads (7x8x3) are sliced in place and the
    # input dies; the peak is then patch 1's PAD: its slice, the padded copy (7x9x3) and those rows
    assert stage_live_peak_bytes(plan, peel=True) == 144 + 189 + 168
