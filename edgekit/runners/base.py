"""What every runner returns (`Measurement`), the `Runner` protocol, and small shared helpers.

A runner takes TFLite flatbuffer bytes (and optionally input samples) and measures what it costs
to run them on one runtime: init time, latency percentiles, memory, and the outputs on the samples.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from edgekit.errors import BadInputError

if TYPE_CHECKING:
    from edgekit.runners.agreement import Agreement


@dataclass(frozen=True, eq=False)  # eq=False: holds numpy arrays
class Measurement:
    """One runner's figures for one model.

    latency_ms_* are percentiles over `runs` timed invokes (None when the runner does not time, or,
    for percentiles, when the tool reports only a mean: Android's benchmark_model); latency_ms_mean /
    _std / _min are given where known. init_ms covers interpreter creation and tensor allocation;
    arena_bytes is the tensor arena a runtime with a fixed arena needs (None for LiteRT, which
    allocates as it likes) and arena_recorded_bytes what TFLM's recording allocator reported;
    peak_rss_growth_bytes is the largest growth of the measuring process's resident memory (None
    where unknown). `outputs` are the model's float (dequantised) outputs on the data passed to
    `run`, batch first. `agreement` compares them with `agreement_reference` ("keras", "litert").
    Several outputs: `outputs` and `agreement` are None; `outputs_by_name` holds every output by name
    (see io_names; it is filled for one output too), `agreement_by_output` and `accuracy_by_output`
    the comparisons per output.
    """

    runner: str
    model_size_bytes: int
    init_ms: float | None
    latency_ms_p50: float | None
    latency_ms_p90: float | None
    latency_ms_p99: float | None
    runs: int
    threads: int | None = None
    arena_bytes: int | None = None
    peak_rss_growth_bytes: int | None = None
    outputs: np.ndarray | None = None
    agreement: Agreement | None = None
    notes: tuple[str, ...] = field(default=())
    latency_ms_mean: float | None = None
    latency_ms_std: float | None = None
    latency_ms_min: float | None = None
    arena_recorded_bytes: int | None = None
    agreement_reference: str | None = None
    accuracy: float | None = None  # top-1 on labelled data, filled by a caller that has the labels
    device: str | None = None      # what ran it: "host x86-64", an adb serial ...
    outputs_by_name: dict[str, np.ndarray] | None = None
    agreement_by_output: dict[str, Agreement] | None = None
    accuracy_by_output: dict[str, float] | None = None  # class heads with labels


def timing_inputs(in_details: list[dict], arrays: list[np.ndarray] | None) -> list[np.ndarray]:
    """The float sample per input that latency is measured on (see timing_input), in interpreter order."""
    return [timing_input(detail, arrays[i] if arrays is not None else None, seed=i)
            for i, detail in enumerate(in_details)]


def single_output(by_output: dict | None):
    """The lone output's value (Measurement.outputs / .agreement), None for several outputs or none."""
    return next(iter(by_output.values())) if by_output and len(by_output) == 1 else None


@runtime_checkable
class Runner(Protocol):
    """Anything that can measure a TFLite model: `run(model_bytes, data) -> Measurement`."""

    name: str

    def run(self, model_bytes: bytes, data: np.ndarray | None = None) -> Measurement: ...
    # data: samples for a single-input model; for several inputs, a list in interpreter order or a dict by name.


def latency_summary_ms(samples_ms: Sequence[float]) -> dict[str, float]:
    """p50 / p90 / p99 / mean / std / min of latency samples, as Measurement keyword arguments."""
    p50, p90, p99 = latency_percentiles_ms(samples_ms)
    array = np.asarray(samples_ms, dtype=np.float64)
    return {"latency_ms_p50": p50, "latency_ms_p90": p90, "latency_ms_p99": p99,
            "latency_ms_mean": float(array.mean()), "latency_ms_std": float(array.std()),
            "latency_ms_min": float(array.min())}


def timing_input(in_detail: dict, data: np.ndarray | None, seed: int = 0) -> np.ndarray:
    """The float sample latency is measured on: the first of `data`, else standard-normal noise.

    Not zeros: some kernels skip work on zero input (dynamic-range FULLY_CONNECTED returns the bias).
    """
    if data is not None and len(data):
        return np.asarray(data[:1], np.float32)
    return np.random.default_rng(seed).standard_normal(tuple(int(d) for d in in_detail["shape"])).astype(np.float32)


def latency_percentiles_ms(samples_ms: Sequence[float]) -> tuple[float, float, float]:
    """p50, p90, p99 of latency samples in ms (linear interpolation, so always ordered)."""
    if len(samples_ms) == 0:
        raise ValueError("latency_percentiles_ms: no samples")
    p50, p90, p99 = np.percentile(np.asarray(samples_ms, dtype=np.float64), [50, 90, 99])
    return float(p50), float(p90), float(p99)


def current_rss_bytes() -> int | None:
    """Resident memory of this process now (Linux /proc), or None where unavailable."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class RssWatch:
    """Track the largest resident-memory growth over a baseline at the moments `sample()` is called."""

    def __init__(self) -> None:
        self._baseline = current_rss_bytes()
        self._peak = self._baseline

    def sample(self) -> None:
        now = current_rss_bytes()
        if now is not None and self._peak is not None:
            self._peak = max(self._peak, now)

    @property
    def growth_bytes(self) -> int | None:
        if self._baseline is None or self._peak is None:
            return None
        return self._peak - self._baseline


class CapturedText:
    """Holds what was written to file descriptor 2 inside `captured_stderr()`, after it exits."""

    text: str = ""


@contextlib.contextmanager
def captured_stderr() -> Iterator[CapturedText]:
    """Capture file descriptor 2 (C-level stderr, e.g. TFLM's MicroPrintf) into a string.

        with captured_stderr() as captured:
            interpreter.print_allocations()
        print(captured.text)
    """
    captured = CapturedText()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.text = sink.read().decode("utf-8", errors="replace")


def quantize(x: np.ndarray, dtype: np.dtype, scale: float, zero_point: int) -> np.ndarray:
    """Float samples to an integer tensor type (int8/uint8/int16) with TFLite's affine scheme."""
    info = np.iinfo(dtype)
    scaled = np.asarray(x, dtype=np.float32) / np.float32(scale)
    # Round half away from zero like TFLite's QUANTIZE kernel (std::round), not numpy's half-to-even.
    q = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """An integer tensor back to float32: (q - zero_point) * scale."""
    return ((q.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)).astype(np.float32)


def to_input_tensor(x: np.ndarray, dtype, quantization: tuple[float, int] | None) -> np.ndarray:
    """Float samples -> an input tensor of `dtype`, quantised when (scale, zero_point) is given."""
    if quantization is None:
        return np.asarray(x, dtype=dtype)
    return quantize(x, np.dtype(dtype), *quantization)


def from_output_tensor(y: np.ndarray, quantization: tuple[float, int] | None) -> np.ndarray:
    """An output tensor -> float32, dequantised when (scale, zero_point) is given."""
    return np.asarray(y, dtype=np.float32) if quantization is None else dequantize(y, *quantization)


def as_batch(x: np.ndarray, model_input_shape) -> np.ndarray:
    """Float32 samples, batch first, checked against the model's input shape (batch axis included).

    A single sample without its batch axis gets one.
    """
    x = np.asarray(x, dtype=np.float32)
    expected = tuple(int(d) for d in model_input_shape[1:])
    if tuple(x.shape) == expected:
        x = x[None]
    if tuple(x.shape[1:]) != expected:
        raise BadInputError(
            f"input samples shaped {tuple(x.shape)} do not match the model input {tuple(model_input_shape)} "
            f"(batch first); reshape the data to (N, {', '.join(map(str, expected))})"
        )
    return x


def pad_batch(chunk: np.ndarray, batch: int) -> np.ndarray:
    """Zero-pad a last, short chunk of samples up to the interpreter's fixed batch size."""
    if len(chunk) == batch:
        return chunk
    return np.concatenate([chunk, np.zeros((batch - len(chunk), *chunk.shape[1:]), chunk.dtype)])


def io_names(model_bytes: bytes) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Names of the main subgraph's inputs and outputs, in the order the interpreter indexes them.

    The signature's names where the model has one (edgekit names them after the Keras inputs and
    outputs), else the tensor names without "serving_default_" / ":0", else input_<i> / output_<i>
    (a stripped MCU model has none).
    """
    from ai_edge_litert import schema_py_generated as schema

    data = bytearray(model_bytes)
    if len(data) < 8 or not schema.Model.ModelBufferHasIdentifier(data, 0):
        raise BadInputError(f"not a TFLite flatbuffer ({len(data)} bytes, no 'TFL3' identifier)")
    model = schema.Model.GetRootAs(data, 0)
    subgraph = model.Subgraphs(0)
    signed: dict[int, str] = {}
    if model.SignatureDefsLength() > 0:
        signature = model.SignatureDefs(0)
        for maps, length in ((signature.Inputs, signature.InputsLength()),
                             (signature.Outputs, signature.OutputsLength())):
            for i in range(length):
                entry = maps(i)
                signed[entry.TensorIndex()] = (entry.Name() or b"").decode("utf-8", "replace")

    def names(indices: list[int], kind: str) -> tuple[str, ...]:
        found = []
        for i, index in enumerate(indices):
            raw = subgraph.Tensors(index).Name()
            tensor = (raw or b"").decode("utf-8", "replace").removeprefix("serving_default_").split(":")[0]
            found.append(signed.get(index) or tensor)
        if any(not n for n in found) or len(set(found)) != len(found):
            return tuple(f"{kind}_{i}" for i in range(len(indices)))
        return tuple(found)

    inputs = [subgraph.Inputs(i) for i in range(subgraph.InputsLength())]
    outputs = [subgraph.Outputs(i) for i in range(subgraph.OutputsLength())]
    return names(inputs, "input"), names(outputs, "output")


def ordered_inputs(model_bytes: bytes, inputs) -> list[np.ndarray]:
    """Samples per model input in the interpreter's input order, from an array (one input), a list
    (in that order) or a dict keyed by the names `io_names` gives."""
    input_names, _ = io_names(model_bytes)
    if isinstance(inputs, dict):
        if sorted(inputs) != sorted(input_names):
            raise BadInputError(f"inputs named {sorted(inputs)} do not match the model's inputs "
                                f"{list(input_names)}; pass one array per input name")
        arrays = [inputs[name] for name in input_names]
    elif isinstance(inputs, (list, tuple)):
        arrays = list(inputs)
    else:
        arrays = [inputs]
    if len(arrays) != len(input_names):
        raise BadInputError(f"{len(arrays)} input arrays for a model with {len(input_names)} inputs "
                            f"{list(input_names)}; pass one per input (a list in order or a dict by name)")
    arrays = [np.asarray(x, dtype=np.float32) for x in arrays]
    if len({len(x) for x in arrays}) > 1:
        raise BadInputError(f"the inputs have different sample counts {[len(x) for x in arrays]}")
    return arrays
