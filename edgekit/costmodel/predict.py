"""Predicted figures per budget and their check against a device's budgets (pure).

Estimates per budget: flash = predicted .tflite size at the profile's preferred precision; RAM = the
predicted TFLite Micro arena (tflm profiles) or the planned activation arena plus the runtime's fixed
overhead (litert); latency and energy from `edgekit.costmodel.latency`.
"""

from __future__ import annotations

from edgekit.budgets import BUDGET_KEYS, BudgetLine
from edgekit.costmodel.analysis import Analysis
from edgekit.costmodel.latency import estimate_for_profile

STRIP_FIXED_BYTES = 880
STRIP_BYTES_PER_TENSOR = 41
STRIP_BYTES_PER_OP = 34


def predicted_costs(analysis: Analysis, profile, precision: str | None = None,
                    memory_opt: bool = True) -> dict[str, tuple[float, str]]:
    """budget key -> (estimate, basis) at `precision` (default: the profile's preferred one).

    memory_opt (tflm, int8): the arena with edgekit's operator order and offline memory plan, as `edgekit
    export` and `fit` store them by default (no output overlap, which is opt-in).
    """
    precision = precision or profile.precision_preferred
    size = analysis.tflite_bytes[precision]
    flash = size.flash_bytes
    flash_basis = f"predicted {precision} .tflite size"
    if profile.runtime == "tflm":
        # MCU exports are stripped of tensor names, signatures and metadata (edgekit.export.strip); fitted
        # on 8 int8 models (teacher widths 8-64, Conv1D net, DS-CNN, ResNet-8, MLP, autoencoder): saves
        # 880 B + 41 B per tensor - 34 B per op (the op table entries it re-packs), 1.5-1.8 KB in all.
        flash -= max(0, STRIP_FIXED_BYTES + STRIP_BYTES_PER_TENSOR * size.n_tensors - STRIP_BYTES_PER_OP * size.n_ops)
        flash_basis = f"predicted {precision} .tflite size, stripped for TFLM"
        arena = analysis.tflm_arena.arena_bytes
        if precision != "int8":  # float kernels: 4-byte activations in the planned head, same persistent tail
            arena = analysis.tflm_arena.tail_bytes + analysis.peak_activation_bytes["float32"]
        ram_basis = "predicted TFLM arena + runtime overhead"
        if memory_opt and precision == "int8":
            arena -= planned_arena_saving_bytes(analysis)
            ram_basis = "predicted TFLM arena with edgekit's memory plan + runtime overhead"
        ram = arena + profile.cost_model.runtime_overhead_ram_bytes
    else:
        act = analysis.peak_activation_bytes["int8" if precision == "int8" else "float32"]
        ram = act + profile.cost_model.runtime_overhead_ram_bytes
        ram_basis = "planned activations + runtime overhead"
    lat = estimate_for_profile(analysis.graph, profile, precision, analysis.cost)
    return {
        "flash_bytes": (flash, flash_basis),
        "ram_bytes": (ram, ram_basis),
        "latency_ms": (lat.latency_ms, f"cost model ({profile.name}, {precision})"),
        "energy_mj": (lat.energy_mj, "latency x active power"),
    }


def planned_arena_saving_bytes(analysis: Analysis) -> int:
    """Arena bytes edgekit's operator order + offline plan save over TFLM's greedy planner (int8 model).

    Only the head (activations) shrinks; when the planner's bookkeeping floor sets the head instead
    (thin models, edgekit.costmodel.size), nothing is saved.
    """
    from edgekit.costmodel.arena_plan import predict_planned_arena

    estimate = analysis.tflm_arena
    if estimate.arena_bytes - estimate.tail_bytes > estimate.head_bytes:
        return 0
    planned = predict_planned_arena(analysis.graph, overlap=False)
    return max(0, planned.tflm_bytes - planned.peak_bytes)


def check_budgets(analysis: Analysis, profile, budgets, precision: str | None = None) -> list[BudgetLine]:
    costs = predicted_costs(analysis, profile, precision)
    limits = budgets.as_dict()
    return [BudgetLine(k, limits.get(k), costs[k][0], costs[k][1]) for k in BUDGET_KEYS]
