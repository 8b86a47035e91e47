"""The accuracy budget of a fit: each compressed model tried, what to try next, and which one to deliver (pure).

A fit tries one model (an `Attempt`) per round: the plan's choice first. When that keeps every device budget
but loses more than the allowed drop in the task's metric, it walks back, at most `max_attempts` more times:
longer distillation of the same candidate, then a milder cut (planning to 100 % of each budget: a larger
candidate or a milder pruning ratio), then a higher precision (float16 / float32 where the profile allows). When an
attempt keeps accuracy and leaves more than 10 % of the
binding budget unused, one headroom round plans upward and is kept only when it scores better.

Within a round, an int8 model that loses more than the allowed drop is first tried with per-layer mixed precision
(int16x8 / float32 only where int8 hurts and the profile's runtime has the kernels, within the flash and latency
budgets: edgekit.workflows.fit.layers.try_mixed), then with quantisation-aware training if it still loses too much;
the per-layer precisions kept are in the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from edgekit.budgets import BUDGET_LABELS

HEADROOM_UNUSED = 0.10          # re-plan upward when more than this share of the binding budget is unused
HEADROOM_TARGET = 0.97          # ... aiming measured figures at this share of the limit
MAX_MARGIN = 1.0


@dataclass(frozen=True)
class Step:
    """What an attempt changes: the planning margin and the distillation epochs."""

    reason: str                  # "plan", "longer distillation", "milder cut", "headroom", "higher precision"
    margin: float
    epochs: int
    higher_precision: bool = False   # the same network at the next precision the profile allows that fits


@dataclass(frozen=True)
class Attempt:
    """One compressed model tried: how it was made, what it measures, how it scores."""

    number: int
    reason: str
    description: str             # the candidate (kind, precision, what was cut)
    kind: str                    # original | pruned | student
    precision: str
    margin: float
    epochs: int
    measured: dict               # budget key -> measured value (None: not measurable here)
    limits: dict                 # budget key -> limit
    score: float | None
    teacher_score: float
    max_drop: float
    fits_device: bool
    notes: tuple[str, ...] = field(default=())

    @property
    def drop(self) -> float | None:
        return None if self.score is None else self.teacher_score - self.score

    @property
    def keeps_accuracy(self) -> bool:
        return self.drop is not None and self.drop <= self.max_drop + 1e-12

    @property
    def ok(self) -> bool:
        return self.fits_device and self.keeps_accuracy

    def size_bytes(self) -> float:
        value = self.measured.get("flash_bytes")
        return float("inf") if value is None else float(value)


def walk_back_steps(first: Step, max_attempts: int, kind: str = "pruned") -> list[Step]:
    """The bounded sequence of retries after `first` loses too much accuracy (may be shorter than max).

    A model kept as it is (kind "original") only lost accuracy to quantisation: its one retry is a higher
    precision (float16 / float32 where the profile allows and it still fits)."""
    higher = Step("higher precision: the same network at the next precision that fits", first.margin,
                  first.epochs, higher_precision=True)
    if kind == "original":
        return [higher][:max(0, max_attempts)]
    steps = [Step("longer distillation (2x epochs)", first.margin, 2 * first.epochs)]
    if first.margin < MAX_MARGIN:
        steps.append(Step("milder cut: plan to 100% of each budget (a larger candidate / milder pruning)",
                          MAX_MARGIN, 2 * first.epochs))
    steps.append(replace(higher, margin=MAX_MARGIN, epochs=2 * first.epochs))
    return steps[:max(0, max_attempts)]


def binding_use(attempt: Attempt) -> tuple[str, float] | None:
    """(budget, measured/limit) of the measured budget closest to its limit, or None when nothing was measured."""
    uses = {k: attempt.measured[k] / v for k, v in attempt.limits.items()
            if v and attempt.measured.get(k) is not None}
    if not uses:
        return None
    key = max(uses, key=uses.get)
    return key, uses[key]


def headroom_step(attempt: Attempt) -> Step | None:
    """A re-plan upward when the delivered model leaves more than 10 % of its binding budget unused."""
    if attempt.kind == "original" or not attempt.ok:
        return None
    use = binding_use(attempt)
    if use is None or use[1] >= 1.0 - HEADROOM_UNUSED:
        return None
    margin = min(MAX_MARGIN, attempt.margin * HEADROOM_TARGET / use[1])
    if margin <= attempt.margin + 0.01:
        return None
    label = BUDGET_LABELS.get(use[0], use[0])
    return Step(f"headroom: {label} measured at {use[1]:.0%} of its limit, re-planned to {margin:.0%}",
                margin, attempt.epochs)


def best_of_each_kind(attempts: list[Attempt]) -> dict[str, Attempt | None]:
    """The most accurate attempt that fits the device, and the smallest that keeps the accuracy budget."""
    fitting = [a for a in attempts if a.fits_device and a.score is not None]
    keeping = [a for a in attempts if a.keeps_accuracy]
    return {"most_accurate_fitting": max(fitting, key=lambda a: a.score, default=None),
            "smallest_within_accuracy": min(keeping, key=Attempt.size_bytes, default=None)}


def accuracy_message(attempts: list[Attempt], metric: str, option_hint: str = "--max-accuracy-drop") -> str:
    """The one-line exit-3 reason when every attempt that fits loses too much accuracy."""
    best = best_of_each_kind(attempts)["most_accurate_fitting"]
    if best is None:
        return "accuracy: no attempt both fit the device and could be scored"
    return (f"accuracy: the best model that fits scores {metric} {best.score:.4f} vs {best.teacher_score:.4f} "
            f"for the original, a drop of {best.drop:.4f} > {option_hint} {best.max_drop:g} after "
            f"{len(attempts)} attempt(s); allow a larger drop or raise the binding device budget")
