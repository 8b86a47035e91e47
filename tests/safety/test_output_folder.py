"""--out never destroys what edgekit did not write; one run per output; publishing survives kills (issue 11)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from edgekit.errors import BadInputError
from edgekit.model_io.atomic import recover_directory, write_atomically
from edgekit.model_io.outdir import (
    MARKER,
    OutputLock,
    check_output_folder,
    new_staging,
    publish_folder,
    recover_output,
)

REPO = Path(__file__).resolve().parents[2]


def _stage(out: Path, files: dict[str, str]) -> Path:
    staging = new_staging(out)
    for name, text in files.items():
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        (staging / name).write_text(text)
    return staging


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()
            and p.name != MARKER}


def test_foreign_folder_refused_and_force_replaces_only_edgekits_files(tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    (out / "report.json").write_text("the user's own report")
    with pytest.raises(BadInputError, match=r"did not write \(report.json, thesis.tex\).*--force"):
        check_output_folder(out, "fit")
    check_output_folder(out, "fit", force=True)
    publish_folder(_stage(out, {"report.json": "new", "model.tflite": "m1"}), out, "fit", force=True)
    assert _tree(out) == {"thesis.tex": "years of work", "report.json": "new", "model.tflite": "m1"}
    # A later run that writes no model (does not fit) removes edgekit's old model, never the user's file.
    publish_folder(_stage(out, {"report.json": "newer"}), out, "fit", force=True)
    assert _tree(out) == {"thesis.tex": "years of work", "report.json": "newer"}
    # Still foreign: refused again without --force.
    with pytest.raises(BadInputError, match="thesis.tex"):
        check_output_folder(out, "fit")


def test_earlier_output_is_replaced_whole_and_other_kinds_are_foreign(tmp_path):
    out = tmp_path / "o"
    publish_folder(_stage(out, {"model.tflite": "a", "mcu/model_data.cc": "a"}), out, "fit")
    check_output_folder(out, "fit")  # our own earlier output: no --force needed
    with pytest.raises(BadInputError, match="did not write"):
        check_output_folder(out, "export")
    publish_folder(_stage(out, {"report.json": "b"}), out, "fit")
    assert _tree(out) == {"report.json": "b"}
    assert not any(p.name.startswith("o.") for p in tmp_path.iterdir())  # no staging/old leftovers


def test_inputs_inside_out_or_its_work_folder_are_refused(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    board = out / "board.yaml"
    board.write_text("name: b\n")
    with pytest.raises(BadInputError, match="board.yaml"):
        check_output_folder(out, "fit", inputs=[board], force=True)
    partial = tmp_path / "o.partial"
    partial.mkdir()
    (partial / "d.npz").write_bytes(b"")
    with pytest.raises(BadInputError, match="d.npz"):
        check_output_folder(tmp_path / "o2" / ".." / "o", "fit", inputs=[partial / "d.npz"], force=True)
    assert board.read_text() == "name: b\n"


def test_out_dot_and_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(BadInputError, match="notes.txt"):
        check_output_folder(".", "fit")
    assert check_output_folder(".", "fit", force=True) == tmp_path
    with pytest.raises(BadInputError, match="root"):
        check_output_folder("/", "fit", force=True)


_HOLD = textwrap.dedent("""
    import sys, time
    from edgekit.model_io.outdir import OutputLock
    lock = OutputLock(sys.argv[1]).acquire()
    print("held", flush=True)
    time.sleep(60)
""")


def test_second_run_is_refused_naming_the_holder_and_a_dead_holder_is_taken_over(tmp_path):
    out = tmp_path / "o"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BadInputError, match=rf"another edgekit run \(pid {holder.pid}\)"):
            OutputLock(out).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (tmp_path / "o.lock").read_text().split()[0] == str(holder.pid)  # stale file left by the kill
    with OutputLock(out):
        assert (tmp_path / "o.lock").read_text().split()[0] == str(os.getpid())
    assert not (tmp_path / "o.lock").exists()


_KILL_AT = textwrap.dedent("""
    import os, sys, json
    from pathlib import Path
    kill_at = int(sys.argv[2])
    real_replace, calls = os.replace, [0]
    def dying_replace(a, b):
        calls[0] += 1
        if calls[0] == kill_at:
            os._exit(9)
        real_replace(a, b)
    os.replace = dying_replace
    mode = sys.argv[3]
    if mode == "folder":
        from edgekit.model_io.outdir import new_staging, publish_folder
        out = Path(sys.argv[1])
        staging = new_staging(out)
        for name in ("model.tflite", "report.json", "mcu"):
            (staging / name).write_text("new") if name != "mcu" else (staging / name).mkdir()
        (staging / "mcu" / "model_data.cc").write_text("new")
        publish_folder(staging, out, "fit", force=True)
    else:
        from edgekit.model_io.atomic import write_atomically
        d = sys.argv[1]
        write_atomically({f"{d}/model.tflite": "new", f"{d}/model_data.cc": "new", f"{d}/model_data.h": "new"})
    print("completed")
""")


def _run_killed(target: Path, kill_at: int, mode: str) -> bool:
    done = subprocess.run([sys.executable, "-c", _KILL_AT, str(target), str(kill_at), mode], check=False,
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode in (0, 9), done.stderr
    return done.returncode == 0


@pytest.mark.slow
def test_fit_publish_killed_at_every_rename_leaves_old_or_new_set(tmp_path):
    outcomes = set()
    for kill_at in range(1, 12):
        out = tmp_path / f"o{kill_at}"
        out.mkdir()
        (out / "user.txt").write_text("mine")     # force over a user's folder: the journaled path
        (out / "model.tflite").write_text("old")
        completed = _run_killed(out, kill_at, "folder")
        recover_output(out)
        tree = _tree(out)
        assert tree["user.txt"] == "mine"
        new = {"user.txt": "mine", "model.tflite": "new", "report.json": "new", "mcu/model_data.cc": "new"}
        assert tree in (new, {"user.txt": "mine", "model.tflite": "old"}), (kill_at, tree)
        outcomes.add("new" if tree == new else "old")
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(f"o{kill_at}.")) == []
        if completed:
            break
    assert outcomes == {"old", "new"}  # kills before and after the commit point were both exercised


@pytest.mark.slow
def test_mcu_file_set_killed_at_every_rename_is_completed_by_the_next_write(tmp_path):
    names = ("model.tflite", "model_data.cc", "model_data.h")
    for kill_at in range(1, 6):
        folder = tmp_path / f"b{kill_at}"
        folder.mkdir()
        for name in names:
            (folder / name).write_text("old")
        completed = _run_killed(folder, kill_at, "files")
        recover_directory(folder)
        contents = {name: (folder / name).read_text() for name in names}
        assert len(set(contents.values())) == 1, (kill_at, contents)  # never a mixed set
        assert sorted(os.listdir(folder)) == sorted(names)              # temporaries and journal cleaned
        if completed:
            break


def test_stale_temporaries_are_removed_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=False,
                          capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".model.tflite.tmp-{dead_pid}-0123abcd"
    live = tmp_path / f".model.tflite.tmp-{os.getpid()}-89abcdef"
    old_format = tmp_path / ".model_data.cc.tmp-deadbeef"
    user = tmp_path / "notes.tmp-12345678"
    hidden_user = tmp_path / ".notes.txt.tmp-12345678"
    for p in (stale, live, old_format, user, hidden_user):
        p.write_text("x")
        os.utime(p, (time.time() - 7200, time.time() - 7200))
    write_atomically({str(tmp_path / "model.tflite"): b"m"})
    assert sorted(os.listdir(tmp_path)) == sorted(["model.tflite", live.name, user.name, hidden_user.name])


_FULL_DISK = textwrap.dedent("""
    set -e
    mkdir -p "$1/small" "$1/ro"
    mount -t tmpfs -o size=4m tmpfs "$1/small"
    mount -t tmpfs -o ro,size=1m tmpfs "$1/ro"
    "$2" -c '
    import sys
    from edgekit.errors import BadInputError
    from edgekit.model_io.outdir import check_output_folder
    for out in sys.argv[1:]:
        try:
            check_output_folder(out, "fit")
            print("accepted")
        except BadInputError as e:
            print(e)
    ' "$1/small/out" "$1/ro/out"
    "$2" -c '
    import sys
    from edgekit.errors import BadInputError
    from edgekit.workflows.export import export
    try:
        export(sys.argv[1], out=sys.argv[2])
    except BadInputError as e:
        print(e)
    ' "$1/not-read.h5" "$1/ro/model.tflite"
    "$2" -c '
    import os, sys
    from edgekit.errors import BadInputError
    from edgekit.model_io.atomic import write_atomically
    try:
        write_atomically({sys.argv[1] + "/model.tflite": bytes(1 << 20), sys.argv[1] + "/big.cc": bytes(8 << 20)})
    except BadInputError as e:
        print(e, sorted(os.listdir(sys.argv[1])))
    ' "$1/small"
""")


@pytest.mark.slow
def test_full_disk_and_read_only_folder_are_reported_before_any_work(tmp_path):
    probe = subprocess.run(["unshare", "-Urm", "true"], check=False, capture_output=True)
    if probe.returncode != 0:
        pytest.skip("needs user namespaces (unshare -Urm) to mount a small tmpfs")
    done = subprocess.run(["unshare", "-Urm", "sh", "-c", _FULL_DISK, "sh", str(tmp_path), sys.executable],
                          check=False, cwd=REPO, capture_output=True, text=True, timeout=60)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0, done.stderr
    assert "no space left on the device" in lines[0] and "small/out" in lines[0]
    assert "read-only" in lines[1] and "ro/out" in lines[1]
    # export probes its folder before loading (the model path does not even exist) or converting anything
    assert "ro/model.tflite" in lines[2] and "read-only" in lines[2]
    # disk full in the middle of a multi-file write: one line, and neither file nor temporary is left
    assert "big.cc: no space left on the device" in lines[3] and lines[3].endswith("[]")


def test_marker_lists_exactly_the_published_names(tmp_path):
    out = tmp_path / "o"
    publish_folder(_stage(out, {"a.txt": "1", "mcu/b.cc": "2"}), out, "export")
    assert json.loads((out / MARKER).read_text()) == {"kind": "export", "files": ["a.txt", "mcu"]}


def test_a_users_folder_named_like_the_work_folder_is_never_emptied(tmp_path):
    from edgekit.workflows.fit.workspace import Workspace

    partial = tmp_path / "o.partial"
    partial.mkdir()
    (partial / "photos.zip").write_text("mine")
    with pytest.raises(BadInputError, match="o.partial exists and is not an edgekit work folder"):
        Workspace(tmp_path / "o", "key", resume=False)
    assert (partial / "photos.zip").read_text() == "mine"
    (partial / "photos.zip").unlink()
    workspace = Workspace(tmp_path / "o", "key", resume=False)  # empty: taken, and marked as ours
    workspace.record("plan")
    assert Workspace(tmp_path / "o", "key", resume=True).done == {"plan": {}}


def test_out_given_as_a_link_publishes_into_the_linked_folder(tmp_path):
    real = tmp_path / "real"
    publish_folder(_stage(real, {"report.json": "1"}), real, "fit")
    link = tmp_path / "link"
    link.symlink_to(real)
    out = check_output_folder(link, "fit")
    publish_folder(_stage(out, {"report.json": "2"}), out, "fit")
    assert link.is_symlink() and _tree(real) == {"report.json": "2"}
