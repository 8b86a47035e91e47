"""What every `export` shares: the result types, the data split, the conversion check, the output target and
the atomic (MCU-aware) delivery. `edgekit.workflows.export` (one precision) and `edgekit.workflows.export_mixed`
(per-layer precisions) both build on it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from edgekit.errors import BadInputError
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
    mixed: object | None = None       # edgekit.workflows.export_mixed.MixedExport for precision "mixed"

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
        if self.mixed is not None:
            out["mixed"] = self.mixed.to_dict()
        return out


def check_memory_options(memory_opt: bool, memory_overlap: bool) -> None:
    if memory_overlap and not memory_opt:
        raise BadInputError("--memory-overlap is a memory optimisation step: drop --no-memory-opt or --memory-overlap")


def output_target(model_or_path, out) -> tuple[str, list[str]]:
    """(the checked .tflite path, the input files it must not overwrite); fails now on a full disk or no
    permission, not after the conversion."""
    from pathlib import Path

    from edgekit.model_io.atomic import check_target
    from edgekit.model_io.outdir import probe_writable

    protected = [os.fspath(model_or_path)] if isinstance(model_or_path, (str, os.PathLike)) else []
    target = check_target(out, protected)
    if not target.endswith(".tflite"):
        raise BadInputError(f"{out}: the output file must end in .tflite")
    probe_writable(Path(os.path.dirname(target)), os.fspath(out))
    return target, protected


def deliver(tflite_bytes: bytes, target: str, protected: list[str], model, val, profile, memory_opt: bool = True,
            memory_overlap: bool = False) -> tuple[tuple[str, ...], bytes, object | None, list[str]]:
    """Write the model atomically; on TFLM profiles stripped, with its C sources and the measured arena.

    Returns (files written, the .tflite bytes written, the McuExport or None, notes)."""
    from edgekit.model_io.atomic import write_atomically

    files: dict[str, bytes | str] = {}
    mcu, notes = None, []
    if profile is not None and profile.runtime == "tflm":
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
    return tuple(write_atomically(files, protected)), tflite_bytes, mcu, notes


def optional_profile(device: str | None):
    """The named profile, or None without a device."""
    from edgekit.profiles import load_profile

    return None if device is None else load_profile(device)


def split_data(data, model):
    """(train, val) Datasets from a path or (x, y), checked against the model's input; (None, None) without.

    Several inputs or outputs: NamedSamples (see `export`'s data for the layout)."""
    if data is None:
        return None, None
    if several_io(model):
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


def check_conversion(original, converted_from, tflite_bytes: bytes, val, precision: str, min_top1: float,
           seed: int) -> ConversionCheck:
    """TFLite outputs vs the Keras model they were converted from (QAT: the fake-quant model)."""
    from edgekit.runners.agreement import agreement
    from edgekit.runners.litert import predict

    if several_io(converted_from):
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


def several_io(model) -> bool:
    return len(model.inputs) > 1 or len(model.outputs) > 1


def _mcu_check_data(model, val):
    if val is None:
        return None
    if several_io(model):  # by name: the converter orders a flatbuffer's inputs its own way
        return {name: x[:32] for name, x in zip(model.input_names, val.x)}
    return val.x[:32]
