"""Prove memory plans and patch-based execution in TFLM, and keep what makes the arena smaller.

`optimise_arena` (edgekit inspect) measures every step's arena; `optimise_for_mcu` (the MCU export) keeps
each step TFLM runs with outputs bit for bit equal to the unmodified model's in a smaller arena (bisection
in the host interpreter). The plans themselves are pure flatbuffer edits: edgekit.export.offline_plan
(operator order, offline offsets, overlaps) and edgekit.export.patches (patch-based execution).

    >>> checked = optimise_arena(int8_bytes)   # measured in TFLM, outputs compared  # doctest: +SKIP
    >>> [(s.name, s.arena_bytes) for s in checked.steps]                          # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekit.export.offline_plan import (  # noqa: F401  (dataflow, offline_offsets, ...: imported from here too)
    CHECK_SAMPLES,
    OFFLINE_PLAN_METADATA,
    MemoryPlanResult,
    dataflow,
    offline_offsets,
    plan_memory,
)
from edgekit.export.offline_plan import check_inputs as _check_inputs
from edgekit.export.offline_plan import same_outputs as _same
from edgekit.export.offline_plan import tflm_outputs as _outputs

# ----------------------------------------------------------------------------- measured in TFLM


@dataclass(frozen=True)
class ArenaStep:
    """One optimisation applied on top of the previous ones, and the arena TFLM needs with it."""

    name: str            # "tflm" (TFLM's own order and plan), "order", "offline plan", "overlap", "patches"
    arena_bytes: int     # measured minimum (bisection in the host TFLM)
    head_bytes: int      # TFLM's recorded non-persistent (activation + scratch) section
    outputs_identical: bool
    extra_macs: int = 0  # MACs the step adds (patch-based execution recomputes the patches' overlap)


@dataclass(frozen=True)
class ArenaOptimisation:
    tflite_bytes: bytes             # the best model whose outputs are bit-identical (the input if none)
    steps: tuple[ArenaStep, ...]    # the ladder, first step "tflm"
    plan: MemoryPlanResult

    @property
    def arena_bytes(self) -> int:
        return min(s.arena_bytes for s in self.steps if s.outputs_identical)

    @property
    def baseline_arena_bytes(self) -> int:
        return self.steps[0].arena_bytes


STEPS = (("order", {"reorder": True, "offline": False, "overlap": False}),
         ("offline plan", {"reorder": True, "offline": True, "overlap": False}),
         ("overlap", {"reorder": True, "offline": True, "overlap": True}))


def optimise_arena(tflite_bytes: bytes, check_data: np.ndarray | None = None,
                   steps: tuple[str, ...] = ("order", "offline plan", "overlap", "patches")) -> ArenaOptimisation:
    """Plan memory, measure each step's arena in the host TFLM and keep the smallest bit-identical model.

    check_data: float samples per input (an array, or a list / dict per input; the first CHECK_SAMPLES
    are used, seeded noise when None) run before and after: a step whose outputs differ in any bit is
    reported and not used. Slow-ish: one arena bisection (about 20 interpreter builds) per step.
    """
    from edgekit.runners import tflm

    x = _check_inputs(tflite_bytes, check_data)
    reference = _outputs(tflite_bytes, x)
    base = tflm.measure_arena(tflite_bytes)
    ladder = [ArenaStep("tflm", base.arena_bytes, base.recorded_head_bytes, True)]
    best, best_arena, best_plan = tflite_bytes, base.arena_bytes, None
    seen: dict[bytes, ArenaStep] = {tflite_bytes: ladder[0]}
    for name, options in STEPS:
        if name not in steps:
            continue
        planned = plan_memory(tflite_bytes, **options)
        best_plan = best_plan or planned
        if planned.tflite_bytes in seen:  # the step changed nothing: same figures
            ladder.append(ArenaStep(name, *[getattr(seen[planned.tflite_bytes], f)
                                            for f in ("arena_bytes", "head_bytes", "outputs_identical")]))
            continue
        identical = _same(reference, _outputs(planned.tflite_bytes, x))
        arena = tflm.measure_arena(planned.tflite_bytes)
        step = ArenaStep(name, arena.arena_bytes, arena.recorded_head_bytes, identical)
        seen[planned.tflite_bytes] = step
        ladder.append(step)
        if identical and arena.arena_bytes < best_arena:
            best, best_arena, best_plan = planned.tflite_bytes, arena.arena_bytes, planned
    if "patches" in steps:
        patched = _patches_step(tflite_bytes, check_data, best_arena)
        if patched is not None:
            ladder.append(patched[1])
            if patched[1].outputs_identical and patched[1].arena_bytes < best_arena:
                best, best_arena = patched[0], patched[1].arena_bytes
    return ArenaOptimisation(best, tuple(ladder), best_plan or plan_memory(tflite_bytes, False, False, False))


def _patches_step(tflite_bytes: bytes, check_data, arena: int) -> tuple[bytes, ArenaStep] | None:
    """The best patch-based execution with offline plan and overlaps, measured (None: nothing to patch)."""
    from edgekit.export.patch_search import best_patching
    from edgekit.runners import tflm

    found = best_patching(tflite_bytes, check_data, measured=1, baseline_arena_bytes=arena)
    if found.arena_bytes is None:
        return None
    head = tflm.measure_arena(found.tflite_bytes).recorded_head_bytes
    return found.tflite_bytes, ArenaStep("patches", found.arena_bytes, head, bool(found.outputs_identical),
                                         found.extra_macs)


MCU_STEPS = (("operator order", {"reorder": True, "offline": False, "overlap": False}),
             ("offline memory plan", {"reorder": True, "offline": True, "overlap": False}),
             ("offline memory plan + output overlap", {"reorder": True, "offline": True, "overlap": True}))
OVERLAP_CAVEAT = ("assumes kernels that write their output in the reference kernels' raster order; not verified "
                  "against CMSIS-NN or other optimised kernels")


@dataclass(frozen=True)
class MemoryStep:
    """One step of the MCU export's memory ladder, tried on top of the steps applied before it."""

    name: str                        # a name of MCU_STEPS
    applied: bool
    arena_before_bytes: int          # measured in TFLM (bisection) on the model before this step
    flash_before_bytes: int
    arena_after_bytes: int | None    # measured; None when the step was not run in TFLM (see why)
    flash_after_bytes: int | None
    outputs_identical: bool | None   # TFLM outputs of the step's model vs the unplanned one, bit for bit
    why: str = ""                    # why not applied
    extra_macs: int = 0              # MACs the step's model adds (patch-based execution: the overlap)

    def to_dict(self) -> dict:
        return {"name": self.name, "applied": self.applied, "arena_before_bytes": self.arena_before_bytes,
                "arena_after_bytes": self.arena_after_bytes, "flash_before_bytes": self.flash_before_bytes,
                "flash_after_bytes": self.flash_after_bytes, "outputs_identical": self.outputs_identical,
                "why": self.why, "extra_macs": self.extra_macs}


@dataclass(frozen=True)
class McuMemoryOptimisation:
    """The MCU export's memory step: the model kept and every step tried, each measured in TFLM."""

    tflite_bytes: bytes
    steps: tuple[MemoryStep, ...]
    baseline_arena_bytes: int
    arena_bytes: int
    check_samples: int

    @property
    def applied(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.steps if s.applied)

    @property
    def extra_macs(self) -> int:
        """MACs the kept model runs beyond the input model's (the cost model adds them to the latency)."""
        return sum(s.extra_macs for s in self.steps if s.applied)

    def to_dict(self) -> dict:
        return {"applied": list(self.applied), "arena_before_bytes": self.baseline_arena_bytes,
                "arena_after_bytes": self.arena_bytes, "check_samples": self.check_samples,
                "extra_macs": self.extra_macs, "steps": [s.to_dict() for s in self.steps]}

    def note(self) -> str:
        """One line for the export / fit report."""
        if not self.applied:
            return "memory optimisation: none applied (" + "; ".join(f"{s.name}: {s.why}" for s in self.steps) + ")"
        caveat = f"; output overlap {OVERLAP_CAVEAT}" if any("overlap" in n for n in self.applied) else ""
        macs = f"; +{self.extra_macs} MACs recomputed by the patches" if self.extra_macs else ""
        return (f"memory optimisation: {', '.join(self.applied)}: arena {self.baseline_arena_bytes} -> "
                f"{self.arena_bytes} bytes (measured in TFLM, outputs bit-identical on {self.check_samples} "
                f"check samples){caveat}{macs}")


def optimise_for_mcu(model_bytes: bytes, check_data=None, overlap: bool = False,
                     patches: bool = True) -> McuMemoryOptimisation:
    """The MCU export's memory step: try order, offline plan (and overlap), then patch-based execution
    (edgekit.export.patches, with the same offline plan) in turn, keep what TFLM proves.

    A step is kept only when TFLM runs its model with outputs bit-identical to the unplanned model's on
    the check samples and needs a smaller arena (bisection). A step the plan predicts no gain for is not
    run. overlap: also try outputs overlapping their dying input (OVERLAP_CAVEAT). Shared vectors
    (edgekit.export.strip) stay shared.
    """
    from edgekit.export.strip import share_vectors
    from edgekit.runners import tflm

    x = _check_inputs(model_bytes, check_data)
    reference = _outputs(model_bytes, x)
    arena = baseline = tflm.measure_arena(model_bytes).arena_bytes
    current, predicted, reorder = model_bytes, None, True
    steps: list[MemoryStep] = []
    for name, options in MCU_STEPS:
        if "overlap" in name and not overlap:
            continue
        planned = plan_memory(model_bytes, **{**options, "reorder": reorder})
        predicted = planned.predicted_tflm_bytes if predicted is None else predicted
        before = (name, False, arena, len(current))
        if planned.skipped:
            steps.append(MemoryStep(*before, None, None, None, f"not planned: {planned.skipped}"))
            break
        if name == "operator order" and not planned.reordered:
            steps.append(MemoryStep(*before, None, None, None, "the stored order already has the lowest peak"))
            reorder = False
            continue
        if planned.predicted_bytes >= predicted:
            steps.append(MemoryStep(*before, None, None, None, f"planned activations {planned.predicted_bytes} B, "
                                    f"no fewer than the {predicted} B before it: not run"))
            reorder = reorder and name != "operator order"
            continue
        candidate = share_vectors(planned.tflite_bytes)
        identical = _same(reference, _outputs(candidate, x))
        after = tflm.measure_arena(candidate).arena_bytes
        applied = identical and after < arena
        why = "" if applied else ("TFLM outputs differ from the unplanned model's" if not identical
                                  else f"measured arena {after} B is no smaller")
        steps.append(MemoryStep(*before[:1], applied, *before[2:], after, len(candidate), identical, why))
        if applied:
            current, arena, predicted = candidate, after, planned.predicted_bytes
        elif name == "operator order":
            reorder = False
    if patches:
        step, patched = _mcu_patches_step(model_bytes, check_data, overlap, arena, predicted, len(current),
                                          reference)
        steps.append(step)
        if step.applied:
            current, arena = patched, step.arena_after_bytes
    return McuMemoryOptimisation(current, tuple(steps), baseline, arena, len(x[0]) if x else 0)


PATCHES_STEP = "patch-based execution"


def _mcu_patches_step(model_bytes: bytes, check_data, overlap: bool, arena: int, head: int | None,
                      flash: int, reference=None) -> tuple[MemoryStep, bytes]:
    """Patch-based execution planned like the steps before it, and its model (shared vectors); applied
    when TFLM runs it bit-identically in a smaller arena than the steps before reached."""
    from edgekit.export.patch_search import best_patching
    from edgekit.export.strip import share_vectors

    found = best_patching(model_bytes, check_data, overlap=overlap, baseline_arena_bytes=arena,
                          baseline_head_bytes=head, reference=reference)
    if found.arena_bytes is None:
        return MemoryStep(PATCHES_STEP, False, arena, flash, None, None, found.outputs_identical, found.why), b""
    patched = share_vectors(found.tflite_bytes)
    applied = bool(found.outputs_identical) and found.arena_bytes < arena
    why = "" if applied else (found.why or f"measured arena {found.arena_bytes} B is no smaller than {arena} B")
    return MemoryStep(PATCHES_STEP, applied, arena, flash, found.arena_bytes, len(patched), found.outputs_identical,
                      why, found.extra_macs), patched
