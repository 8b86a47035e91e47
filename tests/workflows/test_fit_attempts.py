"""The accuracy budget's decisions (walk back, headroom, best of each kind) and the plain-words explanation."""

import pytest

from edgekit.tasks import Head, detect_task
from edgekit.workflows.fit.attempts import (
    Attempt,
    Step,
    accuracy_message,
    best_of_each_kind,
    headroom_step,
    walk_back_steps,
)
from edgekit.workflows.fit.explain import explain

LIMITS = {"flash_bytes": 12_288, "ram_bytes": 327_680}


def _attempt(number=1, flash=11_000, score=0.95, fits=True, kind="pruned", margin=0.9, max_drop=0.01):
    return Attempt(number, "the plan's choice", "40 of 192 channels removed", kind, "int8", margin, 30,
                   {"flash_bytes": flash, "ram_bytes": 20_000, "latency_ms": None}, LIMITS, score, 0.98, max_drop,
                   fits)


def test_walk_back_is_bounded_longer_distillation_then_milder_cut_then_higher_precision():
    steps = walk_back_steps(Step("plan", 0.9, 10), max_attempts=5)
    assert [s.epochs for s in steps] == [20, 20, 20] and steps[1].margin == 1.0 and steps[0].margin == 0.9
    assert [s.higher_precision for s in steps] == [False, False, True]
    assert walk_back_steps(Step("plan", 0.9, 10), max_attempts=1) == steps[:1]
    no_milder = walk_back_steps(Step("plan", 1.0, 10), 5)
    assert [s.reason for s in no_milder] == [steps[0].reason, steps[2].reason]
    assert walk_back_steps(Step("plan", 0.9, 10), max_attempts=0) == []
    kept_as_is = walk_back_steps(Step("plan", 0.9, 10), 5, kind="original")  # only quantisation lost accuracy
    assert len(kept_as_is) == 1 and kept_as_is[0].higher_precision and kept_as_is[0].epochs == 10


def test_headroom_replans_only_when_more_than_ten_percent_is_unused():
    roomy = _attempt(flash=int(0.6 * 12_288), score=0.975)
    step = headroom_step(roomy)
    assert step is not None and step.margin == pytest.approx(min(1.0, 0.9 * 0.97 / 0.6))
    assert "flash" in step.reason and "60%" in step.reason
    assert headroom_step(_attempt(flash=int(0.95 * 12_288), score=0.975)) is None       # little left
    assert headroom_step(_attempt(flash=int(0.6 * 12_288), score=0.90)) is None         # lost accuracy: not ok
    assert headroom_step(_attempt(flash=int(0.6 * 12_288), score=0.975, kind="original")) is None
    assert headroom_step(_attempt(flash=int(0.6 * 12_288), score=0.975, margin=1.0)) is None


def test_best_of_each_kind_and_the_exit_3_message():
    attempts = [_attempt(1, flash=9_000, score=0.90), _attempt(2, flash=11_000, score=0.93),
                _attempt(3, flash=20_000, score=0.975, fits=False)]
    best = best_of_each_kind(attempts)
    assert best["most_accurate_fitting"].number == 2      # 3 scores better but does not fit
    assert best["smallest_within_accuracy"].number == 3   # the only one within 0.01 of 0.98
    message = accuracy_message(attempts, "top-1 accuracy")
    assert message.startswith("accuracy: ") and "0.9300 vs 0.9800" in message and "0.0500 > --max-accuracy-drop"
    assert best_of_each_kind([_attempt(1, score=0.5)])["smallest_within_accuracy"] is None


def test_explanation_names_the_metric_the_binding_budget_and_what_to_raise():
    task = detect_task((Head("logits", (10,), "linear"),), (40, 1), None)
    chosen = _attempt(2, flash=11_500, score=0.975)
    lines = explain(chosen, [_attempt(1, score=0.9), chosen], task, "stm32l4r5")
    text = " ".join(lines)
    assert lines[0].startswith("Task: classify") and "top-1 accuracy" in lines[0]
    assert "after 2 attempts" in text and "0.9750 vs 0.9800" in text
    assert "Binding budget: flash: measured 11.2 KiB of 12.0 KiB (94%)" in text
    assert "--max-flash (e.g. to 18.0 KiB" in text and "RAM still has room" in text
