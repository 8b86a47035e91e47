"""Run a function in a child Python process, so a native crash becomes a one-line edgekit error.

TFLite's converter (its calibrator), TensorFlow Lite Micro and LiteRT are C++ that can abort
(a failed kernel CHECK: SIGABRT) or segfault on models they do not expect, taking the whole process
and every message with it. `call_isolated` runs a module-level function in one long-lived worker
process (started at the first call, reused for the rest of the command, restarted after a crash):

    >>> call_isolated(tflm.predict_here, model_bytes, x, what="model 'vww'", stage="TFLM run")  # doctest: +SKIP

A crash, or no answer within `timeout_s`, raises UnsupportedModelError (exit 2) naming `what` and
`stage`, with the native check that failed when the child printed one. An exception raised in the
child is raised again here, unchanged. Inside the worker (or with EDGEKIT_NO_ISOLATION=1) the
function simply runs in this process.
"""

from __future__ import annotations

import atexit
import os
import pickle
import re
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from edgekit.errors import UnsupportedModelError

WORKER_ENV = "EDGEKIT_ISOLATED_WORKER"   # set in the child: calls made there run inline
DISABLE_ENV = "EDGEKIT_NO_ISOLATION"     # "1": run everything in this process (debugging)
DEFAULT_TIMEOUT_S = 3600.0
_HEADER = struct.Struct(">Q")
# Lines a native failure leaves on stderr: TFLM / TFLite CHECKs, absl fatal logs, Python's own.
_REASON = re.compile(r"(Check failed.*|CHECK failed.*|Fatal Python error: .*|.*Assertion .* failed.*|"
                     r"terminate called .*|F\d{4} .*)")


class NotPortable(Exception):
    """Raise it from a function run in the worker when its inputs cannot be rebuilt there: the caller
    then runs the function in its own process (unisolated)."""


def in_worker() -> bool:
    """Whether this process is an isolation worker (or isolation is switched off)."""
    return os.environ.get(WORKER_ENV) == "1" or os.environ.get(DISABLE_ENV) == "1"


def call_isolated(function, *args, what: str, stage: str, timeout_s: float | None = DEFAULT_TIMEOUT_S,
                  **kwargs):
    """function(*args, **kwargs) run in the worker process; its return value (pickled back).

    function must be importable by name (module level, or a method of a module-level class).
    what names the model ("model 'vww'"), stage the step ("TFLite conversion to int8").
    """
    if in_worker():
        return function(*args, **kwargs)
    with _lock:
        return _shared_worker().call(function, args, kwargs, what, stage, timeout_s)


def signal_name(exit_code: int | None) -> str:
    """'SIGABRT' for exit code -6 (or 134 from a shell), else the code itself."""
    if exit_code is None:
        return "no exit code"
    number = -exit_code if exit_code < 0 else exit_code - 128 if exit_code > 128 else 0
    try:
        return signal.Signals(number).name if number else f"exit code {exit_code}"
    except ValueError:
        return f"exit code {exit_code}"


class _Worker:
    """One child process serving pickled calls over its stdin / stdout pipes, length-prefixed."""

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self._log = None

    def _start(self) -> subprocess.Popen:
        from edgekit._tf import is_verbose

        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        env[WORKER_ENV] = "1"
        verbose = is_verbose()
        self.shutdown()
        env["EDGEKIT_VERBOSE"] = "1" if verbose else "0"
        self._log = None if verbose else tempfile.TemporaryFile(mode="w+b")  # noqa: SIM115 - lives with the child
        return subprocess.Popen([sys.executable, "-m", "edgekit.runners.isolated"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=self._log, env=env, bufsize=0)

    def call(self, function, args, kwargs, what: str, stage: str, timeout_s: float | None):
        payload = pickle.dumps((function, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        if self._process is None or self._process.poll() is not None:
            self._process = self._start()
        log_start = self._log.seek(0, os.SEEK_END) if self._log is not None else 0
        timed_out = False
        try:
            self._process.stdin.write(_HEADER.pack(len(payload)) + payload)
            reply = _read_message(self._process.stdout, timeout_s)
        except BrokenPipeError:
            reply = None
        except TimeoutError:
            reply, timed_out = None, True
        except KeyboardInterrupt:
            self.close(kill=True)
            raise
        if reply is None:
            exit_code = self.close(kill=timed_out)
            raise self._failure(what, stage, timed_out, exit_code, timeout_s, log_start)
        status, value = pickle.loads(reply)
        if status == "ok":
            return value
        if status == "not-portable":
            return function(*args, **kwargs)
        raise value

    def _failure(self, what, stage, timed_out, exit_code, timeout_s, log_start) -> UnsupportedModelError:
        if timed_out:
            return UnsupportedModelError(f"{stage} of {what} did not finish within {timeout_s:.0f} s and was "
                                         "stopped; try a smaller input size or another precision")
        reason = self._native_reason(log_start)
        return UnsupportedModelError(
            f"{stage} of {what} crashed natively ({signal_name(exit_code)}{': ' + reason if reason else ''}); "
            "edgekit stopped it: try another precision or device, or rerun with --verbose to see the native log"
        )

    def _native_reason(self, log_start: int) -> str:
        if self._log is None:
            return ""
        self._log.seek(log_start)
        text = self._log.read()[-20000:].decode("utf-8", errors="replace")
        found = [m.group(1).strip() for m in _REASON.finditer(text)]
        found = [line for line in found if not line.startswith("Fatal Python error")] or found
        return found[0][:200] if found else ""

    def close(self, kill: bool = False) -> int | None:
        process, self._process = self._process, None
        if process is None:
            return None
        if kill and process.poll() is None:
            process.kill()
        try:
            process.stdin.close()
        except OSError:
            pass
        try:
            exit_code = process.wait(timeout=None if kill else 30)
        except subprocess.TimeoutExpired:
            process.kill()
            exit_code = process.wait()
        process.stdout.close()
        return exit_code


    def shutdown(self) -> None:
        """Stop the child and drop its log (at exit, or before starting a new child)."""
        self.close()
        if self._log is not None:
            self._log.close()
            self._log = None


def _read_exactly(stream, count: int, deadline: float | None) -> bytes | None:
    """count bytes, or None at end of file (the child died); TimeoutError past the deadline."""
    import time

    chunks, remaining = [], count
    fd = stream.fileno()
    while remaining:
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            raise TimeoutError
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _read_message(stream, timeout_s: float | None) -> bytes | None:
    import time

    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    header = _read_exactly(stream, _HEADER.size, deadline)
    if header is None:
        return None
    return _read_exactly(stream, _HEADER.unpack(header)[0], deadline)


_lock = threading.Lock()
_worker: _Worker | None = None


def _shared_worker() -> _Worker:
    global _worker
    if _worker is None:
        _worker = _Worker()
        atexit.register(_worker.shutdown)
    return _worker


# ----------------------------------------------------------------------------- child side


def _serve() -> int:
    """Child: answer length-prefixed pickled calls on stdin with ("ok" | "error" | "not-portable", value)."""
    if os.environ.get("EDGEKIT_VERBOSE") == "1":
        from edgekit._tf import set_verbose

        set_verbose(True)
    requests = os.fdopen(os.dup(0), "rb", buffering=0)
    replies = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # whatever native code prints on stdout must not corrupt the replies
    while True:
        header = requests.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return 0
        payload = _read_payload(requests, _HEADER.unpack(header)[0])
        if payload is None:
            return 0
        reply = _answer(payload)
        replies.write(_HEADER.pack(len(reply)) + reply)


def _read_payload(requests, size: int) -> memoryview | None:
    """size bytes from the pipe into one preallocated buffer (None at end of file). Appending each pipe read to
    a bytes object copied the whole payload per read: a 100 MB model took minutes of memcpy."""
    payload = memoryview(bytearray(size))
    done = 0
    while done < size:
        count = requests.readinto(payload[done:])
        if not count:
            return None
        done += count
    return payload


def _answer(payload) -> bytes:
    try:
        function, args, kwargs = pickle.loads(payload)
        result = ("ok", function(*args, **kwargs))
    except NotPortable:
        result = ("not-portable", None)
    except Exception as exc:  # noqa: BLE001 - any exception is raised again in the parent
        result = ("error", exc)
    try:
        return pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - an unpicklable exception or result: its text still reaches the user
        detail = result[1]
        return pickle.dumps(("error", RuntimeError(f"{type(detail).__name__}: {detail}")))


if __name__ == "__main__":  # run as a module: serve from the importable copy, whose classes callers raise
    from edgekit.runners.isolated import _serve as serve

    sys.exit(serve())
