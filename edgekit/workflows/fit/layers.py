"""Per-layer work of a fit: mixed precision when int8 loses the accuracy budget, and the per-layer error table.

    >>> mixed = try_mixed(ctx, student, calibration, int8_score)        # doctest: +SKIP
    >>> table = layer_table(student, tflite_bytes, x_val, "tflm")       # doctest: +SKIP

`try_mixed` raises the layers int8 hurts most to int16x8 or float32 (edgekit.export.mixed.mixed_for_device, the
choice `edgekit export --precision mixed` makes too), only at precisions whose kernels the profile's runtime has,
within the flash size and the cost model's latency budget, and scores the result with the task's metric on the
validation data. `layer_table` is `edgekit validate`'s comparison (edgekit.export.layer_outputs) of the delivered
model with the Keras model it came from, on a bounded validation sample, for the report. `layer_report` also
re-prices the Budgets table's predicted latency, energy and RAM for a delivered mixed model (the plan priced it
all-int8).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekit.errors import BadInputError, UnsupportedModelError
from edgekit.workflows.fit.report import LayerRow, LayerTable

VALIDATION_SAMPLES = 100


@dataclass(frozen=True)
class MixedOutcome:
    tflite_bytes: bytes
    score: float                          # the task metric on the validation data
    layer_precisions: dict                # layer -> int8 | int16x8 | float32, every matched layer
    notes: tuple[str, ...]


def try_mixed(ctx, student, calibration: np.ndarray, int8_score: float) -> MixedOutcome | None:
    """Per-layer mixed precision for a model int8 hurts, scored by the task; None when it cannot be built."""
    from edgekit.export.mixed import mixed_for_device
    from edgekit.workflows.fit.context import predict_outputs, score_outputs

    if len(ctx.task.heads) > 1:
        return None
    ctx.progress.say(f"quantize: int8 lost accuracy the budget cannot spare: per-layer int16x8 / float32 where "
                     f"{ctx.profile.runtime} has the kernels")
    try:
        # chosen on training samples calibration did not use, so the validation score below stays held out
        plan = mixed_for_device(student, ctx.data.x_train, ctx.data.x_val, ctx.profile, ctx.limits,
                                calibration_samples=len(calibration))
    except (UnsupportedModelError, BadInputError) as exc:
        ctx.progress.say(f"quantize: per-layer mixed precision not possible ({exc})")
        return None
    score = score_outputs(ctx, predict_outputs(ctx, plan.tflite_bytes, ctx.data.x_val))
    precisions = {c.layer: c.precision for c in plan.choices}
    raised = ", ".join(f"{n} {p}" for n, p in plan.raised.items()) or "none"
    latency = ("" if plan.latency_ms is None else
               f"; predicted latency {plan.latency_ms - plan.int8_latency_ms:+.4f} ms with {len(plan.conversions)} "
               f"QUANTIZE/DEQUANTIZE ({plan.latency_basis})")
    io = "integer" if plan.integer_io else "float32"
    note = (f"per-layer mixed precision: raised {raised}; output RMS error {plan.int8_output.relative_rms:.1%} -> "
            f"{plan.output.relative_rms:.1%}; {ctx.task.metric} {int8_score:.4f} -> {score:.4f}; "
            f"{plan.size_bytes:,} B before MCU stripping, {io} input/output{latency}")
    return MixedOutcome(plan.tflite_bytes, score, precisions, (note, *plan.notes[:3]))


def layer_table(model, tflite_bytes: bytes, x: np.ndarray, runtime: str,
                samples: int = VALIDATION_SAMPLES) -> LayerTable | None:
    """`edgekit validate`'s per-layer comparison on up to `samples` validation samples (None when the model has
    several inputs or outputs, or the runtime cannot run it)."""
    from edgekit.export.layer_outputs import layer_errors

    x = np.asarray(x, np.float32)
    if len(model.inputs) != 1 or len(model.outputs) != 1 or len(x) == 0:
        return None
    x = x[np.linspace(0, len(x) - 1, min(samples, len(x))).astype(int)]
    try:
        errors = layer_errors(model, tflite_bytes, x, runtime)
    except (UnsupportedModelError, BadInputError) as exc:  # the table adds to the report, never fails the fit
        return LayerTable(runtime, len(x), (), float("nan"), float("nan"), f"per-layer comparison failed: {exc}")
    rows = tuple(LayerRow(e.layer, e.dtype, e.stats.mse, e.stats.cosine, e.stats.max_abs, e.stats.snr_db)
                 for e in errors.layers)
    note = "" if rows else "no tensor names match a layer (names stripped): only the final output is compared"
    return LayerTable(runtime, len(x), rows, errors.output.snr_db, errors.output.cosine, note)


QUANTIZED_FILE = "model.quantized.tflite"      # the quantised model before the MCU export strips its names
PRECISIONS_FILE = "layer_precisions.json"      # {layer: precision} when the round's model is mixed, else {}


def keep_quantized(workspace, tflite_bytes: bytes, layer_precisions: dict) -> None:
    """Keep what the report's per-layer sections need from this round (both are round files)."""
    import json

    from edgekit.workflows.fit.workspace import write_bytes, write_text

    write_bytes(workspace.path(QUANTIZED_FILE), tflite_bytes)
    write_text(workspace.path(PRECISIONS_FILE), json.dumps(layer_precisions))


def layer_report(ctx, workspace, budgets: tuple = ()) -> dict:
    """FitResult fields of the delivered round: its per-layer precisions and per-layer error table, and
    `budgets` (the result's Budgets lines) re-priced when the delivered model is mixed."""
    import json

    from edgekit.model_io import load_model

    precisions_path, tflite_path = workspace.path(PRECISIONS_FILE), workspace.path(QUANTIZED_FILE)
    precisions = json.loads(precisions_path.read_text()) if precisions_path.exists() else {}
    if not tflite_path.exists():
        return {"layer_precisions": precisions}
    model = load_model(workspace.path("model.h5")).keras_model
    repriced = {"budgets": mixed_budgets(budgets, model, ctx.profile, precisions)} if budgets else {}
    with ctx.progress.stage("validate", f"per-layer error of the delivered model vs Keras on {ctx.profile.runtime}"
                                        f" ({VALIDATION_SAMPLES} validation samples at most)") as note:
        table = layer_table(model, tflite_path.read_bytes(), ctx.data.x_val, ctx.profile.runtime)
        if table is not None:
            note.append(f"output SNR {table.output_snr_db:.1f} dB" + (f"; worst layer {table.rows[0].layer} "
                                                                      f"{table.rows[0].snr_db:.1f} dB" if table.rows
                                                                      else ""))
    return {"layer_precisions": precisions, "layer_table": table, **repriced}


def mixed_budgets(budgets: tuple, model, profile, precisions: dict) -> tuple:
    """The Budgets lines with the mixed model's predicted latency, energy and RAM (the plan's prediction plus
    what the raised layers and their conversions change in the cost model); unchanged without raised layers."""
    from dataclasses import replace

    from edgekit.costmodel.analysis import analyze_graph
    from edgekit.costmodel.predict import predicted_costs
    from edgekit.ir.from_keras import from_keras

    raised = {n: p for n, p in precisions.items() if p != "int8"}
    if not raised:
        return tuple(budgets)
    analysis = analyze_graph(from_keras(model))
    uniform, mixed = (predicted_costs(analysis, profile, "int8", layer_precisions=lp) for lp in (None, raised))
    out = []
    for line in budgets:
        if line.budget in ("latency_ms", "energy_mj", "ram_bytes") and line.predicted is not None:
            value = line.predicted + mixed[line.budget][0] - uniform[line.budget][0]
            line = replace(line, predicted=value, basis=f"{mixed[line.budget][1]} (mixed model)")
        out.append(line)
    return tuple(out)
