"""Run TFLite models on TensorFlow Lite Micro (the `tflite_micro` Python interpreter) and size its arena.

    >>> arena = measure_arena(int8_bytes)                       # doctest: +SKIP
    >>> arena.arena_bytes, arena.recorded_total_bytes           # doctest: +SKIP

What the TFLM Python interpreter does on failure (tflite-micro 0.dev20261023, checked by hand):
an arena too small for the interpreter's own bookkeeping (a few hundred bytes) segfaults the
process; any larger shortfall, a missing kernel or a kernel that cannot prepare raises
`RuntimeError('TFLM failed to allocate tensors')` from the constructor, with the reason printed to
C-level stderr ("Didn't find op for builtin opcode 'TOPK_V2'", "Node DEQUANTIZE (number 0) failed
to prepare", "Failed to allocate tail memory. Requested: ..."). So `measure_arena` probes arena
sizes in a child process (this module run as `--probe-worker`), and every constructor call here
captures file descriptor 2 to turn that text into an error naming the op.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.errors import UnsupportedModelError
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
from edgekit.runners.isolated import call_isolated, signal_name
from edgekit.runners.tflm_core import (
    ArenaTooSmallError,
    _io_counts,
    _is_arena_shortfall,
    _micro_interpreter,
    _quantization,
    _raise_for_failure,
    check_kernel_limits,
)

FIRST_PROBE_ARENA_BYTES = 1 << 20
MAX_ARENA_BYTES = 1 << 28
DEFAULT_PREDICT_ARENA_BYTES = 4 << 20
# The allocator rounds the arena start up to 16 bytes: a buffer that is not 16-byte aligned loses up to 15.
ARENA_ALIGNMENT_BYTES = 16
PROBE_TIMEOUT_S = 120.0

_HOST_NOTE = (
    "arena measured with TFLM's recording allocator on a 64-bit host; a 32-bit MCU build needs "
    "slightly less for the same model (smaller structs), activations and scratch are identical"
)


@dataclass(frozen=True)
class ArenaSection:
    """One line of the recording allocator's report, e.g. 'Persistent buffer data'."""

    name: str
    used_bytes: int  # with alignment overhead
    requested_bytes: int
    allocations: int


@dataclass(frozen=True)
class ArenaMeasurement:
    """How much tensor arena a model needs on TFLM.

    arena_bytes: the smallest arena_size with which the interpreter allocates and invokes, found by
        bisection in a child process; exact to the byte for a 16-byte-aligned arena buffer (what
        malloc and `alignas(16)` give). Add up to ARENA_ALIGNMENT_BYTES - 1 for an unaligned buffer.
    recorded_*: the recording allocator's own report (print_allocations) after an invoke.
    bisected_minus_recorded_bytes: arena_bytes - recorded_total_bytes, never negative: the recording
        is a lower bound. It is 0 when the planned activations (head) are larger than the scratch
        used while the model is prepared (the MNIST-1D teacher); for tiny models the scratch wins
        (the memory planner's buffer list, temporary tensor structs of each kernel's Prepare) and
        the true minimum is larger (e.g. 2000 vs 1568 bytes, +28 %, for an int8 8-16-4 Dense model).
    """

    arena_bytes: int
    recorded_total_bytes: int
    recorded_head_bytes: int
    recorded_tail_bytes: int
    sections: tuple[ArenaSection, ...]
    bisected_minus_recorded_bytes: int
    probes: int
    allocation_report: str


def parse_allocation_report(text: str) -> tuple[int, int, int, tuple[ArenaSection, ...]]:
    """(total, head, tail, sections) from the text `Interpreter.print_allocations()` writes to stderr."""
    figures = {}
    for part in ("total", "head", "tail"):
        match = re.search(rf"Arena allocation {part} (\d+) bytes", text)
        if match is None:
            raise ValueError(f"no 'Arena allocation {part}' line in the TFLM report: {text[:200]!r}")
        figures[part] = int(match.group(1))
    sections = tuple(
        ArenaSection(m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4)))
        for m in re.finditer(
            r"'([^']+)' used (\d+) bytes with alignment overhead \(requested (\d+) bytes for (\d+) ", text
        )
    )
    return figures["total"], figures["head"], figures["tail"], sections


def predict(model_bytes: bytes, x: np.ndarray, arena_size: int | None = None) -> np.ndarray:
    """Float outputs of a single-input, single-output TFLite model run by TFLM on float samples x
    (N, *input_shape), one per invoke.

    int8 inputs/outputs are quantised/dequantised with the tensors' scale and zero point. The arena
    defaults to DEFAULT_PREDICT_ARENA_BYTES (grown if that is too small). TFLM runs in edgekit's worker
    process: a kernel that aborts becomes an UnsupportedModelError.
    """
    _single_io_counts(model_bytes)
    outputs = predict_named(model_bytes, [x], arena_size)
    return next(iter(outputs.values()))


def _single_io_counts(model_bytes: bytes) -> None:
    n_in, n_out = _io_counts(model_bytes)
    if n_in != 1 or n_out != 1:
        raise UnsupportedModelError(f"this model has {n_in} inputs and {n_out} outputs: use "
                                    "edgekit.runners.tflm.predict_named")


def predict_named(model_bytes: bytes, inputs, arena_size: int | None = None) -> dict[str, np.ndarray]:
    """Float outputs by name of a TFLite model with any number of inputs and outputs, run by TFLM.

    inputs: an array (one input), a list in the model's input order, or a dict keyed by input name
    (see edgekit.runners.base.io_names: signature names, else tensor names, else input_<i>). Returns
    a dict in the model's output order.
    """
    _io_counts(model_bytes)  # refuse non-TFLite bytes here
    check_kernel_limits(model_bytes)
    arrays = ordered_inputs(model_bytes, inputs)
    return call_isolated(_predict_here, model_bytes, arrays, arena_size, what=f"a {len(model_bytes)} byte model",
                         stage="TensorFlow Lite Micro run")


def _predict_here(model_bytes: bytes, arrays: list[np.ndarray], arena_size: int | None) -> dict[str, np.ndarray]:
    size = int(arena_size) if arena_size is not None else DEFAULT_PREDICT_ARENA_BYTES
    while True:
        try:
            interpreter = _micro_interpreter(model_bytes, size)
            break
        except ArenaTooSmallError:
            if arena_size is not None or size >= MAX_ARENA_BYTES:
                raise
            size *= 4
    n_in, n_out = _io_counts(model_bytes)
    in_details = [interpreter.get_input_details(i) for i in range(n_in)]
    out_details = [interpreter.get_output_details(i) for i in range(n_out)]
    arrays = [as_batch(x, detail["shape"]) for x, detail in zip(arrays, in_details)]
    count = len(arrays[0]) if arrays else 0
    batch = int(in_details[0]["shape"][0]) if in_details else 1
    outputs: list[list[np.ndarray]] = [[] for _ in out_details]
    for start in range(0, count, batch):
        for i, (x, detail) in enumerate(zip(arrays, in_details)):
            chunk = pad_batch(x[start:start + batch], batch)
            interpreter.set_input(to_input_tensor(chunk, detail["dtype"], _quantization(detail)), i)
        interpreter.reset()  # variable tensors (a fused LSTM's state) back to zero: each sample starts fresh
        interpreter.invoke()
        for i, detail in enumerate(out_details):
            outputs[i].append(from_output_tensor(interpreter.get_output(i), _quantization(detail)))
    _, output_names = io_names(model_bytes)
    return {name: (np.concatenate(chunks)[:count] if chunks else np.zeros((0,), np.float32))
            for name, chunks in zip(output_names, outputs)}


# ----------------------------------------------------------------------------- arena bisection


@dataclass(frozen=True)
class _Probe:
    ok: bool
    crashed: bool
    log: str
    exit_code: int | None = None  # of a crashed child: -11 is a segfault


class _ProbeWorker:
    """A child process that builds a TFLM interpreter per requested arena size and reports back."""

    def __init__(self, model_path: str) -> None:
        self._model_path = model_path
        self._process: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        return subprocess.Popen(
            [sys.executable, "-m", "edgekit.runners.tflm", "--probe-worker", self._model_path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
        )

    def probe(self, arena_size: int) -> _Probe:
        if self._process is None or self._process.poll() is not None:
            self._process = self._start()
        process = self._process
        process.stdin.write(f"{arena_size}\n")
        process.stdin.flush()
        ready, _, _ = select.select([process.stdout], [], [], PROBE_TIMEOUT_S)
        line = process.stdout.readline() if ready else ""
        if not line:  # died (segfault on a tiny arena) or hung: either way this size did not work
            return _Probe(ok=False, crashed=True, log="", exit_code=self.close())
        reply = json.loads(line)
        return _Probe(ok=reply["ok"], crashed=False, log=reply["log"])

    def close(self) -> int | None:
        """Stop the child; returns its exit code (None if none was running)."""
        if self._process is None:
            return None
        if self._process.poll() is None:
            self._process.kill()
        exit_code = self._process.wait()
        for stream in (self._process.stdin, self._process.stdout):
            stream.close()
        self._process = None
        return exit_code


def measure_arena(model_bytes: bytes, max_arena_bytes: int = MAX_ARENA_BYTES, exact: bool = False) -> ArenaMeasurement:
    """The smallest TFLM tensor arena that allocates and invokes the model, and TFLM's own recording.

    Probes run in a child process (a too-small arena can segfault TFLM). An op TFLM lacks raises
    UnsupportedModelError naming it. Assumes success is monotone in the arena size (larger never
    fails where smaller worked), which holds for TFLM's single-arena allocator.

    Each probe builds an interpreter and invokes the model once (seconds on a large model), so by default
    the recording allocator's total, a lower bound, is verified by one probe and searched upwards from only
    when it falls short: two probes when activations dominate. exact=True bisects from zero instead (about
    20 probes, a few of them crashing the child on a tiny arena): the reference the default is tested against.
    """
    _io_counts(model_bytes)  # refuse non-TFLite bytes here, not in the child
    check_kernel_limits(model_bytes)
    with tempfile.TemporaryDirectory(prefix="edgekit-tflm-") as tmp:
        model_path = os.path.join(tmp, "model.tflite")
        with open(model_path, "wb") as f:
            f.write(model_bytes)
        worker = _ProbeWorker(model_path)
        try:
            return _bisect(worker, model_bytes, max_arena_bytes, exact)
        finally:
            worker.close()


def _bisect(worker: _ProbeWorker, model_bytes: bytes, max_arena_bytes: int, exact: bool = False) -> ArenaMeasurement:
    high = min(FIRST_PROBE_ARENA_BYTES, max_arena_bytes)
    probes = 1
    result = worker.probe(high)
    while not result.ok:
        if result.crashed:
            why = (" (SIGABRT: a TFLM kernel check failed, e.g. on a near-zero int8 scale from an untrained or "
                   "collapsed model)" if result.exit_code == -6 else "")
            raise UnsupportedModelError(
                f"TensorFlow Lite Micro crashed ({signal_name(result.exit_code)}{why}) preparing the model with "
                f"a {high} byte arena; edgekit stopped it: try precision int8 with real calibration --data"
            )
        if not _is_arena_shortfall(result.log) or high >= max_arena_bytes:
            _raise_for_failure(result.log, model_bytes, high)
        high = min(high * 4, max_arena_bytes)
        result = worker.probe(high)
        probes += 1
    report = result.log
    # The recording allocator's total is a lower bound of the minimum (equal when activations dominate):
    # verify it with one probe and search upwards only when it falls short, so a big model, whose every
    # probe costs an invoke of seconds, needs a few probes rather than a bisection from zero.
    recorded = parse_allocation_report(report)[0]
    low, step = recorded - 1, ARENA_ALIGNMENT_BYTES
    candidate = recorded
    if exact:
        low, candidate = 0, high
    while candidate < high:
        result = worker.probe(candidate)
        probes += 1
        if result.ok:
            high, report = candidate, result.log
            break
        low, candidate, step = candidate, candidate + step, step * 4
    while high - low > 1:
        middle = (low + high) // 2
        result = worker.probe(middle)
        probes += 1
        if result.ok:
            high, report = middle, result.log
        else:
            low = middle
    total, head, tail, sections = parse_allocation_report(report)
    return ArenaMeasurement(
        arena_bytes=high,
        recorded_total_bytes=total,
        recorded_head_bytes=head,
        recorded_tail_bytes=tail,
        sections=sections,
        bisected_minus_recorded_bytes=high - total,
        probes=probes,
        allocation_report=report.strip(),
    )


def _probe_worker_main(model_path: str) -> int:
    """Child side: read arena sizes on stdin, answer one JSON line each on the original stdout."""
    from tflite_micro.python.tflite_micro import runtime

    with open(model_path, "rb") as f:
        model_bytes = f.read()
    n_inputs, _ = _io_counts(model_bytes)
    reply = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything the C++ side prints on stdout must not corrupt the replies
    for line in sys.stdin:
        arena_size = int(line)
        ok = False
        with captured_stderr() as log:
            try:
                interpreter = runtime.Interpreter.from_bytes(model_bytes, arena_size=arena_size)
                for i in range(n_inputs):
                    detail = interpreter.get_input_details(i)
                    interpreter.set_input(np.zeros(detail["shape"], dtype=detail["dtype"]), i)
                interpreter.invoke()
                interpreter.print_allocations()
                ok = True
            except RuntimeError:
                pass
        reply.write(json.dumps({"ok": ok, "log": log.text}) + "\n")
        reply.flush()
    return 0


# ----------------------------------------------------------------------------- runner


class TFLMRunner:
    """Measure a model on TFLM: minimum arena (bisection), init time, host latency, outputs.

    Latency is TFLM's reference kernels on this host's CPU: useful to compare models, not a
    microcontroller's latency (use a device profile's estimate for that).
    """

    name = "tflm"

    def __init__(self, warmup: int = 1, runs: int = 20) -> None:
        if warmup < 0 or runs < 1:
            raise ValueError(f"TFLMRunner: warmup={warmup} >= 0, runs={runs} >= 1")
        self.warmup, self.runs = warmup, runs

    def run(self, model_bytes: bytes, data: np.ndarray | None = None) -> Measurement:
        """Measure in edgekit's worker process: a TFLM kernel that aborts becomes an UnsupportedModelError."""
        _io_counts(model_bytes)
        check_kernel_limits(model_bytes)
        return call_isolated(self._run_here, model_bytes, data, what=f"a {len(model_bytes)} byte model",
                             stage="TensorFlow Lite Micro benchmark")

    def _run_here(self, model_bytes: bytes, data: np.ndarray | None = None) -> Measurement:
        arena = measure_arena(model_bytes)
        arena_size = arena.arena_bytes + ARENA_ALIGNMENT_BYTES  # slack in case of an unaligned buffer
        rss = RssWatch()
        start = time.perf_counter()
        interpreter = _micro_interpreter(model_bytes, arena_size)
        init_ms = (time.perf_counter() - start) * 1e3
        rss.sample()
        n_in, _ = _io_counts(model_bytes)
        in_details = [interpreter.get_input_details(i) for i in range(n_in)]
        arrays = None
        if data is not None:  # one array, or several inputs as a list in interpreter order / a dict by name
            arrays = [as_batch(x, d["shape"]) for x, d in zip(ordered_inputs(model_bytes, data), in_details)]
        for i, (detail, sample) in enumerate(zip(in_details, timing_inputs(in_details, arrays))):
            interpreter.set_input(to_input_tensor(sample, detail["dtype"], _quantization(detail)), i)
        for _ in range(self.warmup):
            interpreter.invoke()
        samples_ms = []
        for _ in range(self.runs):
            t0 = time.perf_counter_ns()
            interpreter.invoke()
            samples_ms.append((time.perf_counter_ns() - t0) / 1e6)
        rss.sample()
        named = by_output = None
        if arrays is not None:
            from edgekit.runners import litert
            from edgekit.runners.agreement import agreement as compare

            named = predict_named(model_bytes, arrays, arena_size=arena_size)
            reference = litert.predict_named(model_bytes, arrays)
            by_output = {name: compare(reference[name], y) for name, y in named.items()}
        rss.sample()
        agreement = single_output(by_output)
        return Measurement(
            runner=self.name,
            model_size_bytes=len(model_bytes),
            init_ms=init_ms,
            runs=self.runs,
            threads=1,
            arena_bytes=arena.arena_bytes,
            arena_recorded_bytes=arena.recorded_total_bytes,
            peak_rss_growth_bytes=rss.growth_bytes,
            outputs=single_output(named),
            outputs_by_name=named,
            agreement=agreement,
            agreement_by_output=by_output,
            agreement_reference="litert" if by_output is not None else None,
            device="host (TFLM reference kernels)",
            notes=(
                "latency is TFLM reference kernels on this host's CPU, not a microcontroller",
                (f"arena {arena.arena_bytes} bytes by bisection; recording allocator reported "
                 f"{arena.recorded_total_bytes} (head {arena.recorded_head_bytes}, "
                 f"tail {arena.recorded_tail_bytes})"),
                _HOST_NOTE,
            ),
            **latency_summary_ms(samples_ms),
        )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--probe-worker":
        sys.exit(_probe_worker_main(sys.argv[2]))
    sys.exit("usage: python -m edgekit.runners.tflm --probe-worker MODEL.tflite (internal to measure_arena)")
