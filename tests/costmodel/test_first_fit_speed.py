"""The arena planner's first fit walks only the buffers alive with the one it places: same plans as the plain
definition (every placed buffer checked, conflicts sorted by offset), for TFLM's greedy order and the exact search."""

import random

from edgekit.costmodel.memory import Buffer, aligned_bytes, plan_greedy, plan_offline

_MEMORY = plan_greedy.__globals__


def _plain_first_fit(order, alignment=16):
    """The definition: each buffer at the lowest offset free of every placed buffer alive at a common op."""
    placed, offsets = [], {}
    for buf in order:
        size = aligned_bytes(buf.size_bytes, alignment)
        offset = 0
        alive = sorted((off, sz) for off, sz, other in placed
                       if buf.first_op <= other.last_op and other.first_op <= buf.last_op)
        for off, sz in alive:
            if offset + size <= off:
                break
            offset = max(offset, off + sz)
        placed.append((offset, size, buf))
        offsets[buf.name] = offset
    return offsets, max((off + sz for off, sz, _ in placed), default=0)


def _random_buffers(rng: random.Random, count: int, ops: int) -> list[Buffer]:
    out = []
    for i in range(count):
        first = rng.randint(0, ops)
        last = first + rng.choice([0, 0, 1, 1, 2, 3, ops // 2])  # mostly short lives, a few long skips
        out.append(Buffer(f"t{i}", rng.choice([1, 16, 17, 40, 100, 256, 640, 1000, 4096]), first, last))
    return out


def test_first_fit_places_every_buffer_where_the_plain_definition_does():
    rng = random.Random(3)
    for trial in range(200):
        buffers = _random_buffers(rng, rng.randint(0, 60), rng.randint(1, 40))
        rng.shuffle(buffers)
        assert _MEMORY["_first_fit"](buffers, 16) == _plain_first_fit(buffers), trial


def test_greedy_plan_is_the_plain_first_fit_and_offline_plans_are_valid_packings():
    rng = random.Random(11)
    for trial in range(60):
        buffers = _random_buffers(rng, rng.randint(2, 30), rng.randint(2, 12))
        greedy = plan_greedy(buffers)
        order = sorted(buffers, key=lambda b: (-b.size_bytes, b.first_op))
        assert (greedy.offsets, greedy.peak_bytes) == _plain_first_fit(order), trial
        plan = plan_offline(buffers, node_budget=300)
        # whatever the search found, its offsets are a valid packing with the peak it reports
        for a in buffers:
            for b in buffers:
                if a is not b and a.first_op <= b.last_op and b.first_op <= a.last_op:
                    oa, ob = plan.offsets[a.name], plan.offsets[b.name]
                    assert oa + aligned_bytes(a.size_bytes) <= ob or ob + aligned_bytes(b.size_bytes) <= oa, trial
        assert plan.peak_bytes == max(plan.offsets[b.name] + aligned_bytes(b.size_bytes) for b in buffers)
        assert plan.peak_bytes <= greedy.peak_bytes
        assert plan_offline(buffers, node_budget=300, greedy=greedy) == plan  # reusing the greedy plan changes nothing


def test_a_buffer_alive_across_a_chain_is_seen_by_every_buffer_of_the_chain():
    # the skip tensor lives over ops 0..9; chain tensors live two ops each and must all sit above it
    skip = Buffer("skip", 64, 0, 9)
    chain = [Buffer(f"c{i}", 32, i, i + 1) for i in range(9)]
    offsets, peak = _MEMORY["_first_fit"]([skip, *chain], 16)
    assert offsets["skip"] == 0
    assert [offsets[f"c{i}"] for i in range(9)] == [64, 96] * 4 + [64]
    assert peak == 128


def test_live_lower_bound_is_the_most_aligned_bytes_alive_at_one_op():
    rng = random.Random(5)
    for trial in range(300):
        buffers = _random_buffers(rng, rng.randint(0, 30), rng.randint(1, 15))
        steps = {b.first_op for b in buffers}
        expected = max((sum(aligned_bytes(b.size_bytes) for b in buffers if b.first_op <= step <= b.last_op)
                        for step in steps), default=0)
        assert _MEMORY["live_lower_bound"](buffers) == expected, trial
