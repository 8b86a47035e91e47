"""The report's charts, rendered to PNG with matplotlib's Agg backend and checked on the drawn figure."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.image import imread

from edgekit.budgets import BudgetLine
from edgekit.workflows.fit.charts import figure_tradeoff, figures
from edgekit.workflows.fit.report import AttemptSummary, CandidateSummary, FitResult, to_html


def _result():
    # candidates from 2 KiB to 400 KiB (two decades), most never evaluated, crowded near each other
    flash = [2_000, 2_100, 2_200, 9_000, 9_300, 40_000, 120_000, 400_000]
    candidates = tuple(
        CandidateSummary(f"cand {i}", "pruned" if i < 5 else "student", "int8",
                         {"flash_bytes": f, "latency_ms": 3.0 + i}, f <= 12_288,
                         accuracy=0.9 + 0.01 * i if i in (3, 4) else None, chosen=i == 4)
        for i, f in enumerate(flash))
    attempts = (
        AttemptSummary(1, "the plan's choice", "pruned", "int8", "a", {"flash_bytes": 8_000}, 0.90, 0.08, True, False),
        AttemptSummary(2, "longer distillation", "pruned", "int8", "a", {"flash_bytes": 8_100}, 0.91, 0.07, True,
                       False),
        AttemptSummary(3, "milder cut", "pruned", "int8", "b", {"flash_bytes": 11_900}, 0.975, 0.005, True, True,
                       delivered=True))
    return FitResult(
        model_path="t.h5", device="stm32l4r5", runtime="tflm", status="fits", precision="int8",
        budgets=(BudgetLine("flash_bytes", 12_288, 11_800, measured=11_900),
                 BudgetLine("ram_bytes", 327_680, 20_000, measured=21_000),
                 BudgetLine("latency_ms", 200.0, 4.0)),  # a far-away latency budget must not set the axis
        teacher_accuracy=0.98, final_accuracy=0.975, candidates=candidates, attempts=attempts,
        binding_budget="flash_bytes", task="classify", max_accuracy_drop=0.01,
        explanation=("Task: classify.", "Chosen after 3 attempts: attempt 3."))


def test_tradeoff_chart_plots_measured_points_on_log_axes_without_label_collisions(tmp_path):
    fig = figure_tradeoff(_result())
    ax, strip = fig.axes
    fig.savefig(tmp_path / "tradeoff.png", dpi=80)
    assert ax.get_xscale() == "log"                                  # 2 KiB .. 400 KiB span two decades
    lo, hi = ax.get_xlim()
    assert lo <= 2_000 / 1024 and hi >= 400_000 / 1024 and hi < 2 * 400_000 / 1024
    main_y = np.concatenate([c.get_offsets()[:, 1] for c in ax.collections])
    assert main_y.min() >= 0.85                                      # nothing drawn at a made-up accuracy of 0
    assert len(strip.collections) == 6                               # the 6 unevaluated candidates, own row
    labels = [t for a in (ax, strip) for t in a.texts]
    assert sorted(t.get_text() for t in labels) == sorted(["A1", "A2", "A3", "C1", "C2", "C3", "C4", "C5", "C6",
                                                           "C7", "C8"])
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in labels]
    overlaps = [(labels[i].get_text(), labels[j].get_text()) for i in range(len(boxes))
                for j in range(i + 1, len(boxes)) if boxes[i].overlaps(boxes[j])]
    assert overlaps == []                                            # A1/A2 and C1..C3 sit nearly on top
    lines = {line.get_label(): line.get_xdata()[0] for line in ax.get_lines()}
    assert lines["flash budget"] == 12_288 / 1024                    # the binding budget's limit, not latency's
    assert ax.get_lines()[-1].get_label() == "accuracy budget"
    assert ax.get_lines()[-1].get_ydata()[0] == 0.98 - 0.01
    image = imread(tmp_path / "tradeoff.png")
    red = (image[..., 0] > 0.75) & (image[..., 1] < 0.3) & (image[..., 2] < 0.3)
    columns = np.flatnonzero(red.sum(axis=0) > 0.3 * image.shape[0])  # the dashed limit line spans the height
    assert len(columns) >= 1


def test_budget_chart_shows_the_accuracy_budget_and_marks_predictions(tmp_path):
    budget_fig = figures(_result())[0]
    ax = budget_fig.axes[0]
    names = [t.get_text() for t in ax.get_yticklabels()]
    assert names[-1] == "accuracy drop (limit 0.01)"
    widths = [p.get_width() for p in ax.patches]
    assert widths[-1] == pytest.approx(50.0)                         # 0.005 of 0.01 used
    assert ax.patches[2].get_hatch() == "//"                         # latency: predicted only, hatched
    budget_fig.savefig(tmp_path / "budgets.png", dpi=60)


def test_html_starts_with_the_explanation_and_lists_attempts():
    page = to_html(_result())
    assert page.index("Why this model") < page.index("Budgets") < page.index("Attempts")
    assert page.count("<svg") == 2 and "<td>A3</td>" in page and "accuracy drop" in page
