"""Calibrate a LiteRT device's cost model: time micro-benchmarks on this machine, fit the throughput numbers.

The steps of `edgekit calibrate` (`calibrate()` runs them all):

1. Micro-benchmarks (`MICRO_BENCHMARKS`): one-layer models (a few with a second small layer) of varied
   kinds and shapes: convolutions of every size, stems, pointwise, Conv1D, depthwise, dense heads,
   pooling, element-wise; built with tf_keras.
2. Timing (`time_tflite_models`, `measure_micro_benchmarks`; TensorFlow and LiteRT imported inside):
   converts each benchmark at each precision and times single invokes through LiteRT with XNNPACK,
   interleaving the models over many rounds so that other processes' load spreads evenly; the figure kept
   per model is a low percentile (p10) of its invokes, what an unloaded machine gives.
3. Fitting (`edgekit.costmodel.rate_fitting.fit_cost_model`, pure) of `edgekit.costmodel.latency`'s parameters.
4. Writing (`write_profile`): the profile YAML with its cost_model section replaced and a source line.

    >>> result = calibrate("host")                                 # doctest: +SKIP
    >>> write_profile(result.profile.path, "host.yaml", result.cost_model, result.precisions,
    ...               result.source)                                 # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgekit.costmodel.latency import KernelTraits
from edgekit.costmodel.rate_fitting import (
    FitResult,
    FittedCostModel,
    fit_cost_model,
    with_precision_copy,
)
from edgekit.profiles import CostModelParams
from edgekit.workflows.microbenchmarks import MICRO_BENCHMARKS, MicroBenchmark, measure_micro_benchmarks


def schema_has_per_inference_overhead() -> bool:
    """Whether device profiles can store `cost_model.per_inference_overhead_us` yet."""
    return "per_inference_overhead_us" in {f.name for f in dataclasses.fields(CostModelParams)}


def _rate_text(value: float) -> str:
    for suffix, factor in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= factor:
            return f"{value / factor:.4g}{suffix}"
    return f"{value:.4g}"


def cost_model_yaml(model: CostModelParams, precisions: Sequence[str], source: str) -> str:
    """The `cost_model:` section of a profile holding `model`'s numbers, with a source line."""
    lines = ["cost_model:"]
    if schema_has_per_inference_overhead():
        lines.append(f"  per_inference_overhead_us: {getattr(model, 'per_inference_overhead_us', 0.0):.4g}")
    ram = model.runtime_overhead_ram_bytes
    lines += [
        f"  per_op_overhead_us: {model.per_op_overhead_us:.4g}",
        f"  memory_bandwidth_mb_s: {model.memory_bandwidth_mb_s:.0f}",
        f"  runtime_overhead_ram_bytes: {f'{ram >> 20}MB' if ram and ram % (1 << 20) == 0 else ram}",
    ]
    for key, table in (("macs_per_s", model.macs_per_s), ("ops_per_s", model.ops_per_s)):
        lines.append(f"  {key}:")
        for op_class, rates in table.items():
            cells = ", ".join(f"{p}: {_rate_text(rates[p])}" for p in precisions)
            lines.append(f"    {op_class}: {{{cells}}}")
    for key in ("energy_pj_per_mac", "energy_pj_per_byte"):
        if getattr(model, key, None):
            lines.append(f"  {key}: {getattr(model, key):.4g}")
    lines.append("  source: >-")
    words, line = source.split(), "   "
    for word in words:
        if len(line) + len(word) + 1 > 110:
            lines.append(line)
            line = "   "
        line += " " + word
    lines.append(line)
    return "\n".join(lines) + "\n"


def write_profile(
    base_path: Path,
    out_path: Path,
    model: CostModelParams,
    precisions: Sequence[str],
    source: str,
    threads: int | None = None,
) -> Path:
    """Write `base_path`'s profile with its cost_model section replaced (and cpu.threads set) to `out_path`.

    Other sections, comments and layout are kept. The result is validated by loading it; the file is
    written to a temporary name first and moved into place, so a failure leaves `out_path` untouched.
    """
    import os
    import re

    from edgekit.profiles import load_profile

    text = Path(base_path).read_text(encoding="utf-8")
    match = re.search(r"^cost_model:.*?(?=^\S|\Z)", text, flags=re.DOTALL | re.MULTILINE)
    if match is None:
        raise ValueError(f"{base_path}: no cost_model section to replace")
    text = text[: match.start()] + cost_model_yaml(model, precisions, source) + "\n" + text[match.end() :]
    if threads is not None:
        text = re.sub(r"^(  threads:)\s*\d+", rf"\g<1> {threads}", text, count=1, flags=re.MULTILINE)
    out_path = Path(out_path)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    try:
        load_profile(tmp)
    except Exception:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, out_path)
    return out_path


# ------------------------------------------------------------------------------------------- end to end


@dataclass(frozen=True)
class Calibration:
    """A finished calibration: the fit, the profile-ready cost model and a source line saying how."""

    profile: object  # the DeviceProfile calibrated (its other sections are kept)
    fit: FitResult  # the full model, per-inference overhead included
    stored_fit: FitResult  # what the profile schema can hold: `fit`, or a refit without that overhead
    cost_model: FittedCostModel  # stored_fit's, plus rates for supported precisions that were not timed
    precisions: tuple[str, ...]  # every precision cost_model has rates for
    source: str
    seconds: float

    def to_dict(self, out: str | None = None) -> dict:
        """The `edgekit calibrate --json` object (`out`: where the profile was written, if anywhere)."""
        fit = self.stored_fit
        return {
            "device": self.profile.name,
            "out": out,
            "seconds": self.seconds,
            "source": self.source,
            "rms_log_error": fit.rms_log_error,
            "share_within_10pct": fit.share_within(0.10),
            "cost_model": cost_model_dict(self.cost_model),
            "full_fit": {
                "rms_log_error": self.fit.rms_log_error,
                "share_within_10pct": self.fit.share_within(0.10),
                "cost_model": cost_model_dict(self.fit.cost_model),
            },
            "points": [
                {
                    "name": p.name,
                    "precision": p.precision,
                    "measured_ms": p.measured_ms,
                    "predicted_ms": p.predicted_ms,
                    "predicted_ms_full_fit": q.predicted_ms,
                }
                for p, q in zip(fit.points, self.fit.points)
            ],
        }


def calibrate(
    profile: str = "host",
    precisions: Sequence[str] | None = None,
    rounds: int = 15,
    benchmarks: Sequence[MicroBenchmark] = MICRO_BENCHMARKS,
    progress: Callable[[str], None] | None = None,
) -> Calibration:
    """Time the micro-benchmarks on this machine through LiteRT and fit `profile`'s cost model.

    precisions: those to time (default: the profile's supported ones among float32 and int8); a supported
    float16 gets the float32 rates, as LiteRT's CPU path computes float16 models in float32. While the
    profile schema has no per-inference overhead, the stored parameters are refitted without one (they then
    over-predict models of a few microseconds: conservative for a latency budget).
    """
    import platform

    from edgekit.profiles import load_profile

    start = time.perf_counter()
    device = load_profile(profile)
    timed_precisions = tuple(
        precisions or [p for p in ("float32", "int8") if p in device.precisions_supported]
    )
    traits = KernelTraits.from_profile(device)
    timed = measure_micro_benchmarks(
        benchmarks, timed_precisions, threads=device.cpu.threads, rounds=rounds, progress=progress
    )
    if progress:
        progress("fitting")
    fit = fit_cost_model(timed, timed_precisions, device.cost_model, traits)
    stored = (
        fit
        if schema_has_per_inference_overhead()
        else fit_cost_model(timed, timed_precisions, device.cost_model, traits, fixed_overhead=False)
    )
    model, covered = stored.cost_model, list(timed_precisions)
    for p in device.precisions_supported:
        if p not in covered and "float32" in covered:
            model = with_precision_copy(model, p, "float32")
            covered.append(p)
    invokes = sum(t.timing.invokes for t in timed if t.timing is not None)
    overhead = fit.cost_model.per_inference_overhead_us
    source = (
        f"edgekit calibrate on {time.strftime('%Y-%m-%d')}: {len(benchmarks)} one-layer "
        f"micro-benchmarks (edgekit.workflows.microbenchmarks.MICRO_BENCHMARKS) x {', '.join(timed_precisions)}, "
        "converted "
        f"with TF {_version('tensorflow')} and timed through ai-edge-litert {_version('ai-edge-litert')} "
        f"(XNNPACK, {device.cpu.threads} thread) on {platform.machine()} '{_cpu_name()}'; per model the 10th "
        f"percentile of its single invokes ({invokes} in all, models interleaved over {rounds} rounds). "
        f"Least-squares fit of edgekit.costmodel.latency's roofline model (channel multiple {traits.channel_multiple}, "
        f"int8 input-channel "
        f"group {traits.int8_input_channel_group}): RMS log error {stored.rms_log_error:.3f}, "
        f"{stored.share_within(0.10) * 100:.0f} % of the micro-benchmarks within +-10 %. "
        + (
            "float16 rates = float32 (LiteRT dequantises float16 weights at load). "
            if "float16" in covered and "float16" not in timed_precisions
            else ""
        )
        + (
            f"Per-inference overhead {overhead:.3g} us."
            if stored is fit
            else "Refitted without a per-inference overhead, which the profile schema cannot store yet; "
            f"with it "
            f"({overhead:.3g} us per invoke) the fit reaches RMS log error {fit.rms_log_error:.3f}, "
            f"{fit.share_within(0.10) * 100:.0f} % within +-10 %."
        )
    )
    return Calibration(device, fit, stored, model, tuple(covered), source, time.perf_counter() - start)


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"


def cost_model_dict(model) -> dict:
    """A cost_model section as plain JSON values."""
    return {
        "per_inference_overhead_us": model.per_inference_overhead_us,
        "per_op_overhead_us": model.per_op_overhead_us,
        "memory_bandwidth_mb_s": model.memory_bandwidth_mb_s,
        "runtime_overhead_ram_bytes": model.runtime_overhead_ram_bytes,
        "macs_per_s": {c: dict(r) for c, r in model.macs_per_s.items()},
        "ops_per_s": {c: dict(r) for c, r in model.ops_per_s.items()},
    }
