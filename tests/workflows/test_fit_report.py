"""Fit reports: JSON round trip, Markdown tables, self-contained HTML."""

import json

from edgekit.workflows.fit.report import (
    BudgetLine,
    CandidateSummary,
    FitResult,
    LayerChannels,
    StageTiming,
    to_html,
    to_markdown,
)


def _result(measured_ram=40_000):
    return FitResult(
        model_path="teacher.h5", device="stm32l4r5", runtime="tflm", status="fits", precision="int8",
        budgets=(BudgetLine("flash_bytes", 32_768, 30_000, measured=29_500, measured_by="model.tflite size"),
                 BudgetLine("ram_bytes", 65_536, 38_000, measured=measured_ram, measured_by="TFLM arena (bisected)"),
                 BudgetLine("latency_ms", 50.0, 12.5), BudgetLine("energy_mj", None, 0.6)),
        teacher_accuracy=0.9835, final_accuracy=0.9790,
        candidates=(CandidateSummary("pruned-50%", "pruned", "int8", {"latency_ms": 12.5, "flash_bytes": 30_000},
                                     True, 0.979, True),
                    CandidateSummary("dscnn-w16", "student", "int8", {"latency_ms": 8.0, "flash_bytes": 20_000},
                                     True, 0.95)),
        channels=(LayerChannels("conv1", 64, 32), LayerChannels("conv2", 64, 24)),
        stages=(StageTiming("plan", 1.5), StageTiming("distill", 40.0, "12 epochs")),
        artifacts={"tflite": "out/model.tflite"}, binding_budget="flash_bytes")


def test_json_has_per_budget_verdicts_and_round_trips():
    data = _result().to_dict()
    assert data["budgets"]["ram_bytes"] == {"predicted": 38_000, "measured": 40_000, "limit": 65_536, "fits": True,
                                            "measured_by": "TFLM arena (bisected)"}
    assert data["budgets"]["energy_mj"]["fits"] is None  # no budget set
    assert abs(data["accuracy_drop"] - 0.0045) < 1e-9
    assert json.loads(json.dumps(data))["budgets"] == data["budgets"]  # plain JSON values only


def test_measured_figure_decides_fit_over_prediction():
    over = _result(measured_ram=70_000)  # predicted 38 KB fits, measured 70 KB does not
    assert over.budgets[1].fits is False and over.fits is False
    assert over.to_dict()["fits"] is False


def test_markdown_lists_budgets_candidates_and_channels():
    md = to_markdown(_result())
    assert "| RAM | 37.1 KiB | 39.1 KiB | 64.0 KiB | yes | TFLM arena (bisected) |" in md
    assert "| conv2 | 64 | 24 |" in md
    assert "teacher 98.35%, final 97.90%" in md


def test_html_is_self_contained_with_three_figures():
    page = to_html(_result())
    assert page.count("<svg") == 3
    assert "<link" not in page and "src=" not in page and "<metadata>" not in page  # no external assets
    assert "<table>" in page and "pruned-50%" in page
