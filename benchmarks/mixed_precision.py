"""Mixed precision recovers a model int8 breaks: error, size and latency cost on a phone and an MCU profile.

    .venv/bin/python benchmarks/mixed_precision.py

Model: tests/export/test_mixed.py's wide_range_regressor (Dense 8-16-16-1, one first-layer channel with values
up to ~300 that the next layer ignores), 300 calibration and 200 evaluation standard-normal samples.
Latency: the profile's cost model (no phone or board on this host); on LiteRT also measured on this x86
host (1 thread, interleaved medians), which is not the phone.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.export.test_mixed import wide_range_regressor


def main() -> None:
    from edgekit.export.mixed import choose_mixed
    from edgekit.export.tflite import convert
    from edgekit.profiles import load_profile
    from edgekit.runners.litert import interleaved_median_ms

    model = wide_range_regressor()
    x = np.random.default_rng(0).standard_normal((500, 8)).astype(np.float32)
    for runtime, name in (("litert", "pixel7"), ("tflm", "stm32h743")):
        plan = choose_mixed(model, x[:300], x[300:], runtime=runtime, profile=load_profile(name))
        print(f"{name} ({runtime}): int8 output RMS error {plan.int8_output.relative_rms:.1%} "
              f"(SNR {plan.int8_output.snr_db:.1f} dB) -> mixed {plan.output.relative_rms:.1%} "
              f"(SNR {plan.output.snr_db:.1f} dB); layers {plan.raised}")
        print(f"  size: int8 {plan.int8_size_bytes} B, mixed {plan.size_bytes} B, float32 {plan.float_size_bytes} B")
        print(f"  predicted latency: int8 {plan.int8_latency_ms * 1e3:.2f} us, mixed {plan.latency_ms * 1e3:.2f} us")
        if runtime == "litert":
            int8_converter = convert(model, "int8", x[:300]).tflite_bytes
            ms = interleaved_median_ms([int8_converter, plan.tflite_bytes], x[:1], rounds=10, invokes=200)
            print(f"  host x86 LiteRT median: int8 {ms[0] * 1e3:.2f} us, mixed {ms[1] * 1e3:.2f} us")
        for note in plan.notes:
            print(f"  note: {note}")


if __name__ == "__main__":
    main()
