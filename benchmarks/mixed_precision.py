"""Mixed precision recovers models int8 breaks: error, size and latency cost on a phone and an MCU profile.

    nice -n 10 .venv/bin/python benchmarks/mixed_precision.py

Models (tests/export/test_mixed.py):
- wide_range_regressor: Dense 8-16-16-1, one first-layer channel with values up to ~300 that the next layer
  ignores (int8's 256 steps over that range erase the other channels' values near 1).
- upsampling_regressor: the same with Reshape + bilinear UpSampling2D + Flatten between the first two Dense
  layers, so the wide tensor runs through RESIZE_BILINEAR, which TFLite Micro has no int16 kernel for.
Data: standard-normal inputs; 300 calibration samples, 100 to choose on, 100 held out (the errors below).
Errors are relative RMS of the final output vs Keras on the held-out samples, run by the profile's runtime
(LiteRT for pixel7, TFLite Micro for stm32h743). Latency is the profile's cost model (no phone or board
here); 16x8 layers are priced at the profile's float32 rate (it has no int16x8 rates).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.export.test_mixed import upsampling_regressor, wide_range_regressor

PROFILES = (("pixel7", "litert"), ("stm32h743", "tflm"))


def _relative_rms(found, ref) -> float:
    return float(np.sqrt(np.mean((np.ravel(found) - np.ravel(ref)) ** 2) / np.mean(np.ravel(ref) ** 2)))


def _run(blob: bytes, x: np.ndarray, runtime: str) -> np.ndarray:
    from edgekit.runners import litert, tflm

    return (tflm if runtime == "tflm" else litert).predict(blob, x)


def main() -> None:
    from edgekit.costmodel.latency import estimate_for_profile
    from edgekit.export.mixed import choose_mixed
    from edgekit.export.tflite import convert
    from edgekit.ir.from_keras import from_keras
    from edgekit.profiles import load_profile

    x = np.random.default_rng(0).standard_normal((500, 8)).astype(np.float32)
    calib, choose_on, held_out = x[:300], x[300:400], x[400:]
    print("| model | profile (runtime) | int8 error | mixed error | float32 error | per-layer choice | "
          "size int8 / mixed / float32 B | predicted latency int8 / mixed / float32 us |")
    print("|---|---|---:|---:|---:|---|---|---|")
    for build in (wide_range_regressor, upsampling_regressor):
        model = build()
        ref = model.predict(held_out, verbose=0)
        int8 = convert(model, "int8", calib).tflite_bytes
        float32 = convert(model, "float32").tflite_bytes
        for name, runtime in PROFILES:
            profile = load_profile(name)
            plan = choose_mixed(model, calib, choose_on, runtime=runtime, profile=profile)
            errors = [_relative_rms(_run(b, held_out, runtime), ref) for b in (int8, plan.tflite_bytes, float32)]
            float_ms = estimate_for_profile(from_keras(model), profile, "float32").latency_ms
            choice = ", ".join(f"{n} {p}" for n, p in plan.raised.items()) or "all int8"
            print(f"| {model.name} | {name} ({runtime}) | {errors[0]:.1%} | {errors[1]:.1%} | {errors[2]:.2%} | "
                  f"{choice} | {len(int8)} / {plan.size_bytes} / {len(float32)} | "
                  f"{plan.int8_latency_ms * 1e3:.2f} / {plan.latency_ms * 1e3:.2f} / {float_ms * 1e3:.2f} |")
            for note in plan.notes:
                print(f"  note ({model.name}, {name}): {note}")


if __name__ == "__main__":
    main()
