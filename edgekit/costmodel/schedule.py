"""Operator order that minimises peak activation memory, and TFLM's buffer lifetimes for an order (pure).

TFLite Micro runs operators in the order the flatbuffer stores them and keeps a tensor alive from
the op that writes it (graph inputs: from the start) to the last op that reads it (graph outputs: to
the end). On branched graphs (residual adds, concats, squeeze-excite) the converter's order can keep a
large branch output alive while the other branch runs; another valid order may not.

    >>> g = Dataflow(ops=(DataflowOp((0,), (1,)), DataflowOp((0,), (2,)), DataflowOp((1, 2), (3,))),
    ...              tensor_bytes={0: 16, 1: 16, 2: 16, 3: 16}, inputs=(0,), outputs=(3,))
    >>> live_peak_bytes(g, (0, 1, 2))
    48

`best_order` searches the orders exactly (dynamic programming over the sets of ops already run, which
for chain-like graphs with a few branches are few) and falls back to a greedy order when the sets
exceed a budget. The objective is the live-bytes peak, the lower bound `memory.plan_offline` then
tries to reach with offsets.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.costmodel.memory import TFLM_ALIGNMENT, Buffer, aligned_bytes, live_lower_bound

STATE_BUDGET = 20_000  # about a second of search in Python; chain-like CNNs need far fewer


@dataclass(frozen=True)
class DataflowOp:
    """One operator: the activation tensors it reads and writes (constants left out)."""

    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class Dataflow:
    """The activation dataflow of one subgraph, tensors named by index."""

    ops: tuple[DataflowOp, ...]
    tensor_bytes: dict[int, int]  # activation tensors only; others are ignored wherever they appear
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class Schedule:
    order: tuple[int, ...]     # op indices in execution order
    peak_live_bytes: int       # most (aligned) bytes alive at one op under this order
    exact: bool                # True: no valid order has a lower live peak


def lifetimes(graph: Dataflow, order: tuple[int, ...]) -> list[Buffer]:
    """TFLM's lifetimes under an order: position p of the order is scope p + 1, graph inputs start at 0."""
    first: dict[int, int] = {t: 0 for t in graph.inputs if t in graph.tensor_bytes}
    last: dict[int, int] = dict(first)
    for position, op_index in enumerate(order, start=1):
        op = graph.ops[op_index]
        for t in op.outputs:
            if t in graph.tensor_bytes:
                first.setdefault(t, position)
                last[t] = max(last.get(t, position), position)
        for t in op.inputs:
            if t in graph.tensor_bytes and t in first:
                last[t] = max(last[t], position)
    end = len(order)
    for t in graph.outputs:
        if t in first:
            last[t] = end
    return [Buffer(str(t), graph.tensor_bytes[t], first[t], last[t]) for t in sorted(first)]


def live_peak_bytes(graph: Dataflow, order: tuple[int, ...], alignment: int = TFLM_ALIGNMENT) -> int:
    return live_lower_bound(lifetimes(graph, order), alignment)


def is_valid_order(graph: Dataflow, order: tuple[int, ...]) -> bool:
    """Every op once, each after the producers of what it reads."""
    if sorted(order) != list(range(len(graph.ops))):
        return False
    producer = _producers(graph)
    position = {op: p for p, op in enumerate(order)}
    return all(position[producer[t]] < position[i] for i, op in enumerate(graph.ops)
               for t in op.inputs if t in producer)


def best_order(graph: Dataflow, alignment: int = TFLM_ALIGNMENT, state_budget: int = STATE_BUDGET) -> Schedule:
    """The order with the lowest live-bytes peak (exact unless the search exceeds `state_budget` states)."""
    model = _Model(graph, alignment)
    identity = tuple(range(len(graph.ops)))
    found = model.exact(state_budget)
    if found is not None:
        return Schedule(found, live_peak_bytes(graph, found, alignment), True)
    candidates = [identity, model.greedy()]
    scored = [(live_peak_bytes(graph, order, alignment), order) for order in candidates]
    peak, order = min(scored, key=lambda item: item[0])
    return Schedule(order, peak, False)


def _producers(graph: Dataflow) -> dict[int, int]:
    return {t: i for i, op in enumerate(graph.ops) for t in op.outputs}


class _Model:
    """Bitmask bookkeeping shared by the exact search and the greedy fallback."""

    def __init__(self, graph: Dataflow, alignment: int) -> None:
        n = len(graph.ops)
        self.n = n
        size = {t: aligned_bytes(b, alignment) for t, b in graph.tensor_bytes.items()}
        producer = _producers(graph)
        consumers: dict[int, int] = {}
        for i, op in enumerate(graph.ops):
            for t in set(op.inputs):
                consumers[t] = consumers.get(t, 0) | (1 << i)
        outputs = set(graph.outputs)
        self.deps = [0] * n
        self.created = [0] * n   # bytes op i writes (all alive at its scope)
        self.kept = [0] * n      # of those, bytes still alive after it
        self.freed = [[] for _ in range(n)]  # (tensor consumers mask, bytes): freed once all consumers ran
        for i, op in enumerate(graph.ops):
            for t in set(op.inputs):
                if t in producer and producer[t] != i:
                    self.deps[i] |= 1 << producer[t]
                if t in size and t not in outputs:
                    self.freed[i].append((consumers[t], size[t]))
            for t in set(op.outputs):
                if t in size:
                    self.created[i] += size[t]
                    if t in outputs or consumers.get(t, 0) & ~(1 << i):
                        self.kept[i] += size[t]
        self.start_live = sum(size[t] for t in set(graph.inputs) if t in size)
        self.full = (1 << n) - 1
        self.users = [0] * n     # ops that read something op i writes: the only ones op i can make ready
        for i in range(n):
            deps = self.deps[i]
            while deps:
                low = deps & -deps
                self.users[low.bit_length() - 1] |= 1 << i
                deps ^= low

    def _step(self, done: int, live: int, i: int) -> tuple[int, int]:
        """(bytes alive while op i runs, bytes alive after it) given the ops `done` and bytes `live`."""
        after = done | (1 << i)
        freed = sum(b for mask, b in self.freed[i] if mask & ~after == 0)
        return live + self.created[i], live + self.kept[i] - freed

    def _ready(self, done: int) -> list[int]:
        return [i for i in range(self.n) if not done >> i & 1 and self.deps[i] & ~done == 0]

    def _ready_mask(self, done: int) -> int:
        return sum(1 << i for i in self._ready(done))

    def _ready_after(self, ready: int, done: int, i: int) -> int:
        """The ready-op mask once op i has run, from `ready` (the mask of state `done`): O(users of i)."""
        after = done | (1 << i)
        ready &= ~(1 << i)
        users = self.users[i]
        while users:
            low = users & -users
            if self.deps[low.bit_length() - 1] & ~after == 0:
                ready |= low
            users ^= low
        return ready

    def exact(self, budget: int) -> tuple[int, ...] | None:
        """Min over orders of the max live bytes, by memoised search over done-sets; None past the budget."""
        memo: dict[int, tuple[int, int]] = {self.full: (0, -1)}  # done -> (best peak of the rest, next op)
        stack = [(0, self.start_live, self._ready_mask(0))]
        live_of = {0: self.start_live}
        while stack:  # iterative post-order: a state is solved once all its successors are
            done, live, ready = stack[-1]
            if done in memo:
                stack.pop()
                continue
            pending = []
            best = (None, -1)
            for i in _bits(ready):
                during, after_live = self._step(done, live, i)
                nxt = done | (1 << i)
                if nxt not in memo:
                    pending.append((nxt, after_live, self._ready_after(ready, done, i)))
                    continue
                peak = max(during, memo[nxt][0])
                if best[0] is None or peak < best[0]:
                    best = (peak, i)
            if pending:
                for state in pending:
                    live_of.setdefault(state[0], state[1])
                stack.extend(pending)
                if len(live_of) > budget:
                    return None
                continue
            memo[done] = best
            stack.pop()
        order, done = [], 0
        while done != self.full:
            i = memo[done][1]
            order.append(i)
            done |= 1 << i
        return tuple(order)

    def greedy(self) -> tuple[int, ...]:
        """Run next the ready op that leaves the fewest bytes alive (ties: the one alive least while running)."""
        done, live, order = 0, self.start_live, []
        while done != self.full:
            scored = [(self._step(done, live, i)[::-1], i) for i in self._ready(done)]
            (after_live, _), i = min(scored)
            order.append(i)
            done, live = done | (1 << i), after_live
        return tuple(order)


def _bits(mask: int):
    """Indices of the set bits of `mask`, lowest first."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low
