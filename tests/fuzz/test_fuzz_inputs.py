"""Structured fuzzing of every input format edgekit reads (issue 11).

Real small files are built here (.tflite, .h5, .keras, .npz, a profile YAML), then mutated: byte flips,
truncations, zeroed or duplicated ranges, and format-aware edits (numbers in configs and YAML made huge,
negative or deep). Most mutants go in-process through the loaders, which may only succeed or raise an
EdgekitError; .tflite mutants that pass validation run in a child process (a native crash there must
not take pytest down) and a sample goes through the real CLI: exit code in {0, 2, 3}, no traceback,
peak memory under a cap, nothing written outside the run's folder.
"""

from __future__ import annotations

import collections
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgekit.data import load_data
from edgekit.errors import EdgekitError
from edgekit.model_io.loading import load_model
from edgekit.model_io.tflite_check import validate_tflite
from edgekit.profiles import load_profile, profiles_dir

REPO = Path(__file__).resolve().parents[2]
RSS_CAP_BYTES = 1_500_000_000   # per child; the hostile files themselves ask for gigabytes
pytestmark = pytest.mark.slow


def _mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    kind = rng.choice(("flip", "truncate", "zero", "duplicate", "flip"))
    if kind == "flip":
        for _ in range(rng.randint(1, 16)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == "truncate":
        b = b[: rng.randrange(len(b))]
    elif kind == "zero":
        start = rng.randrange(len(b))
        b[start:start + rng.randint(1, 256)] = bytes(len(b[start:start + rng.randint(1, 256)]))
    else:
        start = rng.randrange(len(b))
        b[start:start] = b[start:start + rng.randint(1, 512)]
    return bytes(b)


_NUMBER = re.compile(r"(?<![\w.])\d+(?![\w.])")


def _mutate_text(text: str, rng: random.Random) -> str:
    """Format-aware edits: a number made huge/negative/long, a line dropped or repeated, nesting added."""
    kind = rng.choice(("number", "number", "drop", "repeat", "nest"))
    matches = list(_NUMBER.finditer(text))
    if kind == "number" and matches:
        m = rng.choice(matches)
        value = rng.choice(("4194304", "-1", "0", "9" * 5000, "1e309", "2147483648", "null", '"x"'))
        return text[: m.start()] + value + text[m.end():]
    lines = text.splitlines(keepends=True)
    i = rng.randrange(len(lines))
    if kind == "drop":
        return "".join(lines[:i] + lines[i + 1:])
    if kind == "repeat":
        return "".join(lines[: i + 1] + lines[i:])
    depth = rng.choice((40, 3000))
    return text.replace("[", "[" * depth, 1).replace("]", "]" * depth, 1)


class _Hung(Exception):
    pass


def _alarm(signum, frame):
    raise _Hung()


def _expect_clean(outcomes: collections.Counter, fn, path) -> None:
    """`fn(path)` may succeed or raise an EdgekitError; a hang (over 30 s) or any other exception fails."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(30)
    try:
        fn(path)
        outcomes["accepted"] += 1
    except EdgekitError:
        outcomes["refused"] += 1
    except _Hung:
        shutil.copy(path, Path(__file__).parent / f"hung-{path.name}") if os.environ.get("KEEP_FUZZ") else None
        pytest.fail(f"{path.name}: {getattr(fn, '__name__', fn)} did not return within 30 s")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory, keras):
    folder = tmp_path_factory.mktemp("fuzz_seeds")
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))
    model.save(folder / "m.h5")
    model.save(folder / "m.keras")
    from edgekit._tf import tensorflow

    converter = tensorflow().lite.TFLiteConverter.from_keras_model(model)
    (folder / "m.tflite").write_bytes(converter.convert())
    np.savez(folder / "d.npz", x=np.random.default_rng(0).random((32, 8, 8, 3), dtype=np.float32),
             y=np.arange(32) % 3)
    shutil.copy(profiles_dir() / "stm32l4r5.yaml", folder / "board.yaml")
    return folder


def test_fuzzed_models_data_and_profiles_in_process(seeds, tmp_path):
    rng = random.Random(11)
    counts: dict[str, collections.Counter] = {}
    # .h5 and .keras: structured edits of the config JSON, and raw byte mutations.
    h5_text = _h5_config(seeds / "m.h5")
    for fmt, n in (("h5", 40), ("keras", 40)):
        outcomes = counts.setdefault(fmt, collections.Counter())
        for i in range(n):
            path = tmp_path / f"f{i}.{fmt}"
            if fmt == "h5" and i % 2 == 0:
                shutil.copy(seeds / "m.h5", path)
                _set_h5_config(path, _mutate_text(h5_text, rng))
            elif fmt == "keras" and i % 2 == 0:
                _rewrite_keras_config(seeds / "m.keras", path, rng)
            else:
                path.write_bytes(_mutate_bytes((seeds / f"m.{fmt}").read_bytes(), rng))
            _expect_clean(outcomes, load_model, path)
    for fmt, n, loader in (("npz", 120, load_data), ("yaml", 120, load_profile)):
        outcomes = counts.setdefault(fmt, collections.Counter())
        seed_file = seeds / ("d.npz" if fmt == "npz" else "board.yaml")
        for i in range(n):
            path = tmp_path / f"f{i}.{fmt}"
            if fmt == "yaml" and i % 2 == 0:
                path.write_text(_mutate_text(seed_file.read_text(), rng))
            elif fmt == "npz" and i % 2 == 0:
                _rewrite_npy_headers(seed_file, path, rng)
            else:
                path.write_bytes(_mutate_bytes(seed_file.read_bytes(), rng))
            _expect_clean(outcomes, loader, path)
    print("\nfuzz in-process outcomes:", {k: dict(v) for k, v in counts.items()})
    for fmt, outcomes in counts.items():
        assert outcomes["refused"] > 0, fmt  # the mutations do reach the guards


_RUN_TFLITE = """
import sys, numpy as np
from edgekit.runners.litert import predict
for path in sys.argv[1:]:
    data = open(path, 'rb').read()
    try:
        predict(data, np.zeros((1, 8, 8, 3), np.float32))
        print('ran', flush=True)
    except Exception as exc:
        print('error', type(exc).__name__, flush=True)
"""


_MEASURE = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    f.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024))
sys.exit(done.returncode)
"""


def _run_measured(cmd: list[str], cwd) -> tuple[subprocess.CompletedProcess, int]:
    """Run cmd; its exit, output, and the peak RSS of that command and its children. A small wrapper process
    starts it: a child forked straight from this (large) pytest process would count pytest's pages in its
    ru_maxrss, and RUSAGE_CHILDREN here would mix in the session's other children."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        done = subprocess.run([sys.executable, "-c", _MEASURE, rss.name, *cmd], check=False, cwd=cwd,
                              capture_output=True, text=True, timeout=300)
        return done, int(rss.read() or 0)

def test_fuzzed_tflite_validated_then_run_in_a_child_and_through_the_cli(seeds, tmp_path):
    rng = random.Random(12)
    original = (seeds / "m.tflite").read_bytes()
    passed, outcomes = [], collections.Counter()
    for i in range(300):
        data = _mutate_bytes(original, rng)
        try:
            validate_tflite(f"f{i}.tflite", data)
        except EdgekitError:
            outcomes["refused"] += 1
            continue
        path = tmp_path / f"f{i}.tflite"
        path.write_bytes(data)
        passed.append(str(path))
    outcomes["validated"] = len(passed)
    child = subprocess.run([sys.executable, "-c", _RUN_TFLITE, *passed[:40]], check=False, cwd=REPO,
                           capture_output=True, text=True, timeout=300)
    outcomes["child_exit"] = child.returncode
    print("\nfuzz .tflite outcomes:", dict(outcomes), collections.Counter(child.stdout.split()))
    assert outcomes["refused"] > 100
    assert child.returncode == 0, child.stderr[-500:]  # no native crash on what validation let through

    # A sample through the real CLI: a truncated file, a flipped one, and one validation let through.
    run_dir = tmp_path / "cli"
    run_dir.mkdir()
    truncated = run_dir / "truncated.tflite"
    truncated.write_bytes(original[: len(original) // 2])
    flipped = run_dir / "flipped.tflite"
    flipped.write_bytes(original[:100] + bytes(64) + original[164:])
    samples = [truncated, flipped] + [Path(p) for p in passed[:1]]
    before = sorted(os.listdir(tmp_path))
    for sample in samples:
        done, peak_rss_bytes = _run_measured([sys.executable, "-m", "edgekit.cli.main", "bench", str(sample),
                                              "--runs", "2", "--warmup", "0"], cwd=run_dir)
        assert 0 < peak_rss_bytes < RSS_CAP_BYTES, (sample.name, peak_rss_bytes)
        assert done.returncode in (0, 2, 3), (sample.name, done.stderr[-500:])
        assert "Traceback" not in done.stderr
        if done.returncode:
            assert len(done.stderr.strip().splitlines()) == 1 and len(done.stderr.strip()) <= 300
    assert sorted(os.listdir(run_dir)) == ["flipped.tflite", "truncated.tflite"]  # bench writes nothing
    assert sorted(os.listdir(tmp_path)) == before


def _h5_config(path: Path) -> str:
    import h5py

    with h5py.File(path) as h5:
        return json.dumps(json.loads(h5.attrs["model_config"]), indent=1)


def _set_h5_config(path: Path, text: str) -> None:
    import h5py

    with h5py.File(path, "r+") as h5:
        h5.attrs["model_config"] = text


def _rewrite_keras_config(source: Path, target: Path, rng: random.Random) -> None:
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "config.json":
                data = _mutate_text(json.dumps(json.loads(data), indent=1), rng).encode()
            dst.writestr(info, data)


def _rewrite_npy_headers(source: Path, target: Path, rng: random.Random) -> None:
    """Re-zip an .npz with each array's header text edited (shape, dtype, order) and its data kept."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            header_len = 10 + int.from_bytes(data[8:10], "little")
            header = data[10:header_len].decode("latin1")
            edit = rng.choice(("shape", "dtype", "order", "text"))
            if edit == "shape":
                header = re.sub(r"'shape': \([^)]*\)", rng.choice(("'shape': (10**12, 8, 8, 3)",
                                "'shape': (64, 8, 8, 3)", "'shape': (-5,)", "'shape': ()", "'shape': (0, 8)")), header)
            elif edit == "dtype":
                header = re.sub(r"'descr': '[^']*'", rng.choice(("'descr': '|O'", "'descr': '<U9'",
                                "'descr': '<c16'", "'descr': '>f8'", "'descr': 'V7'")), header)
            elif edit == "order":
                header = header.replace("False", "True")
            else:
                header = _mutate_text(header, rng)
            body = header.encode("latin1")
            dst.writestr(info, data[:8] + len(body).to_bytes(2, "little") + body + data[header_len:])
