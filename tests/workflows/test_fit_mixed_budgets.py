"""A fit that keeps a mixed-precision model reports that model's predicted latency, energy and RAM, not int8's."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from edgekit.workflows.fit.report import BudgetLine, FitResult, to_markdown

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "export"))
from test_mixed import wide_range_regressor


def test_budget_lines_are_repriced_for_the_raised_layers():
    from edgekit.costmodel.latency import estimate_for_profile
    from edgekit.ir.from_keras import from_keras
    from edgekit.profiles import load_profile
    from edgekit.workflows.fit.layers import mixed_budgets

    model, profile = wide_range_regressor(), load_profile("stm32h743")
    budgets = (BudgetLine("flash_bytes", 1e6, 3000, measured=2900, measured_by="exported .tflite size"),
               BudgetLine("ram_bytes", 5e5, 20000, measured=19000, measured_by="TFLM arena"),
               BudgetLine("latency_ms", 0.02, 0.0118), BudgetLine("energy_mj", 30, 0.004))
    precisions = {"wide": "int16x8", "hidden": "int16x8", "head": "int8"}
    assert mixed_budgets(budgets, model, profile, {"wide": "int8", "head": "int8"}) == budgets
    lines = {b.budget: b for b in mixed_budgets(budgets, model, profile, precisions)}
    graph = from_keras(model)
    uniform = estimate_for_profile(graph, profile, "int8")
    mixed = estimate_for_profile(graph, profile, "int8", layer_precisions={"wide": "int16x8", "hidden": "int16x8"})
    assert lines["latency_ms"].predicted == pytest.approx(0.0118 + mixed.latency_ms - uniform.latency_ms)
    assert lines["energy_mj"].predicted == pytest.approx(0.004 + mixed.energy_mj - uniform.energy_mj)
    assert lines["latency_ms"].predicted > 0.0118 and lines["ram_bytes"].predicted > 20000
    assert lines["flash_bytes"] == budgets[0] and lines["ram_bytes"].measured == 19000
    # the latency budget the int8 prediction met is missed by the mixed model's: the verdict follows
    assert budgets[2].fits and lines["latency_ms"].fits is (lines["latency_ms"].predicted <= 0.02)

    result = FitResult(model_path="reg.h5", device="stm32h743", runtime="tflm", status="fits", precision="int8",
                       budgets=tuple(lines.values()), teacher_accuracy=1.0, final_accuracy=0.995,
                       layer_precisions=precisions)
    page = to_markdown(result)
    assert "are the delivered mixed-precision model's" in page and "int16x8" in page
    assert result.to_dict()["predicted_basis"]["latency_ms"].endswith("(mixed model)")
