"""`export`: convert a model to TFLite (+ TFLite Micro C sources for MCU profiles) and check it against Keras.

    >>> import edgekit.workflows.export as ek
    >>> result = ek.export("teacher.h5", "build/teacher.tflite", device="stm32h743", data="val.npz")  # doctest: +SKIP
    >>> result.files, result.check.top1_agreement, result.mcu.arena_constant_bytes                   # doctest: +SKIP

precision "mixed" (per-layer int8 / int16x8 / float32 until a held-out error target is met) is
edgekit.workflows.export_mixed, reached through `export(..., precision="mixed", max_error=0.05)`. The result
types, the data split, the check and the delivery live in edgekit.workflows.export_common.
"""

from __future__ import annotations

import os

from edgekit.errors import BadInputError, UnsupportedModelError
from edgekit.precisions import MIXED, TFLM_PRECISIONS
from edgekit.workflows.export_common import (  # noqa: F401 - re-exported: callers import them from here
    CHECK_FRACTION,
    CHECK_SAMPLES,
    DEFAULT_MAX_RELATIVE_ERROR,
    DEFAULT_MIN_TOP1,
    ConversionCheck,
    ExportResult,
    check_conversion,
    check_memory_options,
    deliver,
    optional_profile,
    output_target,
    several_io,
    split_data,
)


def export(model_or_path, out: str | os.PathLike, precision: str | None = None, device: str | None = None,
           data=None, int8_io: bool | None = None, qat: bool = False, epochs: int = 2, sparsity: float | None = None,
           sparse: bool | None = None, strict: bool = False, min_top1: float = DEFAULT_MIN_TOP1,
           trust: bool = False, seed: int = 0, memory_opt: bool = True, memory_overlap: bool = False,
           max_error: float | None = None) -> ExportResult:
    """Convert a Keras model for a device, check it against Keras, write it (and MCU sources) atomically.

    precision: float32 | float16 | dynamic_int8 | int8 (default: the device's preferred, else int8), or mixed:
    per-layer precisions until the held-out relative RMS output error is at most max_error
    (edgekit.workflows.export_mixed.export_mixed, which takes the other arguments but qat / sparsity).
    data: a path (.npz / .npy / image folder) or (x, y) arrays: calibration, fine-tuning and the check.
    A model with several inputs or outputs takes an .npz (or a dict of arrays) with one array per input,
    named after the Keras input or x0, x1, ... in model.inputs order, and labels y_<output name> (y for
    a lone output), or (inputs, labels) with inputs a list / dict and labels a dict by output name; it
    is calibrated per input and checked per output.
    qat: quantization-aware fine-tune (needs data) before an int8 conversion. sparsity: prune that share
    of the weights with tfmot first; sparse: use the converter's sparse weight encoding (default: when
    the model has sparse weights and the target is LiteRT). strict: raise when the check fails.
    memory_opt (TFLM devices): share repeated quantisation vectors, then keep edgekit's operator order and
    offline memory plan where TFLM proves them (smaller measured arena, bit-identical outputs).
    memory_overlap: also try outputs overlapping their dying input (relies on the reference kernels'
    write order, not verified against CMSIS-NN).
    """
    from edgekit.export import tflite
    from edgekit.export.sparse import gzip_bytes, is_sparse, sparsify_for_export, sparsity_verdict
    from edgekit.model_io import load_keras

    if precision == MIXED:
        from edgekit.workflows.export_mixed import export_mixed

        if qat or sparsity is not None:
            raise BadInputError("--precision mixed quantises per layer after training: drop --qat / --sparsity")
        return export_mixed(model_or_path, out, device=device, data=data, max_error=max_error, int8_io=int8_io,
                            strict=strict, min_top1=min_top1, trust=trust, seed=seed, memory_opt=memory_opt,
                            memory_overlap=memory_overlap)
    if max_error is not None:
        raise BadInputError("--max-error is the target of --precision mixed; add --precision mixed or drop it")
    check_memory_options(memory_opt, memory_overlap)
    profile = optional_profile(device)
    runtime = profile.runtime if profile is not None else "litert"
    precision = _precision(precision, profile, qat)
    if runtime == "tflm" and precision not in TFLM_PRECISIONS:
        raise BadInputError(f"{profile.name} runs TensorFlow Lite Micro, which needs precision int8 or float32, "
                            f"not {precision}")
    int8_io = (runtime == "tflm" and precision == "int8") if int8_io is None else int8_io
    target, protected = output_target(model_or_path, out)
    model, _ = load_keras(model_or_path, trust=trust)
    original = model
    train, val = split_data(data, model)
    notes: list[str] = []
    if (qat or sparsity is not None) and several_io(model):
        raise BadInputError(f"model {model.name!r} has {len(model.inputs)} inputs and {len(model.outputs)} outputs: "
                            "--qat and --sparsity fine-tune single-input, single-output models only; drop them")

    if sparsity is not None:
        pruned = sparsify_for_export(model, sparsity, data=(train.x, train.y) if train is not None else None,
                                     epochs=epochs, seed=seed)
        model = pruned.model
        notes += [f"sparsity: {pruned.sparsity:.1%} of conv/dense weights zero", *pruned.notes]
    qat_result = None
    if qat:
        if train is None:
            raise BadInputError("--qat fine-tunes the model: pass --data with training samples")
        from edgekit.export.qat import quantize_aware

        qat_result = quantize_aware(model, train.x, train.y, epochs=epochs, seed=seed)
        notes += list(qat_result.notes)
    if sparse is None:
        sparse = runtime == "litert" and is_sparse(model)
    if sparse and runtime == "tflm":
        notes.append("sparse weight encoding not used: TensorFlow Lite Micro has no sparse kernels or DENSIFY")
        sparse = False
    to_convert = qat_result.model if qat_result is not None else model
    calibration = train.x if train is not None else None
    result = tflite.convert(to_convert, precision, calibration, int8_io=int8_io, seed=seed, sparse=sparse)
    check = check_conversion(original, to_convert, result.tflite_bytes, val, precision, min_top1, seed)
    if not check.passed:
        message = (f"conversion check failed: {_describe(check)}; try --qat, more calibration --data, or a "
                   "higher precision")
        if strict:
            raise UnsupportedModelError(message)
        notes.append("WARNING " + message)
    if check.on == "synthetic":
        notes.append("no --data: checked on synthetic inputs only, accuracy on real data is unverified")

    written, tflite_bytes, mcu, mcu_notes = deliver(result.tflite_bytes, target, protected, model, val, profile,
                                                    memory_opt, memory_overlap)
    notes += mcu_notes
    verdict = None
    if sparse or sparsity is not None or is_sparse(model):
        verdict = sparsity_verdict(tflite_bytes, [layer.name for layer in model.layers], runtime)
    return ExportResult(
        files=written, tflite_path=target, precision=precision, runtime=runtime, size_bytes=len(tflite_bytes),
        gzip_bytes=gzip_bytes(tflite_bytes), calibrated_on=result.calibrated_on, check=check, sparsity=verdict,
        mcu=mcu, qat=qat_result, warnings=result.warnings, notes=tuple(notes))


def _precision(precision: str | None, profile, qat: bool) -> str:
    from edgekit.precisions import PRECISIONS

    if qat:
        if precision not in (None, "int8"):
            raise BadInputError(f"--qat produces an int8 model; drop --precision {precision}")
        return "int8"
    if precision is None:
        preferred = profile.precision_preferred if profile is not None else "int8"
        return preferred if preferred in PRECISIONS else "int8"
    if precision not in PRECISIONS:
        raise BadInputError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    return precision


def _describe(check: ConversionCheck) -> str:
    if check.outputs:
        return "; ".join(f"output {o.name!r} {o.kind}: " + (
            f"top-1 agreement {o.top1_agreement:.1%}, " if o.top1_agreement is not None else "")
            + f"max |error| {o.max_abs_error:.3g}, mean {o.mean_abs_error:.3g} (needs {o.threshold})"
            for o in check.outputs if not o.passed) + f" on {check.samples} samples"
    agree = f"top-1 agreement {check.top1_agreement:.1%}, " if check.top1_agreement is not None else ""
    return f"{agree}max |error| {check.max_abs_error:.3g} on {check.samples} samples (needs {check.threshold})"
