"""`export --precision mixed`: per-layer int8 / int16x8 / float32 until a held-out output error target is met.

    >>> from edgekit.workflows.export import export
    >>> result = export("reg.h5", "build/reg.tflite", precision="mixed", data="train.npz",
    ...                 device="stm32h743", max_error=0.05)                                # doctest: +SKIP
    >>> [(c.layer, c.precision) for c in result.mixed.layers], result.mixed.relative_rms   # doctest: +SKIP

The choice is `edgekit fit`'s (edgekit.export.mixed.mixed_for_device): each layer's sensitivity measured, the
worst raised (alone, then with the layers reading it) to int16x8, else float32, only where the device runtime
really has the kernels (edgekit.export.kernel_probe), within the profile's flash and latency budgets, until the
relative RMS output error is under the target. The --data samples are split as for every export (80 %
calibration and choice, 20 % held out); the delivered file and the all-int8 model it started from are then
measured on the held-out 20 % on the device's runtime (TFLite Micro for MCU profiles, else LiteRT).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgekit.errors import BadInputError, UnsupportedModelError
from edgekit.export.mixed import CHOICE_CALIBRATION_SAMPLES, DEFAULT_MAX_RELATIVE_RMS, LayerChoice
from edgekit.precisions import MIXED
from edgekit.workflows.export_common import (
    CHECK_SAMPLES,
    DEFAULT_MIN_TOP1,
    ExportResult,
    check_conversion,
    check_memory_options,
    deliver,
    optional_profile,
    output_target,
    several_io,
    split_data,
)


@dataclass(frozen=True)
class MixedExport:
    """What the mixed export chose and measured (ExportResult.mixed)."""

    max_relative_rms: float                  # the target (--max-error)
    int8_relative_rms: float                 # held out: the all-int8 model (same quantiser) vs Keras
    relative_rms: float                      # held out: the delivered model vs Keras
    held_out_samples: int
    runtime: str                             # where both were run
    layers: tuple[LayerChoice, ...]          # every layer, model order
    layer_latency_ms: dict                   # layer -> predicted ms at its precision (empty without --device)
    int8_latency_ms: float | None
    latency_ms: float | None
    conversions: tuple[str, ...]             # QUANTIZE / DEQUANTIZE ops the cost model counts
    conversion_ms: float
    latency_basis: str
    int8_size_bytes: int
    size_bytes: int
    float_size_bytes: int
    io_types: tuple[str, str]                # the delivered file's input and output tensor types
    notes: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return self.relative_rms <= self.max_relative_rms

    def to_dict(self) -> dict:
        def snr(value: float) -> float | None:
            return round(value, 2) if math.isfinite(value) else None

        return {"max_relative_rms": self.max_relative_rms, "int8_relative_rms": self.int8_relative_rms,
                "relative_rms": self.relative_rms, "passed": self.passed, "held_out_samples": self.held_out_samples,
                "runtime": self.runtime, "int8_latency_ms": self.int8_latency_ms, "latency_ms": self.latency_ms,
                "conversions": list(self.conversions), "conversion_ms": self.conversion_ms,
                "latency_basis": self.latency_basis, "int8_size_bytes": self.int8_size_bytes,
                "size_bytes": self.size_bytes, "float_size_bytes": self.float_size_bytes,
                "input_type": self.io_types[0], "output_type": self.io_types[1], "notes": list(self.notes),
                "layers": [{"layer": c.layer, "precision": c.precision, "ops": list(c.ops),
                            "alone_float_snr_db": snr(c.alone_float_snr_db), "note": c.note,
                            "predicted_ms": self.layer_latency_ms.get(c.layer)} for c in self.layers]}


def parse_max_error(value) -> float:
    """The held-out relative RMS error target: a number in (0, 1] (0.05 = 5 %); BadInputError otherwise."""
    try:
        target = float(DEFAULT_MAX_RELATIVE_RMS if value is None else value)
    except (TypeError, ValueError):
        target = math.nan
    if not 0.0 < target <= 1.0:
        raise BadInputError(f"--max-error {value!r}: give the held-out relative RMS output error to reach, a number "
                            f"above 0 and at most 1 (default {DEFAULT_MAX_RELATIVE_RMS:g} = "
                            f"{DEFAULT_MAX_RELATIVE_RMS:.0%})")
    return target


def export_mixed(model_or_path, out, device: str | None = None, data=None, max_error: float | None = None,
                 int8_io: bool | None = None, strict: bool = False, min_top1: float = DEFAULT_MIN_TOP1,
                 trust: bool = False, seed: int = 0, memory_opt: bool = True,
                 memory_overlap: bool = False) -> ExportResult:
    """Choose per-layer precisions for a device, write the model (and MCU sources) atomically.

    max_error: held-out relative RMS output error to reach (default 0.05). int8_io: integer input and output at
    the adjacent layers' types (int8, or int16 next to an int16x8 layer; default on TFLM devices), else float32.
    strict: raise (exit 2, nothing written) when the held-out error stays above max_error.
    """
    from edgekit.export.mixed import mixed_for_device
    from edgekit.model_io import load_keras

    target_error = parse_max_error(max_error)
    if data is None:
        raise BadInputError("--precision mixed measures each layer's sensitivity on samples: pass --data "
                            "(.npz / .npy / image folder of inputs)")
    check_memory_options(memory_opt, memory_overlap)
    profile = optional_profile(device)
    runtime = profile.runtime if profile is not None else "litert"
    target, protected = output_target(model_or_path, out)
    model, _ = load_keras(model_or_path, trust=trust)
    if several_io(model):
        raise BadInputError(f"model {model.name!r} has {len(model.inputs)} inputs and {len(model.outputs)} outputs: "
                            "--precision mixed handles one input and one output; use --precision int8")
    train, val = split_data(data, model)
    limits = _limits(profile)
    plan = mixed_for_device(model, train.x, val.x, profile, limits, max_relative_rms=target_error,
                            calibration_samples=CHOICE_CALIBRATION_SAMPLES, integer_io=int8_io)
    held_out = np.asarray(val.x, np.float32)[:CHECK_SAMPLES]
    int8_error, error = (_held_out_error(model, blob, held_out, runtime)
                         for blob in (plan.int8_tflite_bytes, plan.tflite_bytes))
    notes = [*plan.notes, *_io_notes(plan, runtime)]
    if val is train:
        notes.append(f"only {len(train)} samples: the error is measured on the samples the choice used")
    if error > target_error:
        message = (f"held-out relative RMS error {error:.4g} is above --max-error {target_error:g} after raising "
                   f"{len(plan.raised)} of {len(plan.choices)} layers; try more --data, a larger --max-error, or "
                   "--precision float32")
        if strict:
            raise UnsupportedModelError(message)
        notes.append("WARNING " + message)
    check = check_conversion(model, model, plan.tflite_bytes, val, MIXED, min_top1, seed)
    written, tflite_bytes, mcu, mcu_notes = deliver(plan.tflite_bytes, target, protected, model, val, profile,
                                                    memory_opt, memory_overlap)
    mixed = MixedExport(target_error, int8_error, error, len(held_out), runtime, plan.choices, plan.layer_latency_ms,
                        plan.int8_latency_ms, plan.latency_ms, plan.conversions, plan.conversion_ms,
                        plan.latency_basis, plan.int8_size_bytes, plan.size_bytes, plan.float_size_bytes,
                        _io_types(plan.tflite_bytes), tuple(notes))
    from edgekit.export.sparse import gzip_bytes

    return ExportResult(files=written, tflite_path=target, precision=MIXED, runtime=runtime,
                        size_bytes=len(tflite_bytes), gzip_bytes=gzip_bytes(tflite_bytes),
                        calibrated_on=f"{min(len(train), CHOICE_CALIBRATION_SAMPLES)} --data samples", check=check,
                        sparsity=None, mcu=mcu, qat=None, warnings=(), notes=tuple(mcu_notes), mixed=mixed)


def _limits(profile) -> dict:
    from edgekit.budgets import resolve_budgets

    return {} if profile is None else resolve_budgets(profile).as_dict()


def _held_out_error(model, tflite_bytes: bytes, x: np.ndarray, runtime: str) -> float:
    """Relative RMS error of the model's final output on `runtime` vs Keras, in the isolated worker."""
    from edgekit.export.mixed import output_error
    from edgekit.runners.isolated import call_isolated

    reference = np.asarray(model.predict(x, batch_size=256, verbose=0), np.float32)
    stats = call_isolated(output_error, reference, tflite_bytes, x, runtime, what=f"a {len(tflite_bytes)} byte model",
                          stage=f"held-out {runtime} run", timeout_s=600.0)
    return float(stats.relative_rms)


def _io_types(tflite_bytes: bytes) -> tuple[str, str]:
    from edgekit.export.layer_outputs import _litert

    interpreter = _litert(tflite_bytes)
    return (np.dtype(interpreter.get_input_details()[0]["dtype"]).name,
            np.dtype(interpreter.get_output_details()[0]["dtype"]).name)


def _io_notes(plan, runtime: str) -> list[str]:
    input_type, output_type = _io_types(plan.tflite_bytes)
    if plan.integer_io:
        return [(f"input {input_type}, output {output_type}: the types of the layers next to them (quantise the "
                "input with the input tensor's scale and zero point; outputs equal the float-I/O model's)")]
    if runtime == "tflm":
        return [(f"input {input_type}, output {output_type}: float I/O costs a QUANTIZE / DEQUANTIZE and their float "
                "tensors in the arena; --int8-io (the default on TFLM) stores them at the adjacent layers' types")]
    return []
