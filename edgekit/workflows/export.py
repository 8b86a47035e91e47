"""`export`: convert a model to TFLite (+ TFLite Micro C sources for MCU profiles) and check it against Keras.

    >>> import edgekit.workflows.export as ek
    >>> result = ek.export("teacher.h5", "build/teacher.tflite", device="stm32h743", data="val.npz")  # doctest: +SKIP
    >>> result.files, result.check.top1_agreement, result.mcu.arena_constant_bytes                   # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from edgekit.errors import BadInputError, UnsupportedModelError
from edgekit.precisions import TFLM_PRECISIONS
from edgekit.workflows.export_outputs import OutputCheck

DEFAULT_MIN_TOP1 = 0.98            # top-1 agreement with the Keras model below which the check fails
DEFAULT_MAX_RELATIVE_ERROR = 0.05  # regression / autoencoder outputs: mean |error| / largest |output|
CHECK_SAMPLES = 1000
CHECK_FRACTION = 0.2  # of --data held out from int8 calibration to check the conversion on


@dataclass(frozen=True)
class ConversionCheck:
    """The converted model's outputs against the Keras model's on validation (or synthetic) data."""

    samples: int
    on: str                       # "data" or "synthetic"
    max_abs_error: float
    mean_abs_error: float
    top1_agreement: float | None  # None for regression-like outputs
    threshold: str                # what it had to meet
    passed: bool
    keras_accuracy: float | None = None   # the user's model, before any --sparsity / --qat fine-tuning
    tflite_accuracy: float | None = None
    # Models with several inputs or outputs: one check per output (in model.outputs order); the fields
    # above are then the worst over outputs (largest errors, lowest top-1 over class heads).
    outputs: tuple[OutputCheck, ...] = ()


@dataclass(frozen=True)
class ExportResult:
    files: tuple[str, ...]            # every file written, the .tflite first
    tflite_path: str
    precision: str
    runtime: str                      # litert | tflm
    size_bytes: int
    gzip_bytes: int
    calibrated_on: str | None
    check: ConversionCheck
    sparsity: object | None           # edgekit.export.sparse.SparsityVerdict when the model is sparse
    mcu: object | None                # edgekit.export.mcu.McuExport for tflm devices
    qat: object | None                # edgekit.export.qat.QatResult with --qat
    warnings: tuple[str, ...]
    notes: tuple[str, ...]

    def to_dict(self) -> dict:
        """The `edgekit export --json` object."""
        check = self.check
        out = {
            "files": list(self.files), "tflite": self.tflite_path, "precision": self.precision,
            "runtime": self.runtime, "size_bytes": self.size_bytes, "gzip_bytes": self.gzip_bytes,
            "calibrated_on": self.calibrated_on,
            "check": {"samples": check.samples, "on": check.on, "max_abs_error": check.max_abs_error,
                      "mean_abs_error": check.mean_abs_error, "top1_agreement": check.top1_agreement,
                      "threshold": check.threshold, "passed": check.passed, "keras_accuracy": check.keras_accuracy,
                      "tflite_accuracy": check.tflite_accuracy},
            "warnings": list(self.warnings), "notes": list(self.notes),
        }
        if check.outputs:
            out["check"]["outputs"] = {o.name: o.to_dict() for o in check.outputs}
        if self.sparsity is not None:
            verdict = self.sparsity
            out["sparsity"] = {"summary": verdict.summary, "exploited_by": list(verdict.exploited_by),
                               "xnnpack_eligible": verdict.xnnpack_eligible, "notes": list(verdict.notes),
                               "weights": [{"op": w.op, "layer": w.layer, "dtype": w.dtype, "encoding": w.encoding,
                                            "densified_at_load": w.densified_at_load,
                                            "zero_fraction": round(w.zero_fraction, 4)} for w in verdict.weights]}
        if self.mcu is not None:
            mcu = self.mcu
            out["mcu"] = {"ops": list(mcu.ops), "arena_bytes": mcu.arena_bytes,
                          "arena_recorded_bytes": mcu.recorded_arena_bytes,
                          "arena_constant_bytes": mcu.arena_constant_bytes,
                          "weight_bytes": mcu.strip.after.weight_bytes,
                          "overhead_bytes": mcu.strip.after.overhead_bytes,
                          "unstripped_bytes": mcu.strip.before.total_bytes, "stripped": list(mcu.strip.removed),
                          "memory_optimisation": mcu.memory.to_dict() if mcu.memory is not None else None,
                          "placement": mcu.placement.to_dict() if mcu.placement is not None else None}
        return out


def export(model_or_path, out: str | os.PathLike, precision: str | None = None, device: str | None = None,
           data=None, int8_io: bool | None = None, qat: bool = False, epochs: int = 2, sparsity: float | None = None,
           sparse: bool | None = None, strict: bool = False, min_top1: float = DEFAULT_MIN_TOP1,
           trust: bool = False, seed: int = 0, memory_opt: bool = True, memory_overlap: bool = False) -> ExportResult:
    """Convert a Keras model for a device, check it against Keras, write it (and MCU sources) atomically.

    precision: float32 | float16 | dynamic_int8 | int8 (default: the device's preferred, else int8).
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
    from edgekit.model_io.atomic import check_target, write_atomically

    if memory_overlap and not memory_opt:
        raise BadInputError("--memory-overlap is a memory optimisation step: drop --no-memory-opt or --memory-overlap")
    profile = optional_profile(device)
    runtime = profile.runtime if profile is not None else "litert"
    precision = _precision(precision, profile, qat)
    if runtime == "tflm" and precision not in TFLM_PRECISIONS:
        raise BadInputError(f"{profile.name} runs TensorFlow Lite Micro, which needs precision int8 or float32, "
                            f"not {precision}")
    int8_io = (runtime == "tflm" and precision == "int8") if int8_io is None else int8_io
    protected = [os.fspath(model_or_path)] if isinstance(model_or_path, (str, os.PathLike)) else []
    target = check_target(out, protected)
    if not target.endswith(".tflite"):
        raise BadInputError(f"{out}: the output file must end in .tflite")
    from pathlib import Path

    from edgekit.model_io.outdir import probe_writable

    # full disk / no permission: now, not after conversion
    probe_writable(Path(os.path.dirname(target)), os.fspath(out))
    model, _ = load_keras(model_or_path, trust=trust)
    original = model
    train, val = _data(data, model)
    notes: list[str] = []
    if (qat or sparsity is not None) and _several_io(model):
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
    check = _check(original, to_convert, result.tflite_bytes, val, precision, min_top1, seed)
    if not check.passed:
        message = (f"conversion check failed: {_describe(check)}; try --qat, more calibration --data, or a "
                   "higher precision")
        if strict:
            raise UnsupportedModelError(message)
        notes.append("WARNING " + message)
    if check.on == "synthetic":
        notes.append("no --data: checked on synthetic inputs only, accuracy on real data is unverified")

    files: dict[str, bytes | str] = {}
    mcu = None
    tflite_bytes = result.tflite_bytes
    if runtime == "tflm":
        from edgekit.export.mcu import build_mcu_sources

        stem = os.path.splitext(os.path.basename(target))[0]
        mcu = build_mcu_sources(tflite_bytes, stem, keras_model=model,
                                check_data=_mcu_check_data(model, val), memory_plan=memory_opt,
                                memory_overlap=memory_overlap, share_vectors=memory_opt,
                                ram_regions=profile.ram_regions, profile_name=profile.name)
        tflite_bytes = mcu.tflite_bytes
        directory = os.path.dirname(target)
        files[target] = tflite_bytes
        for name, text in mcu.files.items():
            files[os.path.join(directory, name if name != "main.cc" else f"{stem}_main.cc")] = text
        notes += list(mcu.notes)
    else:
        files[target] = tflite_bytes
    verdict = None
    if sparse or sparsity is not None or is_sparse(model):
        verdict = sparsity_verdict(tflite_bytes, [layer.name for layer in model.layers], runtime)
    written = write_atomically(files, protected)
    return ExportResult(
        files=written, tflite_path=target, precision=precision, runtime=runtime, size_bytes=len(tflite_bytes),
        gzip_bytes=gzip_bytes(tflite_bytes), calibrated_on=result.calibrated_on, check=check, sparsity=verdict,
        mcu=mcu, qat=qat_result, warnings=result.warnings, notes=tuple(notes))


def optional_profile(device: str | None):
    """The named profile, or None without a device."""
    from edgekit.profiles import load_profile

    return None if device is None else load_profile(device)


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


def _data(data, model):
    """(train, val) Datasets from a path or (x, y), checked against the model's input; (None, None) without.

    Several inputs or outputs: NamedSamples (see `export`'s data for the layout)."""
    if data is None:
        return None, None
    if _several_io(model):
        from edgekit.workflows.export_outputs import named_samples

        return named_samples(data, model, CHECK_FRACTION)
    from edgekit.data import as_dataset, split

    dataset = as_dataset(data, model.input_shape)
    if len(dataset) < 10:
        return dataset, dataset
    return split(dataset, val_fraction=CHECK_FRACTION, seed=0)


def _is_regression(model) -> bool:
    out, inp = tuple(model.output_shape[1:]), tuple(model.input_shape[1:])
    return out == inp or (len(out) >= 1 and out[-1] == 1)


def _check(original, converted_from, tflite_bytes: bytes, val, precision: str, min_top1: float,
           seed: int) -> ConversionCheck:
    """TFLite outputs vs the Keras model they were converted from (QAT: the fake-quant model)."""
    from edgekit.runners.agreement import agreement
    from edgekit.runners.litert import predict

    if _several_io(converted_from):
        from edgekit.workflows.export_outputs import check_outputs

        samples, on, checks = check_outputs(original, converted_from, tflite_bytes, val, min_top1,
                                            DEFAULT_MAX_RELATIVE_ERROR, CHECK_SAMPLES, seed)
        tops = [c.top1_agreement for c in checks if c.top1_agreement is not None]
        return ConversionCheck(samples, on, max(c.max_abs_error for c in checks),
                               max(c.mean_abs_error for c in checks), min(tops) if tops else None,
                               "every output passes its own check", all(c.passed for c in checks), outputs=checks)

    if val is not None:
        x, y, on = val.x[:CHECK_SAMPLES], (val.y[:CHECK_SAMPLES] if val.y is not None else None), "data"
    else:
        shape = tuple(int(d) for d in converted_from.input_shape[1:])
        x, y, on = np.random.default_rng(seed).standard_normal((200, *shape)).astype(np.float32), None, "synthetic"
    reference = converted_from.predict(x, verbose=0, batch_size=256)
    outputs = predict(tflite_bytes, x)
    found = agreement(reference, outputs)
    keras_accuracy = tflite_accuracy = None
    if y is not None and np.asarray(y).ndim == 1 and reference.ndim == 2 and reference.shape[1] > 1:
        labels = np.asarray(y).astype(np.int64)
        keras_accuracy = float(np.mean(original.predict(x, verbose=0, batch_size=256).argmax(1) == labels))
        tflite_accuracy = float(np.mean(outputs.argmax(1) == labels))
    if _is_regression(converted_from):
        relative = found.mean_abs_error / (found.reference_max_abs or 1.0)
        passed = bool(np.isfinite(relative) and relative <= DEFAULT_MAX_RELATIVE_ERROR)
        threshold = f"mean |error| <= {DEFAULT_MAX_RELATIVE_ERROR:.0%} of the largest |output|"
        top1 = None
    else:
        top1 = found.top1_agreement
        passed = bool(top1 >= min_top1 and np.isfinite(found.max_abs_error))
        threshold = f"top-1 agreement >= {min_top1:.0%}"
    return ConversionCheck(found.n_samples, on, found.max_abs_error, found.mean_abs_error, top1, threshold, passed,
                           keras_accuracy, tflite_accuracy)


def _several_io(model) -> bool:
    return len(model.inputs) > 1 or len(model.outputs) > 1


def _mcu_check_data(model, val):
    if val is None:
        return None
    if _several_io(model):  # by name: the converter orders a flatbuffer's inputs its own way
        return {name: x[:32] for name, x in zip(model.input_names, val.x)}
    return val.x[:32]


def _describe(check: ConversionCheck) -> str:
    if check.outputs:
        return "; ".join(f"output {o.name!r} {o.kind}: " + (
            f"top-1 agreement {o.top1_agreement:.1%}, " if o.top1_agreement is not None else "")
            + f"max |error| {o.max_abs_error:.3g}, mean {o.mean_abs_error:.3g} (needs {o.threshold})"
            for o in check.outputs if not o.passed) + f" on {check.samples} samples"
    agree = f"top-1 agreement {check.top1_agreement:.1%}, " if check.top1_agreement is not None else ""
    return f"{agree}max |error| {check.max_abs_error:.3g} on {check.samples} samples (needs {check.threshold})"
