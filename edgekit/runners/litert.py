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
    latency_summary_ms,
    pad_batch,
    timing_input,
    to_input_tensor,
)

PREDICT_BATCH = 256


def _interpreter(model_bytes: bytes, threads: int, allocate: bool = True, xnnpack: bool = True):
    """A LiteRT interpreter (tensors allocated unless told otherwise); load errors name the cause.

    xnnpack=False uses LiteRT's built-in kernels only (no default XNNPACK delegate).
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

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


def _single_io(interpreter) -> tuple[dict, dict]:
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
        raise UnsupportedModelError(
            f"edgekit runners handle one input and one output; this model has {len(inputs)} inputs "
            f"and {len(outputs)} outputs"
        )
    return inputs[0], outputs[0]


def _quantization(detail: dict) -> tuple[float, int] | None:
    scale, zero_point = detail["quantization"]
    return (scale, zero_point) if scale and np.issubdtype(np.dtype(detail["dtype"]), np.integer) else None


def predict(
    model_bytes: bytes, x: np.ndarray, threads: int = 1, batch_size: int = PREDICT_BATCH, xnnpack: bool = True
) -> np.ndarray:
    """Float outputs of a TFLite model on float samples x (N, *input_shape), any io precision.

    Integer (int8) inputs and outputs are quantised / dequantised with the tensors' own scale and
    zero point. Models converted with a dynamic batch dimension run `batch_size` samples per invoke
    (the last batch zero-padded); others run one sample per invoke.
    """
    interpreter = _interpreter(model_bytes, threads, allocate=False, xnnpack=xnnpack)
    in_detail, out_detail = _single_io(interpreter)
    x = as_batch(x, in_detail["shape"])
    batch = _try_resize_batch(interpreter, in_detail, min(batch_size, len(x)))
    in_detail, out_detail = _single_io(interpreter)  # indices stable, shapes / quant re-read after resize
    outputs = []
    for start in range(0, len(x), batch):
        chunk = x[start:start + batch]
        tensor = to_input_tensor(pad_batch(chunk, batch), in_detail["dtype"], _quantization(in_detail))
        interpreter.set_tensor(in_detail["index"], tensor)
        interpreter.invoke()
        y = interpreter.get_tensor(out_detail["index"])
        outputs.append(from_output_tensor(y, _quantization(out_detail))[: len(chunk)])
    return np.concatenate(outputs) if outputs else np.zeros((0,), np.float32)


def _try_resize_batch(interpreter, in_detail: dict, batch: int) -> int:
    """Resize the batch dimension to `batch` if the model allows it, allocate; returns the batch in use."""
    index, shape = in_detail["index"], [int(d) for d in in_detail["shape"]]
    signature = in_detail.get("shape_signature", shape)
    if batch > 1 and len(shape) > 0 and signature[0] == -1:
        try:
            interpreter.resize_tensor_input(index, [batch, *shape[1:]])
            _allocate(interpreter)
            return batch
        except (RuntimeError, ValueError, BadInputError):  # some ops cannot take a new batch size: back to the converted one
            interpreter.resize_tensor_input(index, shape)
    _allocate(interpreter)
    return shape[0] if shape else 1


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
        rss = RssWatch()
        start = time.perf_counter()
        interpreter = _interpreter(model_bytes, self.threads, xnnpack=self.xnnpack)
        init_ms = (time.perf_counter() - start) * 1e3
        rss.sample()

        in_detail, _ = _single_io(interpreter)
        if data is not None:
            data = as_batch(data, in_detail["shape"])
        sample = timing_input(in_detail, data)
        tensor = to_input_tensor(sample, in_detail["dtype"], _quantization(in_detail))
        interpreter.set_tensor(in_detail["index"], tensor)
        for _ in range(self.warmup):
            interpreter.invoke()
        samples_ms = []
        deadline = time.perf_counter() + self.min_seconds
        while len(samples_ms) < self.runs or time.perf_counter() < deadline:
            t0 = time.perf_counter_ns()
            interpreter.invoke()
            samples_ms.append((time.perf_counter_ns() - t0) / 1e6)
        rss.sample()

        outputs = predict(model_bytes, data, threads=self.threads) if data is not None else None
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
            outputs=outputs,
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
