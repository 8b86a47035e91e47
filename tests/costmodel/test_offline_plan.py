"""Offline arena planning: exact placement, peak-minimising operator order, overlapping outputs (pure)."""

import itertools
import random

import numpy as np
import pytest

from edgekit.costmodel.memory import Buffer, aligned_bytes, live_lower_bound, plan_greedy, plan_offline
from edgekit.costmodel.overlap import Overlap, conv_shift_bytes, plan_with_overlaps
from edgekit.costmodel.schedule import Dataflow, DataflowOp, best_order, is_valid_order, live_peak_bytes


def _random_buffers(rng: random.Random, count: int) -> list[Buffer]:
    out = []
    for i in range(count):
        first = rng.randint(0, 5)
        out.append(Buffer(str(i), rng.choice([16, 32, 48, 100, 200, 64]), first, first + rng.randint(0, 3)))
    return out


def _assert_valid(plan, buffers, overlaps=()):
    tied = {(o.input, o.output) for o in overlaps} | {(o.output, o.input) for o in overlaps}
    for a, b in itertools.combinations(buffers, 2):
        if a.first_op <= b.last_op and b.first_op <= a.last_op and (a.name, b.name) not in tied:
            oa, ob = plan.offsets[a.name], plan.offsets[b.name]
            assert oa + aligned_bytes(a.size_bytes) <= ob or ob + aligned_bytes(b.size_bytes) <= oa, (a, b)
    assert plan.peak_bytes == max(plan.offsets[b.name] + aligned_bytes(b.size_bytes) for b in buffers)


def _first_fit_peak(order) -> int:
    return plan_greedy.__globals__["_first_fit"](list(order), 16)[1]


def test_offline_plan_is_optimal_and_never_worse_than_tflm_greedy():
    rng = random.Random(7)
    for _ in range(150):
        buffers = _random_buffers(rng, rng.randint(2, 6))
        plan = plan_offline(buffers)
        _assert_valid(plan, buffers)
        # first-fit over every order reaches every optimal packing, so this is the true optimum
        optimum = min(_first_fit_peak(order) for order in itertools.permutations(buffers))
        assert plan.peak_bytes == optimum and plan.proven_optimal
        assert plan.peak_bytes <= plan_greedy(buffers).peak_bytes


def test_offline_plan_beats_largest_first_where_it_loses():
    # a small instance (found by random search) where placing the largest buffer first is not optimal
    buffers = [Buffer("a", 96, 4, 4), Buffer("b", 16, 3, 5), Buffer("c", 96, 0, 2), Buffer("d", 64, 2, 3)]
    plan = plan_offline(buffers)
    _assert_valid(plan, buffers)
    assert plan.peak_bytes < plan_greedy(buffers).peak_bytes
    assert plan.peak_bytes == min(_first_fit_peak(order) for order in itertools.permutations(buffers))


def test_lower_bound_is_the_most_bytes_alive_at_once():
    buffers = [Buffer("a", 100, 0, 2), Buffer("b", 20, 1, 1), Buffer("c", 40, 2, 3)]
    assert live_lower_bound(buffers) == 112 + 48  # at op 2: a and c (aligned to 16)


def _two_branches(big: int, small: int) -> Dataflow:
    """in -> a1 (big) -> a2 and in -> b1 (big) -> b2, out = a2 + b2; stored interleaved (a1, b1, a2, b2)."""
    ops = (DataflowOp((0,), (1,)), DataflowOp((0,), (2,)), DataflowOp((1,), (3,)), DataflowOp((2,), (4,)),
           DataflowOp((3, 4), (5,)))
    return Dataflow(ops, {0: small, 1: big, 2: big, 3: small, 4: small, 5: small}, (0,), (5,))


def test_best_order_finishes_one_branch_before_starting_the_other():
    graph = _two_branches(big=4096, small=256)
    schedule = best_order(graph)
    assert schedule.exact and is_valid_order(graph, schedule.order)
    assert live_peak_bytes(graph, (0, 1, 2, 3, 4)) == 2 * 4096 + 256  # both big tensors alive at op 1
    assert schedule.peak_live_bytes == 4096 + 2 * 256  # never two big tensors at once
    position = {op: p for p, op in enumerate(schedule.order)}
    assert abs(position[0] - position[2]) == 1 or abs(position[1] - position[3]) == 1


def test_best_order_matches_brute_force_on_random_dags():
    rng = random.Random(3)
    for _ in range(80):
        n = rng.randint(2, 7)
        ops, sizes, tensor = [], {0: rng.choice([16, 64])}, 1
        for _ in range(n):
            available = [0] + [t for op in ops for t in op.outputs]
            inputs = tuple(rng.sample(available, min(len(available), rng.randint(1, 2))))
            ops.append(DataflowOp(inputs, (tensor,)))
            sizes[tensor] = rng.choice([16, 48, 64, 128, 512])
            tensor += 1
        graph = Dataflow(tuple(ops), sizes, (0,), (tensor - 1,))
        valid = [p for p in itertools.permutations(range(n)) if is_valid_order(graph, p)]
        schedule = best_order(graph)
        assert schedule.peak_live_bytes == min(live_peak_bytes(graph, p) for p in valid)
        fallback = best_order(graph, state_budget=0)  # the greedy fallback is still a valid order
        assert not fallback.exact and is_valid_order(graph, fallback.order)


def _raster_conv_clobbers(in_rows, row_in, out_rows, row_out, stride, pad_top, kernel, shift) -> bool:
    """Simulate a raster-order kernel on one byte array: does an output write hit an input byte read later?"""
    memory_owner = {}  # absolute byte -> ("in", row) still unread
    base_in, base_out = shift, 0
    for r in range(in_rows):
        for b in range(row_in):
            memory_owner[base_in + r * row_in + b] = r
    for r in range(out_rows):
        first, last = r * stride - pad_top, r * stride - pad_top + kernel - 1
        for read in range(max(first, 0), min(last, in_rows - 1) + 1):
            if any(memory_owner.get(base_in + read * row_in + b) != read for b in range(row_in)):
                return True  # an input byte this row needs was overwritten
        for b in range(row_out):
            memory_owner[base_out + r * row_out + b] = None
    return False


@pytest.mark.parametrize("geometry", [
    (16, 64, 16, 64, 1, 1, 3),    # 3x3 same, stride 1
    (16, 64, 8, 128, 2, 0, 3),    # 3x3 stride 2, channels double
    (17, 48, 9, 48, 2, 1, 3),     # odd size
    (16, 64, 16, 32, 1, 0, 1),    # 1x1 projection
])
def test_conv_shift_is_safe_and_tight(geometry):
    in_rows, row_in, out_rows, row_out, stride, pad_top, kernel = geometry
    shift = conv_shift_bytes(in_rows, row_in, out_rows, row_out, stride, pad_top)
    assert not _raster_conv_clobbers(in_rows, row_in, out_rows, row_out, stride, pad_top, kernel, shift)
    assert shift < out_rows * row_out  # a real overlap, not two disjoint buffers
    smaller = shift - 16 - row_out  # one alignment step and a row less: an unread input row is overwritten
    if smaller >= 0:
        assert _raster_conv_clobbers(in_rows, row_in, out_rows, row_out, stride, pad_top, kernel, smaller)


def test_overlap_plan_keeps_the_fixed_distance_and_separates_everything_else():
    buffers = [Buffer("x", 4096, 0, 1), Buffer("skip", 4096, 0, 3), Buffer("y", 4096, 1, 2), Buffer("z", 4096, 2, 3)]
    overlaps = [Overlap("x", "y", 1024), Overlap("y", "z", 1024)]
    plan = plan_with_overlaps(buffers, overlaps)
    assert plan.offsets["y"] == plan.offsets["x"] - 1024 and plan.offsets["z"] == plan.offsets["y"] - 1024
    _assert_valid(plan, buffers, overlaps)
    assert plan.peak_bytes < plan_offline(buffers).peak_bytes


def test_overlap_plan_without_overlaps_is_as_good_as_greedy():
    rng = random.Random(11)
    for _ in range(60):
        buffers = _random_buffers(rng, rng.randint(2, 7))
        plan = plan_with_overlaps(buffers)
        _assert_valid(plan, buffers)
        assert plan.peak_bytes <= plan_greedy(buffers).peak_bytes
        assert np.isfinite(plan.peak_bytes)


def test_arena_plan_from_an_ir_residual_block():
    """A hand-built IR graph: the conv chain overlaps its dying inputs, the skip tensor never is overlapped."""
    from edgekit.costmodel.arena_plan import predict_planned_arena
    from edgekit.ir.graph import Graph, Node, Tensor, Weight

    def conv(name, source, out, filters, kernel=3):
        return Node(name, "Conv2D", (source,), (out,), {"kernel_size": (kernel, kernel), "strides": (1, 1),
                    "padding": "same", "dilation_rate": (1, 1), "activation": "relu", "filters": filters},
                    (Weight(f"{name}/k", (kernel, kernel, 8, filters), "kernel"), Weight(f"{name}/b", (filters,),
                                                                                         "bias")))

    tensors = [Tensor(t, (16, 16, 8)) for t in ("in", "x", "y1", "y2", "sum")]
    nodes = [conv("stem", "in", "x", 8), conv("c1", "x", "y1", 8), conv("c2", "y1", "y2", 8),
             Node("add", "Add", ("x", "y2"), ("sum",))]
    graph = Graph.build(tensors, nodes, ("in",), ("sum",))
    plan = predict_planned_arena(graph)
    assert plan.tflm_bytes == 3 * 2048  # x, y1 and y2 alive during c2
    row = 16 * 8
    assert plan.peak_bytes == 2 * 2048 + aligned_bytes(2 * row)  # y2 starts two rows below y1 and grows into it
    pairs = {(o.input, o.output) for o in plan.overlaps}  # tensors by index: in, x, y1, y2, sum
    assert ("2", "3") in pairs and ("1", "2") not in pairs  # y2 over y1; y1 never over x, which the add reads
    without = predict_planned_arena(graph, overlap=False)
    assert without.peak_bytes == without.tflm_bytes  # TFLM's greedy plan is already optimal here
