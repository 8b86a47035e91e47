"""Measure a TFLite model on an Android phone over adb, with TFLite's `benchmark_model` or the edgekit demo app.

    >>> runner = AdbRunner(binary="benchmark_model", threads=4, delegate="xnnpack")   # doctest: +SKIP
    >>> m = runner.run(tflite_bytes)                                                   # doctest: +SKIP

benchmark_model (tensorflow/lite/tools/benchmark, prebuilt binaries on tensorflow.org) prints count /
avg / std / min / max of the timed runs, "Inference timings in us: Init ..., First inference ...,
Warmup (avg) ..., Inference (avg) ..." and a memory line; newer builds add p5 / median / p95 to the
count line. Percentiles it does not print are None: p90 / p99 need per-run times, which the demo
app (android_demo/, tool="demo") logs one line per run:

    EDGEKIT_INIT ms=12.345 delegate=xnnpack threads=4 model_bytes=41720
    EDGEKIT_RUN i=0 ms=1.234
    EDGEKIT_DONE runs=50

Errors say what to do: adb missing from PATH, no device (or several and no serial), the binary absent
locally and on the device, the tool failing on the device.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from edgekit.errors import BadInputError
from edgekit.runners.base import Measurement, latency_summary_ms

DEVICE_DIR = "/data/local/tmp/edgekit"
DEFAULT_DEVICE_BINARY = "/data/local/tmp/benchmark_model"
DELEGATES = ("cpu", "xnnpack", "gpu", "nnapi")
TOOLS = ("benchmark_model", "demo")
DEMO_PACKAGE = "dev.edgekit.demo"
DEMO_ACTIVITY = f"{DEMO_PACKAGE}/.MainActivity"
DEMO_LOG_TAG = "EdgekitBench"
ADB_TIMEOUT_S = 600.0

_DELEGATE_FLAGS = {
    "cpu": ["--use_xnnpack=false"],
    "xnnpack": ["--use_xnnpack=true"],
    "gpu": ["--use_gpu=true"],
    "nnapi": ["--use_nnapi=true"],
}


# ----------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class BenchmarkModelResult:
    """Figures parsed from benchmark_model's output; times in microseconds, memory in MB."""

    runs: int
    avg_us: float
    std_us: float | None
    min_us: float | None
    max_us: float | None
    median_us: float | None       # newer builds only (p5= median= p95=)
    init_us: float | None
    first_inference_us: float | None
    warmup_avg_us: float | None
    memory_init_mb: float | None  # "Peak memory footprint" / "Memory footprint delta ...": init=
    memory_overall_mb: float | None
    peak_memory_mb: float | None  # "Overall peak memory footprint (MB) via periodic monitoring"


_NUMBER = r"([0-9][0-9.]*(?:e[+-]?[0-9]+)?)"
_COUNT_LINE = re.compile(rf"count={_NUMBER} first={_NUMBER} curr={_NUMBER} min={_NUMBER} max={_NUMBER} "
                         rf"avg={_NUMBER} std={_NUMBER}(?: p5={_NUMBER} median={_NUMBER} p95={_NUMBER})?")
_TIMINGS = re.compile(rf"Inference timings in us: Init: {_NUMBER}, First inference: {_NUMBER}, "
                      rf"Warmup \(avg\): {_NUMBER}, Inference \(avg\): {_NUMBER}")
_OLD_TIMINGS = re.compile(rf"Average inference timings in us: Warmup: {_NUMBER}, Init: {_NUMBER}, "
                          rf"(?:no stats|Inference): {_NUMBER}")
_MEMORY = re.compile(rf"(?:Peak memory footprint|Memory footprint delta from the start of the tool) "
                     rf"\(MB\): init={_NUMBER} overall={_NUMBER}")
_PEAK_MEMORY = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: {_NUMBER}")


def parse_benchmark_model_output(text: str) -> BenchmarkModelResult:
    """Parse benchmark_model's stdout/stderr (any of its formats since TF 1.14); BadInputError if no timings."""
    text = text.replace("\r", "")
    counts = list(_COUNT_LINE.finditer(text))
    timings = _TIMINGS.search(text)
    old = _OLD_TIMINGS.search(text)
    if not counts and timings is None and old is None:
        tail = " | ".join(line.strip() for line in text.strip().splitlines()[-3:])
        raise BadInputError(f"benchmark_model printed no timings; its last lines: {tail[:300] or '(nothing)'}")
    regular = counts[-1] if counts else None  # the warm-up count line comes first, the timed runs last

    def number(match, group):
        return float(match.group(group)) if match is not None and match.group(group) is not None else None

    memory = _MEMORY.search(text)
    peak = _PEAK_MEMORY.search(text)
    if timings is not None:
        init, first, warmup, avg = (number(timings, g) for g in (1, 2, 3, 4))
    elif old is not None:
        warmup, init, avg = (number(old, g) for g in (1, 2, 3))
        first = None
    else:
        init = first = warmup = None
        avg = number(regular, 6)
    return BenchmarkModelResult(
        runs=int(float(regular.group(1))) if regular else 0,
        avg_us=float(avg if avg is not None else number(regular, 6)),
        std_us=number(regular, 7), min_us=number(regular, 4), max_us=number(regular, 5),
        median_us=number(regular, 9), init_us=init, first_inference_us=first, warmup_avg_us=warmup,
        memory_init_mb=number(memory, 1), memory_overall_mb=number(memory, 2), peak_memory_mb=number(peak, 1),
    )


@dataclass(frozen=True)
class DemoRunLog:
    """What the demo app logged: init time, per-run latencies, its settings."""

    init_ms: float | None
    run_ms: tuple[float, ...]
    delegate: str | None
    threads: int | None
    done: bool


_DEMO_INIT = re.compile(rf"EDGEKIT_INIT ms={_NUMBER}(?: delegate=(\w+))?(?: threads=(\d+))?")
_DEMO_RUN = re.compile(rf"EDGEKIT_RUN i=(\d+) ms={_NUMBER}")
_DEMO_ERROR = re.compile(r"EDGEKIT_ERROR (.*)")


def parse_demo_log(text: str) -> DemoRunLog:
    """Parse the demo app's logcat lines (any logcat prefix before the EDGEKIT_ token)."""
    error = _DEMO_ERROR.search(text)
    if error:
        raise BadInputError(f"the edgekit demo app failed on the device: {error.group(1).strip()}")
    init = _DEMO_INIT.search(text)
    runs = {int(m.group(1)): float(m.group(2)) for m in _DEMO_RUN.finditer(text)}
    return DemoRunLog(
        init_ms=float(init.group(1)) if init else None,
        run_ms=tuple(runs[i] for i in sorted(runs)),
        delegate=init.group(2) if init else None,
        threads=int(init.group(3)) if init and init.group(3) else None,
        done="EDGEKIT_DONE" in text,
    )


# ----------------------------------------------------------------------------- adb


class Adb:
    """Thin wrapper over the adb executable; every failure becomes a one-line BadInputError."""

    def __init__(self, serial: str | None = None, executable: str | None = None) -> None:
        executable = executable or os.environ.get("EDGEKIT_ADB") or "adb"
        found = shutil.which(executable)
        if found is None:
            raise BadInputError(f"adb not found ({executable!r} is not on PATH): install Android platform-tools "
                                "(https://developer.android.com/tools/releases/platform-tools) or set EDGEKIT_ADB")
        self.executable = found
        self.serial = serial or self._only_device()

    def _only_device(self) -> str:
        out = self._run(["devices"], serial=False)
        devices = [line.split()[0] for line in out.splitlines()[1:] if line.strip().endswith("device")]
        unauthorized = [line.split()[0] for line in out.splitlines()[1:] if "unauthorized" in line]
        if unauthorized and not devices:
            raise BadInputError(f"adb device {unauthorized[0]} is unauthorized: accept the USB debugging prompt on "
                                "the phone")
        if not devices:
            raise BadInputError("no Android device attached (adb devices lists none): connect a phone with USB "
                                "debugging on, or start an emulator")
        if len(devices) > 1:
            raise BadInputError(f"{len(devices)} Android devices attached ({', '.join(devices)}): choose one with "
                                "--device-serial")
        return devices[0]

    def _run(self, args: list[str], serial: bool = True, check: bool = True,
             timeout: float = ADB_TIMEOUT_S) -> str:
        command = [self.executable] + (["-s", self.serial] if serial else []) + args
        try:
            done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BadInputError(f"adb {' '.join(args[:2])} did not finish in {timeout:.0f} s") from None
        output = (done.stdout or "") + (done.stderr or "")
        if check and done.returncode != 0:
            last = output.strip().splitlines()[-1] if output.strip() else f"exit code {done.returncode}"
            raise BadInputError(f"adb {' '.join(args[:2])} failed: {last}")
        return output

    def shell(self, command: str, check: bool = True) -> str:
        return self._run(["shell", command], check=check)

    def push(self, local: str, remote: str) -> None:
        self._run(["push", local, remote])

    def exists(self, remote: str) -> bool:
        return self.shell(f"ls {remote} >/dev/null 2>&1 && echo yes || echo no", check=False).strip().endswith("yes")

    def clear_logcat(self) -> None:
        self._run(["logcat", "-c"])

    def logcat(self, tag: str) -> str:
        return self._run(["logcat", "-d", "-s", f"{tag}:I"])


# ----------------------------------------------------------------------------- runner


class AdbRunner:
    """Measure a model on an Android phone: push it, run benchmark_model (or the demo app), parse the figures.

    binary: a local benchmark_model executable to push, or None to use `device_binary` already on the
    phone. delegate: cpu (XNNPACK off), xnnpack, gpu or nnapi.
    """

    name = "adb"

    def __init__(self, serial: str | None = None, binary: str | None = None,
                 device_binary: str = DEFAULT_DEVICE_BINARY, threads: int = 1, delegate: str = "xnnpack",
                 warmup: int = 5, runs: int = 50, tool: str = "benchmark_model", adb: str | None = None) -> None:
        if delegate not in DELEGATES:
            raise BadInputError(f"unknown delegate {delegate!r}; use one of {', '.join(DELEGATES)}")
        if tool not in TOOLS:
            raise BadInputError(f"unknown adb tool {tool!r}; use one of {', '.join(TOOLS)}")
        if threads < 1 or warmup < 0 or runs < 1:
            raise BadInputError(f"threads={threads} >= 1, warmup={warmup} >= 0 and runs={runs} >= 1 are needed")
        if binary is not None and not os.path.isfile(binary):
            raise BadInputError(f"{binary}: no such benchmark_model binary; download the android_aarch64 build "
                                "from tensorflow.org/lite/performance/measurement or omit it to use one on the device")
        self.serial, self.binary, self.device_binary = serial, binary, device_binary
        self.threads, self.delegate, self.warmup, self.runs, self.tool = threads, delegate, warmup, runs, tool
        self.adb_executable = adb

    def run(self, model_bytes: bytes, data: np.ndarray | None = None) -> Measurement:
        adb = Adb(self.serial, self.adb_executable)
        remote_model = f"{DEVICE_DIR}/model.tflite"
        adb.shell(f"mkdir -p {DEVICE_DIR}")
        with tempfile.TemporaryDirectory(prefix="edgekit-adb-") as tmp:
            local = os.path.join(tmp, "model.tflite")
            with open(local, "wb") as f:
                f.write(model_bytes)
            adb.push(local, remote_model)
        where = f"{self.tool}, {self.delegate}, {self.threads} thread(s)"
        notes = [f"measured on Android device {adb.serial} over adb ({where})"]
        if data is not None:
            notes.append("data is not sent to the phone: the tools time random inputs, outputs are not compared")
        if self.tool == "demo":
            return self._run_demo(adb, remote_model, len(model_bytes), notes)
        return self._run_benchmark_model(adb, remote_model, len(model_bytes), notes)

    def _device_binary(self, adb: Adb) -> str:
        if self.binary is not None:
            adb.push(self.binary, self.device_binary)
            adb.shell(f"chmod 755 {self.device_binary}")
        elif not adb.exists(self.device_binary):
            raise BadInputError(f"benchmark_model is not on the device at {self.device_binary}: pass --binary "
                                "PATH (the android_aarch64 build) so edgekit pushes it")
        return self.device_binary

    def _run_benchmark_model(self, adb: Adb, remote_model: str, size: int, notes: list[str]) -> Measurement:
        binary = self._device_binary(adb)
        flags = [f"--graph={remote_model}", f"--num_threads={self.threads}", f"--warmup_runs={self.warmup}",
                 f"--num_runs={self.runs}", "--report_peak_memory_footprint=true", *_DELEGATE_FLAGS[self.delegate]]
        output = adb.shell(" ".join([binary, *flags]) + " 2>&1", check=False)
        result = parse_benchmark_model_output(output)
        notes.append("benchmark_model prints mean/std/min/max only: p90/p99 need --tool demo (one time per run)")
        memory = result.peak_memory_mb if result.peak_memory_mb is not None else result.memory_overall_mb
        return Measurement(
            runner=self.name, model_size_bytes=size,
            init_ms=result.init_us / 1e3 if result.init_us is not None else None,
            latency_ms_p50=result.median_us / 1e3 if result.median_us is not None else None,
            latency_ms_p90=None, latency_ms_p99=None, runs=result.runs, threads=self.threads,
            peak_rss_growth_bytes=int(memory * 1024 * 1024) if memory is not None else None,
            latency_ms_mean=result.avg_us / 1e3,
            latency_ms_std=result.std_us / 1e3 if result.std_us is not None else None,
            latency_ms_min=result.min_us / 1e3 if result.min_us is not None else None,
            notes=tuple(notes), device=f"android {adb.serial}",
        )

    def _run_demo(self, adb: Adb, remote_model: str, size: int, notes: list[str]) -> Measurement:
        adb.shell(f"chmod 644 {remote_model}")
        adb.clear_logcat()
        adb.shell(f"am start -W -S -n {DEMO_ACTIVITY} --es model {remote_model} --ei runs {self.runs} "
                  f"--ei warmup {self.warmup} --ei threads {self.threads} --es delegate {self.delegate}")
        deadline = time.monotonic() + ADB_TIMEOUT_S
        log = parse_demo_log("")
        while time.monotonic() < deadline:
            log = parse_demo_log(adb.logcat(DEMO_LOG_TAG))
            if log.done:
                break
            time.sleep(1.0)
        if not log.run_ms:
            raise BadInputError(f"the edgekit demo app ({DEMO_PACKAGE}) logged no runs: is it installed? "
                                "see android_demo/README.md")
        return Measurement(
            runner=self.name, model_size_bytes=size, init_ms=log.init_ms, runs=len(log.run_ms),
            threads=log.threads or self.threads, notes=tuple(notes), device=f"android {adb.serial}",
            **latency_summary_ms(log.run_ms),
        )
