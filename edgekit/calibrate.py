"""Calibrate a LiteRT device's cost model: time micro-benchmarks on this machine, fit the throughput numbers.

The steps of `edgekit calibrate` (`calibrate()` runs them all):

1. Micro-benchmarks (`MICRO_BENCHMARKS`): one-layer models (a few with a second small layer) of varied
   kinds and shapes: convolutions of every size, stems, pointwise, Conv1D, depthwise, dense heads,
   pooling, element-wise; built with tf_keras.
2. Timing (`time_tflite_models`, `measure_micro_benchmarks`; TensorFlow and LiteRT imported inside):
   converts each benchmark at each precision and times single invokes through LiteRT with XNNPACK,
   interleaving the models over many rounds so that other processes' load spreads evenly; the figure kept
   per model is a low percentile (p10) of its invokes, what an unloaded machine gives.
3. Fitting (`edgekit.calibrate_fit.fit_cost_model`, pure) of `edgekit.latency`'s parameters.
4. Writing (`write_profile`): the profile YAML with its cost_model section replaced and a source line.

    >>> result = calibrate("host")                                 # doctest: +SKIP
    >>> write_profile(result.profile.path, "host.yaml", result.cost_model, result.precisions,
    ...               result.source)                                 # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekit.calibrate_fit import FitResult, FittedCostModel, TimedModel, fit_cost_model, with_precision_copy
from edgekit.latency import KernelTraits
from edgekit.profiles import CostModelParams

#: The statistic kept per model: this percentile of all timed invokes.
TIMING_PERCENTILE = 10


# ------------------------------------------------------------------------------------ micro-benchmarks


@dataclass(frozen=True)
class MicroBenchmark:
    """One calibration model: `layer` applied to an input of `input_shape` (per sample), with `args`."""

    name: str
    layer: str  # conv2d | conv1d | depthwise | dense | maxpool | avgpool | maxpool1d | gap | add | mul_se
    # | concat | softmax | sigmoid
    input_shape: tuple[int, ...]
    args: Mapping[str, object] = field(default_factory=dict)


def _conv(hw, cin, cout, k, s=1):
    return MicroBenchmark(
        f"conv{k}x{k}_s{s}_{hw}x{hw}x{cin}_{cout}",
        "conv2d",
        (hw, hw, cin),
        {"filters": cout, "kernel_size": k, "strides": s},
    )


def _dw(hw, c, s=1):
    return MicroBenchmark(f"dw3x3_s{s}_{hw}x{hw}x{c}", "depthwise", (hw, hw, c), {"strides": s})


def _dense(n_in, n_out):
    return MicroBenchmark(f"dense_{n_in}_{n_out}", "dense", (n_in,), {"units": n_out})


def _conv1d(length, cin, cout, k, s=1):
    return MicroBenchmark(
        f"conv1d_k{k}_s{s}_{length}x{cin}_{cout}",
        "conv1d",
        (length, cin),
        {"filters": cout, "kernel_size": k, "strides": s},
    )


def _simple(layer, shape, **args):
    return MicroBenchmark(f"{layer}_{'x'.join(map(str, shape))}", layer, shape, args)


MICRO_BENCHMARKS: tuple[MicroBenchmark, ...] = (
    # standard convolutions: 3x3 at several widths and resolutions, strided, stems with few input channels
    _conv(32, 16, 16, 3),
    _conv(24, 16, 16, 3),
    _conv(16, 32, 32, 3),
    _conv(16, 64, 64, 3),
    _conv(8, 128, 128, 3),
    _conv(8, 64, 160, 3),
    _conv(32, 8, 24, 3),
    _conv(24, 24, 40, 3, 2),
    _conv(16, 48, 96, 3, 2),
    _conv(96, 3, 16, 3, 2),
    _conv(32, 3, 32, 3),
    _conv(4, 256, 256, 3),
    MicroBenchmark(
        "conv10x4_s2_49x10x1_32", "conv2d", (49, 10, 1), {"filters": 32, "kernel_size": (10, 4), "strides": 2}
    ),
    # pointwise convolutions
    _conv(32, 16, 48, 1),
    _conv(20, 32, 64, 1),
    _conv(16, 64, 64, 1),
    _conv(12, 48, 96, 1),
    _conv(16, 96, 24, 1),
    _conv(8, 128, 256, 1),
    _conv(4, 256, 512, 1),
    _conv(24, 24, 144, 1),
    _conv(12, 144, 32, 1),
    _conv(48, 8, 8, 1),
    _conv(2, 512, 1024, 1),
    # Conv1D (EXPAND_DIMS -> CONV_2D -> RESHAPE)
    _conv1d(128, 1, 16, 5),
    _conv1d(64, 16, 32, 5),
    _conv1d(32, 64, 64, 3),
    _conv1d(100, 8, 8, 7, 2),
    # depthwise 3x3
    _dw(48, 16),
    _dw(32, 32),
    _dw(24, 48, 2),
    _dw(16, 64),
    _dw(16, 96, 2),
    _dw(8, 192),
    _dw(8, 256),
    _dw(4, 512),
    _dw(12, 144),
    _dw(96, 8, 2),
    # fully connected at batch 1, including narrow classifier heads
    _dense(32, 8),
    _dense(64, 64),
    _dense(96, 16),
    _dense(128, 128),
    _dense(200, 10),
    _dense(256, 64),
    _dense(512, 32),
    _dense(512, 256),
    _dense(1024, 128),
    _dense(128, 1024),
    _dense(640, 128),
    _dense(1280, 10),
    # pooling and element-wise ops
    _simple("maxpool", (32, 32, 16)),
    _simple("maxpool", (16, 16, 64)),
    _simple("avgpool", (16, 16, 32)),
    _simple("maxpool1d", (40, 64)),
    _simple("gap", (8, 8, 128)),
    _simple("gap", (16, 16, 64)),
    _simple("gap", (3, 3, 256)),
    _simple("add", (32, 32, 16)),
    _simple("add", (16, 16, 64)),
    _simple("add", (8, 8, 256)),
    _simple("mul_se", (16, 16, 32)),
    _simple("concat", (16, 16, 16)),
    _simple("softmax", (10,)),
    _simple("softmax", (1000,)),
    _simple("sigmoid", (4096,)),
)


def build_micro_benchmark(bench: MicroBenchmark):
    """The tf_keras model of one micro-benchmark (random weights)."""
    from edgekit._tf import tf_keras

    keras = tf_keras()
    L = keras.layers
    a = dict(bench.args)
    x = inputs = keras.Input(bench.input_shape)
    if bench.layer == "conv2d":
        y = L.Conv2D(padding="same", **a)(x)
    elif bench.layer == "conv1d":
        y = L.Conv1D(padding="same", **a)(x)
    elif bench.layer == "depthwise":
        y = L.DepthwiseConv2D(3, padding="same", **a)(x)
    elif bench.layer == "dense":
        y = L.Dense(**a)(x)
    elif bench.layer == "maxpool":
        y = L.MaxPooling2D(2)(x)
    elif bench.layer == "avgpool":
        y = L.AveragePooling2D(2)(x)
    elif bench.layer == "maxpool1d":
        y = L.MaxPooling1D(2)(x)
    elif bench.layer == "gap":
        y = L.GlobalAveragePooling2D()(x)
    elif bench.layer == "add":  # two branches of the same input: ADD of a conv output and the input
        y = L.ReLU()(L.Add()([x, L.Conv2D(bench.input_shape[-1], 1)(x)]))
    elif bench.layer == "mul_se":  # squeeze-excite scaling: broadcast MUL of a per-channel gate
        gate = L.GlobalAveragePooling2D(keepdims=True)(x)
        gate = L.Conv2D(bench.input_shape[-1], 1, activation="sigmoid")(gate)
        y = L.Multiply()([x, gate])
    elif bench.layer == "concat":
        y = L.Concatenate()([L.Conv2D(8, 1)(x), x])
    elif bench.layer == "softmax":
        y = L.Softmax()(x)
    elif bench.layer == "sigmoid":
        y = L.Activation("sigmoid")(x)
    else:
        raise ValueError(f"micro-benchmark {bench.name!r}: unknown layer kind {bench.layer!r}")
    return keras.Model(inputs, y, name=bench.name)


# ------------------------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class Timing:
    """Statistics of one model's timed invokes (ms)."""

    p10_ms: float
    p50_ms: float
    min_ms: float
    invokes: int

    @property
    def latency_ms(self) -> float:
        """The figure calibration and benchmarks use: the TIMING_PERCENTILE-th percentile."""
        return self.p10_ms


def _ready_interpreter(model_bytes: bytes, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    from edgekit.runners.base import captured_stderr

    with captured_stderr():  # the "Created TensorFlow Lite XNNPACK delegate" line
        interpreter = Interpreter(model_content=bytes(model_bytes), num_threads=threads)
        interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    rng = np.random.default_rng(0)
    if np.issubdtype(detail["dtype"], np.integer):
        x = rng.integers(-100, 100, detail["shape"]).astype(detail["dtype"])
    else:
        x = rng.standard_normal(detail["shape"]).astype(detail["dtype"])
    interpreter.set_tensor(detail["index"], x)
    return interpreter


def time_tflite_models(
    models: Mapping[str, bytes], threads: int = 1, rounds: int = 15, round_ms: float = 3.0, seed: int = 0
) -> dict[str, Timing]:
    """Time single LiteRT invokes of every model, interleaved: each round visits the models in a new
    random order and invokes each for about `round_ms`; returns per-model statistics over all rounds.
    """
    interpreters = {name: _ready_interpreter(b, threads) for name, b in models.items()}
    per_invoke_ms: dict[str, float] = {}
    for name, interpreter in interpreters.items():
        for _ in range(5):
            interpreter.invoke()
        t0 = time.perf_counter_ns()
        for _ in range(10):
            interpreter.invoke()
        per_invoke_ms[name] = (time.perf_counter_ns() - t0) / 10 / 1e6
    samples: dict[str, list[int]] = {name: [] for name in interpreters}
    order = list(interpreters)
    rng = np.random.default_rng(seed)
    for _ in range(rounds):
        rng.shuffle(order)
        for name in order:
            invoke = interpreters[name].invoke
            n = int(min(2000, max(3, round_ms / max(per_invoke_ms[name], 1e-4))))
            acc = samples[name]
            for _ in range(n):
                t0 = time.perf_counter_ns()
                invoke()
                acc.append(time.perf_counter_ns() - t0)
    out = {}
    for name, ns in samples.items():
        ms = np.asarray(ns, dtype=np.float64) / 1e6
        out[name] = Timing(
            float(np.percentile(ms, TIMING_PERCENTILE)), float(np.median(ms)), float(ms.min()), len(ms)
        )
    return out


def measure_micro_benchmarks(
    benchmarks: Sequence[MicroBenchmark],
    precisions: Sequence[str],
    threads: int = 1,
    rounds: int = 15,
    progress: Callable[[str], None] | None = None,
) -> list[TimedModel]:
    """Convert every benchmark at every precision and time them all together (see time_tflite_models)."""
    from edgekit.export.tflite import convert
    from edgekit.keras_ir import from_keras

    graphs, models = {}, {}
    for i, bench in enumerate(benchmarks):
        model = build_micro_benchmark(bench)
        graphs[bench.name] = from_keras(model)
        for precision in precisions:
            if progress:
                progress(f"converting {i + 1}/{len(benchmarks)} {bench.name} ({precision})")
            models[(bench.name, precision)] = convert(model, precision).tflite_bytes
    if progress:
        progress(f"timing {len(models)} models x {rounds} rounds")
    keyed = {f"{name}:{precision}": b for (name, precision), b in models.items()}
    timings = time_tflite_models(keyed, threads=threads, rounds=rounds)
    return [
        TimedModel(
            name,
            precision,
            graphs[name],
            timings[f"{name}:{precision}"].latency_ms,
            timings[f"{name}:{precision}"],
        )
        for (name, precision) in models
    ]


# ------------------------------------------------------------------------------------------- profile


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
        f"micro-benchmarks (edgekit.calibrate.MICRO_BENCHMARKS) x {', '.join(timed_precisions)}, converted "
        f"with TF {_version('tensorflow')} and timed through ai-edge-litert {_version('ai-edge-litert')} "
        f"(XNNPACK, {device.cpu.threads} thread) on {platform.machine()} '{_cpu_name()}'; per model the 10th "
        f"percentile of its single invokes ({invokes} in all, models interleaved over {rounds} rounds). "
        f"Least-squares fit of edgekit.latency's roofline model (channel multiple {traits.channel_multiple}, "
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
