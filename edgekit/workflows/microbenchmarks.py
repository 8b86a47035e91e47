"""Calibration micro-benchmarks: one-layer models of varied kinds and shapes, timed through LiteRT.

`MICRO_BENCHMARKS` lists them; `measure_micro_benchmarks` converts each at each precision and times single
invokes with XNNPACK, interleaving the models over many rounds so that other processes' load spreads
evenly; the figure kept per model is a low percentile (p10) of its invokes, what an unloaded machine gives.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from edgekit.costmodel.rate_fitting import TimedModel

#: The statistic kept per model: this percentile of all timed invokes.
TIMING_PERCENTILE = 10


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
    from edgekit.ir.from_keras import from_keras

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


