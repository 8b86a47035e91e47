"""Predicted figures per budget and their check against a device's budgets (pure).

Estimates per budget: flash = predicted .tflite size at the profile's preferred precision; RAM = the
predicted TFLite Micro arena (tflm profiles) or the planned activation arena plus the runtime's fixed
overhead (litert); latency and energy from `edgekit.costmodel.latency`. With per-layer precisions (a mixed
model, edgekit.export.mixed) every figure is the uniform one plus what the raised layers change: their
weights and activations at their own sizes (int16 activations 2 B per element, float 4 B), and the
QUANTIZE / DEQUANTIZE conversions between precisions (an op, a tensor in the arena and in the file, time).
"""

from __future__ import annotations

from edgekit.budgets import BUDGET_KEYS, BudgetLine
from edgekit.costmodel.analysis import Analysis
from edgekit.costmodel.latency import estimate_for_profile
from edgekit.costmodel.precision_map import activation_peak_bytes, precision_graph
from edgekit.costmodel.size import FLATBUFFER, QUANT_BYTES_PER_CHANNEL

STRIP_FIXED_BYTES = 880
STRIP_BYTES_PER_TENSOR = 41
STRIP_BYTES_PER_OP = 34


def predicted_costs(analysis: Analysis, profile, precision: str | None = None, memory_opt: bool = True,
                    layer_precisions: dict[str, str] | None = None) -> dict[str, tuple[float, str]]:
    """budget key -> (estimate, basis) at `precision` (default: the profile's preferred one).

    memory_opt (tflm, int8): the arena with edgekit's operator order and offline memory plan, as `edgekit
    export` and `fit` store them by default (no output overlap, which is opt-in).
    layer_precisions: {layer: int8 | int16x8 | float32} for the layers of a mixed model at another precision.
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
    lat = estimate_for_profile(analysis.graph, profile, precision, analysis.cost, layer_precisions)
    latency_basis = f"cost model ({profile.name}, {precision})"
    raised = {n: p for n, p in (layer_precisions or {}).items() if p != precision}
    if raised:
        flash_delta, ram_delta = mixed_deltas(analysis, precision, raised)
        flash, ram = flash + flash_delta, ram + ram_delta
        what = f" with {len(raised)} layer(s) at {'/'.join(sorted(set(raised.values())))}"
        flash_basis, ram_basis, latency_basis = (b + what for b in (flash_basis, ram_basis, latency_basis))
    return {
        "flash_bytes": (flash, flash_basis),
        "ram_bytes": (ram, ram_basis),
        "latency_ms": (lat.latency_ms, latency_basis),
        "energy_mj": (lat.energy_mj, "latency x active power"),
    }


def mixed_deltas(analysis: Analysis, precision: str, layer_precisions: dict[str, str]) -> tuple[int, int]:
    """(flash bytes, activation arena bytes) a per-layer precision map adds to the model at `precision`:
    the raised layers' weights at their precision, each conversion's tensor (flatbuffer overhead and
    quantisation parameters), and the greedy-planned arena with every tensor at its stored type."""
    graph = analysis.graph
    weights = {c.name: c.weight_bytes for c in analysis.cost.layers}
    flash = sum(weights[n].at(p) - weights[n].at(precision) for n, p in layer_precisions.items() if n in weights)
    mixed = precision_graph(graph, precision, layer_precisions)
    uniform = precision_graph(graph, precision)
    added = len(mixed.conversions) - len(uniform.conversions)
    flash += round(added * (FLATBUFFER["int8"].per_tensor_bytes + QUANT_BYTES_PER_CHANNEL))
    return flash, activation_peak_bytes(mixed) - activation_peak_bytes(uniform)


PREDICT_ORDER_STATES = 2_000  # operator-order search states per predicted plan (edgekit.costmodel.schedule)


def planned_arena_saving_bytes(analysis: Analysis) -> int:
    """Arena bytes edgekit's operator order + offline plan save over TFLM's greedy planner (int8 model).

    Only the head (activations) shrinks; when the planner's bookkeeping floor sets the head instead
    (thin models, edgekit.costmodel.size), nothing is saved.
    """
    from edgekit.costmodel.arena_plan import predict_planned_arena

    estimate = analysis.tflm_arena
    if estimate.arena_bytes - estimate.tail_bytes > estimate.head_bytes:
        return 0
    # The planner asks this of every candidate it scores (hundreds on a big model): first fit over the heuristic
    # orders and a tenth of the order search (chain-like CNNs stay exact) predict the saving, which they can only
    # under-state; the export's plan runs the full searches once. NASNetMobile plan-mcu: > 600 s before.
    planned = predict_planned_arena(analysis.graph, overlap=False, search_nodes=0, order_states=PREDICT_ORDER_STATES)
    return max(0, planned.tflm_bytes - planned.peak_bytes)


def check_budgets(analysis: Analysis, profile, budgets, precision: str | None = None) -> list[BudgetLine]:
    costs = predicted_costs(analysis, profile, precision)
    limits = budgets.as_dict()
    return [BudgetLine(k, limits.get(k), costs[k][0], costs[k][1]) for k in BUDGET_KEYS]
