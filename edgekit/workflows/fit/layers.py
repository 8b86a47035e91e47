"""Per-layer work of a fit: mixed precision when int8 loses the accuracy budget, and the per-layer error table.

    >>> mixed = try_mixed(ctx, student, calibration, int8_score)        # doctest: +SKIP
    >>> table = layer_table(student, tflite_bytes, x_val, "tflm")       # doctest: +SKIP

`try_mixed` raises the layers int8 hurts most to int16x8 or float32 (edgekit.export.mixed.choose_mixed),
only at precisions whose kernels the profile's runtime has, within the flash size and the cost model's
latency budget, and scores the result with the task's metric on the validation data. `layer_table` is
`edgekit validate`'s comparison (edgekit.export.layer_outputs) of the delivered model with the Keras model it
came from, on a bounded validation sample, for the report.
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
    from edgekit.export.mixed import choose_mixed
    from edgekit.workflows.fit.context import predict_outputs, score_outputs

    if len(ctx.task.heads) > 1:
        return None
    ctx.progress.say(f"quantize: int8 lost accuracy the budget cannot spare: per-layer int16x8 / float32 where "
                     f"{ctx.profile.runtime} has the kernels")
    try:
        # chosen on training samples calibration did not use, so the validation score below stays held out
        spare = np.asarray(ctx.data.x_train[len(calibration):len(calibration) + 200])
        choose_on = spare if len(spare) >= 50 else ctx.data.x_val
        plan = choose_mixed(student, calibration, choose_on, runtime=ctx.profile.runtime, profile=ctx.profile,
                            max_size_bytes=ctx.limits.get("flash_bytes"), max_latency_ms=ctx.limits.get("latency_ms"),
                            whole_model_fallback=False)
    except (UnsupportedModelError, BadInputError) as exc:
        ctx.progress.say(f"quantize: per-layer mixed precision not possible ({exc})")
        return None
    score = score_outputs(ctx, predict_outputs(ctx, plan.tflite_bytes, ctx.data.x_val))
    precisions = {c.layer: c.precision for c in plan.choices}
    raised = ", ".join(f"{n} {p}" for n, p in plan.raised.items()) or "none"
    latency = ("" if plan.latency_ms is None else
               f", predicted {plan.int8_latency_ms:.3f} -> {plan.latency_ms:.3f} ms ({ctx.profile.name} cost model)")
    note = (f"per-layer mixed precision: raised {raised}; output RMS error {plan.int8_output.relative_rms:.1%} -> "
            f"{plan.output.relative_rms:.1%}; {ctx.task.metric} {int8_score:.4f} -> {score:.4f}; "
            f"{plan.int8_size_bytes:,} -> {plan.size_bytes:,} B{latency}")
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


def layer_report(ctx, workspace) -> dict:
    """FitResult fields of the delivered round: its per-layer precisions and per-layer error table."""
    import json

    from edgekit.model_io import load_model

    precisions_path, tflite_path = workspace.path(PRECISIONS_FILE), workspace.path(QUANTIZED_FILE)
    precisions = json.loads(precisions_path.read_text()) if precisions_path.exists() else {}
    if not tflite_path.exists():
        return {"layer_precisions": precisions}
    model = load_model(workspace.path("model.h5")).keras_model
    with ctx.progress.stage("validate", f"per-layer error of the delivered model vs Keras on {ctx.profile.runtime}"
                                        f" ({VALIDATION_SAMPLES} validation samples at most)") as note:
        table = layer_table(model, tflite_path.read_bytes(), ctx.data.x_val, ctx.profile.runtime)
        if table is not None:
            note.append(f"output SNR {table.output_snr_db:.1f} dB" + (f"; worst layer {table.rows[0].layer} "
                                                                      f"{table.rows[0].snr_db:.1f} dB" if table.rows
                                                                      else ""))
    return {"layer_precisions": precisions, "layer_table": table}
