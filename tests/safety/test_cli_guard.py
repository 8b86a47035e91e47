"""The CLI's error guard and the fit command's --out checks, through the real command line (issue 11)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from edgekit.cli.guard import MAX_LINE_CHARS, VERBOSE_HINT
from edgekit.cli.main import _Group
from edgekit.errors import BadInputError

REPO = Path(__file__).resolve().parents[2]


def _group_raising(exc: BaseException) -> click.Group:
    @click.group(cls=_Group)
    @click.option("--verbose", is_flag=True)
    def cli(verbose):
        pass

    @cli.command("stage")
    def stage():
        raise exc

    return cli


@pytest.mark.parametrize("exc, code, expected", [
    (BadInputError("budget.yaml: max_flash: '" + "9" * 2_000_000 + "' is not a size"), 2, "budget.yaml: max_flash"),
    (ValueError("converter said\nsomething long " + "x" * 5000), 2, "stage: ValueError: converter said; rerun"),
    (OSError(errno.ENOSPC, "No space left on device", "out/model.tflite"), 2, "no space left on the device writing"),
    (PermissionError(errno.EACCES, "Permission denied", "/ro/out"), 2, "cannot write /ro/out"),
    (RecursionError("maximum recursion depth exceeded"), 2, "nested too deeply"),
    (KeyboardInterrupt(), 130, "interrupted"),
])
def test_every_escaping_exception_is_one_short_line_with_a_documented_code(exc, code, expected):
    result = CliRunner().invoke(_group_raising(exc), ["stage"])
    lines = result.stderr.strip().splitlines() if hasattr(result, "stderr") else result.output.strip().splitlines()
    assert result.exit_code == code
    assert len(lines) == 1 and len(lines[0]) <= MAX_LINE_CHARS and expected in lines[0]
    assert "Traceback" not in result.output
    if not isinstance(exc, (BadInputError, KeyboardInterrupt)):
        assert lines[0].endswith(VERBOSE_HINT)


def test_verbose_shows_the_traceback():
    result = CliRunner().invoke(_group_raising(ValueError("boom")), ["--verbose", "stage"])
    assert result.exit_code == 2 and "Traceback" in result.output and "ValueError: boom" in result.output


def _edgekit(args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekit.cli.main", *args], check=False, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_fit_refuses_a_users_folder_and_a_profile_inside_out_and_a_locked_out(tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    (out / "thesis.tex").write_text("mine")
    board = out / "board.yaml"
    board.write_text((REPO / "device_profiles" / "stm32l4r5.yaml").read_text().replace("stm32l4r5", "board"))
    (tmp_path / "teacher.h5").write_bytes(b"placeholder: refused before it is read")
    (tmp_path / "train.npz").write_bytes(b"placeholder")
    before = {p: p.read_bytes() for p in out.iterdir()}

    foreign = _edgekit(["fit", "teacher.h5", "--device", "stm32l4r5", "--data", "train.npz", "--out", "results"],
                       tmp_path)
    assert foreign.returncode == 2 and "edgekit did not write (board.yaml, thesis.tex)" in foreign.stderr
    inside = _edgekit(["fit", "teacher.h5", "--device", str(board), "--data", "train.npz", "--out", "results",
                       "--force"], tmp_path)
    assert inside.returncode == 2 and "holds the input" in inside.stderr and "board.yaml" in inside.stderr
    for done in (foreign, inside):
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert {p: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(os.listdir(tmp_path)) == ["results", "teacher.h5", "train.npz"]

    hold = textwrap.dedent("""
        import sys, time
        from edgekit.model_io.outdir import OutputLock
        OutputLock(sys.argv[1]).acquire()
        print("held", flush=True)
        time.sleep(120)
    """)
    holder = subprocess.Popen([sys.executable, "-c", hold, str(tmp_path / "fresh")], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        second = _edgekit(["fit", "teacher.h5", "--device", "stm32l4r5", "--data", "train.npz", "--out", "fresh"],
                          tmp_path)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert second.returncode == 2 and f"another edgekit run (pid {holder.pid})" in second.stderr
    assert not (tmp_path / "fresh").exists() and not (tmp_path / "fresh.partial").exists()
