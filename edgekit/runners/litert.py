"""Run TFLite models on LiteRT (`ai_edge_litert`), the runtime phones and Linux boards use.

    >>> runner = LiteRTRunner(threads=1)
    >>> m = runner.run(tflite_bytes, data=x_test[:100])       # doctest: +SKIP
    >>> m.latency_ms_p50, m.outputs.shape                      # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import platform
import sys
import time

import numpy as np

from edgekit.errors import BadInputError, UnsupportedModelError
from edgekit.runners.base import (
    Measurement,
    RssWatch,
    as_batch,
    captured_stderr,
    from_output_tensor,
    io_names,
    latency_summary_ms,
    ordered_inputs,
    pad_batch,
    single_output,
    timing_inputs,
    to_input_tensor,
)
from edgekit.runners.isolated import call_isolated

PREDICT_BATCH = 256


def _interpreter(model_bytes: bytes, threads: int, allocate: bool = True, xnnpack: bool = True):
    """A LiteRT interpreter (tensors allocated unless told otherwise); load errors name the cause.

    xnnpack=False uses LiteRT's built-in kernels only (no default XNNPACK delegate).
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edgekit.model_io.flatbuffer import convs_without_bias

    stripped = convs_without_bias(model_bytes)
    if stripped:  # LiteRT's conv kernels need the bias input (a missing one crashes some of them)
        raise BadInputError(f"LiteRT cannot run this model: op {stripped[0]} ({len(stripped)} conv op(s) in all) has "
                            "no bias, as in a file exported for TFLite Micro (all-zero biases dropped): measure it "
                            "with --runner tflm, or export for a LiteRT device")
    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        with _quiet_stderr():
            interpreter = Interpreter(model_content=bytes(model_bytes), num_threads=threads,
                                      experimental_op_resolver_type=resolver)
            if allocate:
                interpreter.allocate_tensors()
        return interpreter
    except (ValueError, RuntimeError) as exc:
        raise BadInputError(f"LiteRT could not load the model ({len(model_bytes)} bytes): {exc}") from exc


@contextlib.contextmanager
def _quiet_stderr():
    """Drop LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate" line; pass anything else through."""
    log = None
    try:
        with captured_stderr() as log:
            yield
    finally:
        text = log.text if log is not None else ""
        rest = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("INFO: "))
        if rest:
            sys.stderr.write(rest)


def _allocate(interpreter) -> None:
    try:
        with _quiet_stderr():
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        first = " ".join(str(exc).split())[:300]
        raise BadInputError(f"LiteRT could not prepare the model: {first}") from exc


def _quantization(detail: dict) -> tuple[float, int] | None:
    scale, zero_point = detail["quantization"]
    return (scale, zero_point) if scale and np.issubdtype(np.dtype(detail["dtype"]), np.integer) else None


def predict(
    model_bytes: bytes, x: np.ndarray, threads: int = 1, batch_size: int = PREDICT_BATCH, xnnpack: bool = True
) -> np.ndarray:
    """Float outputs of a single-input, single-output TFLite model on float samples x (N, *input_shape).

    Integer (int8) inputs and outputs are quantised / dequantised with the tensors' own scale and
    zero point. Models converted with a dynamic batch dimension run `batch_size` samples per invoke
    (the last batch zero-padded); others run one sample per invoke. See predict_named for models
    with several inputs or outputs.
    """
    input_names, output_names = io_names(model_bytes)
    if len(input_names) != 1 or len(output_names) != 1:
        raise UnsupportedModelError(f"this model has {len(input_names)} inputs and {len(output_names)} outputs: "
                                    "use edgekit.runners.litert.predict_named")
    return next(iter(predict_named(model_bytes, [x], threads, batch_size, xnnpack).values()))


def predict_named(model_bytes: bytes, inputs, threads: int = 1, batch_size: int = PREDICT_BATCH,
                  xnnpack: bool = True) -> dict[str, np.ndarray]:
    """Float outputs by name of a TFLite model with any number of inputs and outputs, on LiteRT.

    inputs: an array (one input), a list in the model's input order, or a dict keyed by input name
    (edgekit.runners.base.io_names: for models edgekit converts, the Keras input names). Returns a
    dict in the model's output order, keyed by output name (the Keras output names). LiteRT runs in
    edgekit's worker process: a native crash becomes an UnsupportedModelError.
    """
    arrays = ordered_inputs(model_bytes, inputs)
    return call_isolated(_predict_here, model_bytes, arrays, threads, batch_size, xnnpack,
                         what=f"a {len(model_bytes)} byte model", stage="LiteRT run")


def _predict_here(model_bytes: bytes, arrays: list[np.ndarray], threads: int, batch_size: int,
                  xnnpack: bool) -> dict[str, np.ndarray]:
    interpreter = _interpreter(model_bytes, threads, allocate=False, xnnpack=xnnpack)
    in_details = interpreter.get_input_details()
    arrays = [as_batch(x, detail["shape"]) for x, detail in zip(arrays, in_details)]
    count = len(arrays[0]) if arrays else 0
    batch = _try_resize_batch(interpreter, in_details, min(batch_size, max(count, 1)))
    in_details, out_details = interpreter.get_input_details(), interpreter.get_output_details()
    outputs: list[list[np.ndarray]] = [[] for _ in out_details]
    for start in range(0, count, batch):
        for x, detail in zip(arrays, in_details):
            chunk = pad_batch(x[start:start + batch], batch)
            interpreter.set_tensor(detail["index"], to_input_tensor(chunk, detail["dtype"], _quantization(detail)))
        interpreter.reset_all_variables()  # fused LSTMs keep their state in variables: each batch starts fresh
        interpreter.invoke()
        for i, detail in enumerate(out_details):
            y = interpreter.get_tensor(detail["index"])
            outputs[i].append(from_output_tensor(y, _quantization(detail))[: min(batch, count - start)])
    _, output_names = io_names(model_bytes)
    return {name: (np.concatenate(chunks) if chunks else np.zeros((0,), np.float32))
            for name, chunks in zip(output_names, outputs)}


def _try_resize_batch(interpreter, in_details: list[dict], batch: int) -> int:
    """Resize every input's batch dimension to `batch` if the model allows it, allocate; returns the batch."""
    shapes = [[int(d) for d in detail["shape"]] for detail in in_details]
    signatures = [list(detail.get("shape_signature", shape)) for detail, shape in zip(in_details, shapes)]
    if batch > 1 and shapes and all(len(s) > 0 and sig[0] == -1 for s, sig in zip(shapes, signatures)):
        try:
            for detail, shape in zip(in_details, shapes):
                interpreter.resize_tensor_input(detail["index"], [batch, *shape[1:]])
            _allocate(interpreter)
            return batch
        except (RuntimeError, ValueError,
                BadInputError):  # some ops cannot take a new batch size: back to the converted one
            for detail, shape in zip(in_details, shapes):
                interpreter.resize_tensor_input(detail["index"], shape)
    _allocate(interpreter)
    return shapes[0][0] if shapes and shapes[0] else 1


class LiteRTRunner:
    """Measure a model on LiteRT in this process: init time, latency percentiles, RSS growth, outputs.

    Latency is the wall time of single invokes on one sample (the first sample of `data`, or noise),
    after `warmup` untimed invokes, repeated until `runs` samples and at least `min_seconds` have been
    taken. Report p50 (robust to other processes sharing the CPU) rather than the mean. LiteRT's
    default XNNPACK delegate is used, as on a device, unless xnnpack=False (built-in kernels only).
    """

    name = "litert"

    def __init__(self, threads: int = 1, warmup: int = 3, runs: int = 50, min_seconds: float = 0.0,
                 xnnpack: bool = True) -> None:
        if threads < 1 or warmup < 0 or runs < 1 or min_seconds < 0:
            raise ValueError(f"LiteRTRunner: threads={threads} >= 1, warmup={warmup} >= 0, runs={runs} >= 1, "
                             f"min_seconds={min_seconds} >= 0")
        self.threads, self.warmup, self.runs = threads, warmup, runs
        self.min_seconds, self.xnnpack = min_seconds, xnnpack

    def run(self, model_bytes: bytes, data: np.ndarray | None = None) -> Measurement:
        """Measure in edgekit's worker process: a LiteRT crash becomes an UnsupportedModelError."""
        return call_isolated(self._run_here, model_bytes, data, what=f"a {len(model_bytes)} byte model",
                             stage="LiteRT benchmark")

    def _run_here(self, model_bytes: bytes, data: np.ndarray | None = None) -> Measurement:
        rss = RssWatch()
        start = time.perf_counter()
        interpreter = _interpreter(model_bytes, self.threads, xnnpack=self.xnnpack)
        init_ms = (time.perf_counter() - start) * 1e3
        rss.sample()

        in_details = interpreter.get_input_details()
        arrays = None
        if data is not None:  # one array, or several inputs as a list in interpreter order / a dict by name
            arrays = [as_batch(x, d["shape"]) for x, d in zip(ordered_inputs(model_bytes, data), in_details)]
        for detail, sample in zip(in_details, timing_inputs(in_details, arrays)):
            interpreter.set_tensor(detail["index"], to_input_tensor(sample, detail["dtype"], _quantization(detail)))
        for _ in range(self.warmup):
            interpreter.invoke()
        samples_ms = []
        deadline = time.perf_counter() + self.min_seconds
        while len(samples_ms) < self.runs or time.perf_counter() < deadline:
            t0 = time.perf_counter_ns()
            interpreter.invoke()
            samples_ms.append((time.perf_counter_ns() - t0) / 1e6)
        rss.sample()

        named = (predict_named(model_bytes, arrays, threads=self.threads, xnnpack=self.xnnpack)
                 if arrays is not None else None)
        rss.sample()
        kernels = "XNNPACK delegate" if self.xnnpack else "built-in kernels (no XNNPACK)"
        return Measurement(
            runner=self.name,
            model_size_bytes=len(model_bytes),
            init_ms=init_ms,
            runs=len(samples_ms),
            threads=self.threads,
            arena_bytes=None,
            peak_rss_growth_bytes=rss.growth_bytes,
            outputs=single_output(named),
            outputs_by_name=named,
            notes=(f"latency measured on this host's CPU ({platform.machine()}), batch 1, {kernels}",),
            device=f"host {platform.machine()}",
            **latency_summary_ms(samples_ms),
        )


def interleaved_median_ms(blobs: list[bytes], x: np.ndarray, threads: int = 1, *, rounds: int = 20,
                          invokes: int = 50, warmup: int = 5, xnnpack: bool = True) -> list[float]:
    """Median single-invoke latency (ms) of several models timed in turns, so background load on a
    shared machine hits every model alike (the side-by-side comparisons in benchmarks/ rely on it)."""
    interpreters = []
    for blob in blobs:
        interpreter = _interpreter(blob, threads, xnnpack=xnnpack)
        detail = interpreter.get_input_details()[0]
        scale, zero = detail["quantization"]
        quant = (scale, zero) if scale and detail["dtype"] != np.float32 else None
        interpreter.set_tensor(detail["index"], to_input_tensor(x, detail["dtype"], quant))
        for _ in range(warmup):
            interpreter.invoke()
        interpreters.append(interpreter)
    samples: list[list[float]] = [[] for _ in blobs]
    for _ in range(rounds):
        for i, interpreter in enumerate(interpreters):
            for _ in range(invokes):
                t0 = time.perf_counter_ns()
                interpreter.invoke()
                samples[i].append((time.perf_counter_ns() - t0) / 1e6)
    return [float(np.median(s)) for s in samples]
