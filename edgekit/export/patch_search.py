"""Search the split point and patch grid of patch-based execution, measured in TFLM (edgekit.export.patches).

    >>> found = best_patching(int8_bytes)                               # doctest: +SKIP
    >>> found.applied, found.split_op, found.grid, found.arena_bytes    # doctest: +SKIP

Every (split point, grid) whose overlap costs at most `max_extra_macs` of the model's MACs is rewritten
and planned (pure flatbuffer work, edgekit.export.memory_plan.plan_memory); the ones with the lowest
planned activation bytes are run in the host TFLM: outputs compared bit for bit with the unpatched
model's, arena measured by bisection. Patching is kept only when it beats the unpatched model with the
same memory plan. It can lose even when the activations shrink: each copy of an op costs TFLM tail
memory (a node struct, tensor structs, per-channel multipliers), which patching multiplies.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.errors import UnsupportedModelError
from edgekit.model_io.flatbuffer import read_model

DEFAULT_GRIDS = ((2, 1), (3, 1), (4, 1), (6, 1), (8, 1), (2, 2), (3, 3), (4, 4))
MAX_EXTRA_MACS = 0.15   # of the whole model's MACs
MEASURED_CANDIDATES = 2  # the best planned candidates run in TFLM
PLANNED_CANDIDATES = 8   # the best by the pure stage prediction, rewritten and planned
MAX_STAGE_OPS = 12       # patching pays on the first, large feature maps; deeper splits cost MACs and tail


@dataclass(frozen=True)
class PatchCandidate:
    split_op: int
    grid: tuple[int, int]
    extra_macs: int
    predicted_head_bytes: int        # activations with edgekit's offline plan (kernel scratch not included)
    predicted_tail_growth_bytes: int  # TFLM bookkeeping the op copies add (costmodel.patches estimate)
    arena_bytes: int | None = None   # measured in TFLM (None: not among the measured candidates)
    outputs_identical: bool | None = None


@dataclass(frozen=True)
class PatchSearch:
    """The best patching found, or why none is kept (`why`); figures measured in the host TFLM."""

    tflite_bytes: bytes              # best patched model with its memory plan (b"" when no candidate ran)
    applied: bool                    # its arena is smaller than the unpatched model's and outputs identical
    split_op: int
    grid: tuple[int, int]
    model_macs: int                  # the unpatched model
    extra_macs: int
    baseline_arena_bytes: int        # unpatched model with the same memory plan
    arena_bytes: int | None          # the patched model's (None when no candidate ran)
    outputs_identical: bool | None
    candidates: tuple[PatchCandidate, ...]
    why: str = ""

    @property
    def extra_macs_fraction(self) -> float:
        return self.extra_macs / self.model_macs if self.model_macs else 0.0


def model_macs(tflite_bytes: bytes) -> int:
    """MACs of a model counted from its flatbuffer (edgekit.costmodel.tflite_costs)."""
    from edgekit.costmodel.tflite_costs import tflite_macs
    from edgekit.ir.from_tflite import from_tflite
    from edgekit.model_io.flatbuffer import subgraph_op_names

    model = read_model(tflite_bytes)
    graph, _ = from_tflite(model, subgraph_op_names(model))
    return sum(tflite_macs(node) for node in graph.nodes)


def split_points(tflite_bytes: bytes) -> tuple[list[int], str]:
    """Split points (op counts) whose stage is a patchable chain, and why the next one is not."""
    from edgekit.export.patches import stage_chain

    model = read_model(tflite_bytes)
    points, why = [], "no operators"
    for split in range(1, min(len(model.subgraphs[0].operators or []) if model.subgraphs else 1,
                              MAX_STAGE_OPS + 1)):
        stage = stage_chain(model, split)
        if stage.why_not:
            why = stage.why_not
            if "model output" not in why:  # any larger stage holds the same op
                break
            continue
        if split > 1:  # a stage of one op saves nothing: its input and output are whole either way
            points.append(split)
    return points, why


def candidate_patchings(tflite_bytes: bytes, grids=DEFAULT_GRIDS, max_extra_macs: float = MAX_EXTRA_MACS,
                        overlap: bool = True, head_limit_bytes: int | None = None
                        ) -> tuple[list[PatchCandidate], int, str]:
    """(candidates under the MAC cap, best predicted arena first: planned head + tail growth; model MACs;
    why there are none). head_limit_bytes (without overlap, where the pure prediction is the plan's): drop
    candidates whose predicted head + tail growth is no lower before rewriting anything."""
    from edgekit.costmodel.patches import plan_patches, predicted_tail_growth_bytes, stage_live_peak_bytes
    from edgekit.export.offline_plan import plan_memory
    from edgekit.export.patches import patch_model, stage_chain

    points, why = split_points(tflite_bytes)
    if not points:
        return [], 0, f"no stage to patch: {why}"
    macs = model_macs(tflite_bytes)
    model = read_model(tflite_bytes)
    after = _live_bytes_after(model)
    quick = []
    for split in points:
        chain = stage_chain(model, split).chain
        for grid in grids:
            if grid[0] > chain[-1].out_hw[0] or grid[1] > chain[-1].out_hw[1]:
                continue
            plan = plan_patches(chain, grid)
            if plan.extra_macs <= max_extra_macs * macs:
                stage_peak = stage_live_peak_bytes(plan, peel=overlap)
                tail = predicted_tail_growth_bytes(plan, overlap)
                quick.append((max(stage_peak, after[split]) + tail, plan.extra_macs, split, tuple(grid), tail))
    if head_limit_bytes is not None and not overlap:
        kept = [q for q in quick if q[0] < head_limit_bytes]
        if quick and not kept:
            score, _, split, grid, _ = min(quick)
            return [], macs, (f"predicted no saving: best predicted head + tail growth {score} B (split {split}, "
                              f"grid {grid[0]}x{grid[1]}) >= {head_limit_bytes} B unpatched: not run")
        quick = kept
    found = []
    for _, _, split, grid, tail in sorted(quick)[:PLANNED_CANDIDATES]:
        patched = patch_model(tflite_bytes, split, grid, peel=overlap)
        planned = plan_memory(patched.tflite_bytes, reorder=False, overlap=overlap)
        found.append(PatchCandidate(split, grid, patched.extra_macs, planned.predicted_bytes, tail))
    found.sort(key=lambda c: (c.predicted_head_bytes + c.predicted_tail_growth_bytes, c.extra_macs))
    why = "" if found else f"every split point and grid costs more than {max_extra_macs:.0%} extra MACs"
    return found, macs, why


def _live_bytes_after(model) -> list[int]:
    """Per op index k: the most activation bytes alive at any op from k on (stored order, no overlaps)."""
    from edgekit.costmodel.schedule import lifetimes
    from edgekit.export.offline_plan import dataflow

    graph = dataflow(model)
    count = len(graph.ops)
    buffers = lifetimes(graph, tuple(range(count)))
    live = [sum(b.size_bytes for b in buffers if b.first_op <= k + 1 <= b.last_op) for k in range(count)]
    return [max(live[k:]) for k in range(count)] + [0]


def best_patching(tflite_bytes: bytes, check_data=None, grids=DEFAULT_GRIDS,
                  max_extra_macs: float = MAX_EXTRA_MACS, overlap: bool = True,
                  measured: int = MEASURED_CANDIDATES, baseline_arena_bytes: int | None = None,
                  baseline_head_bytes: int | None = None, reference=None) -> PatchSearch:
    """The patching with the smallest measured TFLM arena, kept only if smaller than the unpatched model's
    (both with edgekit's offline plan; overlap: also with outputs overlapping dying inputs and the input
    peeled in place, see patch_model) and bit-identical. baseline_arena_bytes: the unpatched arena when
    already measured. baseline_head_bytes: the unpatched model's planned activation bytes; when given,
    nothing runs in TFLM unless a candidate's planned head plus predicted tail growth is below it.
    reference: the unpatched model's TFLM outputs on check_inputs(tflite_bytes, check_data), when the caller
    has them already (each TFLM run of a large model takes seconds).
    """
    from edgekit.export.offline_plan import check_inputs, plan_memory, same_outputs, tflm_outputs
    from edgekit.export.patches import patch_model
    from edgekit.runners import tflm

    candidates, macs, why = candidate_patchings(tflite_bytes, grids, max_extra_macs, overlap, baseline_head_bytes)
    baseline = baseline_arena_bytes or tflm.measure_arena(plan_memory(tflite_bytes, overlap=overlap).tflite_bytes
                                                          ).arena_bytes
    unmeasured: tuple[PatchCandidate, ...] = ()
    if candidates and baseline_head_bytes is not None and min(
            c.predicted_head_bytes + c.predicted_tail_growth_bytes for c in candidates) >= baseline_head_bytes:
        best = candidates[0]
        why = (f"predicted no saving: best planned head {best.predicted_head_bytes} B + tail growth "
               f"{best.predicted_tail_growth_bytes} B (split {best.split_op}, grid {best.grid[0]}x{best.grid[1]}) "
               f">= {baseline_head_bytes} B unpatched: not run")
        unmeasured, candidates = tuple(candidates), []
    if not candidates:
        return PatchSearch(b"", False, 0, (1, 1), macs, 0, baseline, None, None, unmeasured, why)
    x = check_inputs(tflite_bytes, check_data)
    reference = tflm_outputs(tflite_bytes, x) if reference is None else reference
    best, tried = None, []
    for candidate in candidates[:measured]:
        model = plan_memory(patch_model(tflite_bytes, candidate.split_op, candidate.grid, peel=overlap).tflite_bytes,
                            reorder=False, overlap=overlap).tflite_bytes
        try:
            identical = same_outputs(reference, tflm_outputs(model, x))
            arena = tflm.measure_arena(model).arena_bytes
        except UnsupportedModelError as error:  # a kernel refused the rewritten graph: report, keep the rest
            tried.append(candidate)
            why = f"TFLM refused split {candidate.split_op} grid {candidate.grid}: {error}"
            continue
        measured_candidate = PatchCandidate(candidate.split_op, candidate.grid, candidate.extra_macs,
                                            candidate.predicted_head_bytes, candidate.predicted_tail_growth_bytes,
                                            arena, identical)
        tried.append(measured_candidate)
        if identical and (best is None or arena < best[1].arena_bytes):
            best = (model, measured_candidate)
    tried += candidates[measured:]
    if best is None:
        return PatchSearch(b"", False, 0, (1, 1), macs, 0, baseline, None, False, tuple(tried),
                           why or "no candidate's TFLM outputs are bit-identical to the unpatched model's")
    model, chosen = best
    applied = chosen.arena_bytes < baseline
    why = "" if applied else (f"best patched arena {chosen.arena_bytes} B (split {chosen.split_op}, grid "
                              f"{chosen.grid[0]}x{chosen.grid[1]}) is no smaller than {baseline} B unpatched: "
                              "per-op TFLM tail memory outweighs the smaller activations")
    return PatchSearch(model, applied, chosen.split_op, chosen.grid, macs, chosen.extra_macs, baseline,
                       chosen.arena_bytes, chosen.outputs_identical, tuple(tried), why)


def predicted_rows(search: PatchSearch) -> list[str]:
    """One line per candidate, for benchmarks and reports."""
    return [f"split {c.split_op} grid {c.grid[0]}x{c.grid[1]}: +{c.extra_macs} MACs "
            f"({c.extra_macs / search.model_macs:.1%}), planned head {c.predicted_head_bytes} B, "
            f"predicted tail growth {c.predicted_tail_growth_bytes} B"
            + (f", measured arena {c.arena_bytes} B, identical {c.outputs_identical}" if c.arena_bytes else "")
            for c in search.candidates] if search.model_macs else []

