"""Output folders edgekit owns: refuse foreign ones, lock them, probe them, publish into them as one unit.

    >>> out = check_output_folder("build", kind="fit", inputs=["teacher.h5"], force=False)  # doctest: +SKIP
    >>> with OutputLock(out):                                                                # doctest: +SKIP
    ...     publish_folder(staging, out, kind="fit")

- Ownership: a folder edgekit publishes holds `.edgekit-output.json` (kind + the names it wrote). An
  existing non-empty folder without it (or of another kind) is refused unless force=True; with force
  only the names edgekit writes are replaced, the user's other files stay.
- Locking: `<out>.lock` beside the folder, held with flock for the whole run. The kernel drops the lock
  when its process dies, so a killed run's lock is simply taken over; a live holder is named by pid.
- Publishing: into a missing folder, one rename. Over an earlier output with nothing foreign in it, one
  atomic exchange (renameat2 RENAME_EXCHANGE). Otherwise (force over a user's folder) a journal written
  first lets the next run finish the per-name moves of a killed one.
- A write probe reserves space in the folder before long work, so a full disk or a folder without write
  permission is reported up front, in one line.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import uuid
from pathlib import Path

from edgekit.errors import BadInputError
from edgekit.model_io.atomic import describe_os_error, process_start, recover_directory, write_atomically

MARKER = ".edgekit-output.json"
PUBLISH_JOURNAL = ".edgekit-publish.json"
STAGING_SENTINEL = ".edgekit-staging"   # marks a staging folder as edgekit's, so only those are removed
PROBE_BYTES = 8 << 20      # reserved (not written) by the probe: enough for the reports and a small model


def absolute(out: str | os.PathLike) -> Path:
    """The absolute path of an output folder without resolving its last link (`.` becomes the cwd's name)."""
    return Path(os.path.abspath(os.fspath(out)))


def make_parent(out: str | os.PathLike) -> None:
    """Create the folders above `out` (the lock, staging and work folders live beside it)."""
    parent = absolute(out).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(describe_os_error(f"--out {os.fspath(out)}: cannot create {parent}", exc)) from exc


def read_marker(out: Path) -> dict | None:
    """The ownership record of an edgekit output folder, or None."""
    try:
        with open(out / MARKER, encoding="utf-8") as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or not isinstance(marker.get("files"), list):
        return None
    return marker


def check_output_folder(out_dir: str | os.PathLike, kind: str, inputs=(), force: bool = False,
                        probe_bytes: int = PROBE_BYTES) -> Path:
    """Check that edgekit may publish a `kind` result into `out_dir`; returns its absolute path.

    Raises BadInputError when it is a file, holds or is an input, is a foreign non-empty folder (unless
    force), or its folder cannot be written (permission, read-only, full disk).
    """
    out = absolute(out_dir)
    label = f"--out {os.fspath(out_dir)}"
    if out.parent == out:
        raise BadInputError(f"{label}: is the file system root; choose a folder for the results")
    if os.path.lexists(out) and not out.is_dir():
        raise BadInputError(f"{label}: exists and is not a folder; choose a folder path")
    for path in inputs:
        if path is None:
            continue
        p = Path(os.path.abspath(os.fspath(path)))
        for candidate in {p, p.resolve()}:
            for folder in {out, out.resolve(), out.with_name(out.name + ".partial")}:
                if candidate == folder or folder in candidate.parents:
                    raise BadInputError(f"{label}: {folder} holds the input {path}; edgekit never writes over its "
                                        "inputs: choose another output folder")
    if out.is_dir():
        foreign = foreign_entries(out, kind)
        if foreign and not force:
            shown = ", ".join(sorted(foreign)[:3]) + (", ..." if len(foreign) > 3 else "")
            raise BadInputError(f"{label}: the folder holds files edgekit did not write ({shown}); choose a new or "
                                "empty folder, or pass --force to replace only edgekit's own files")
    probe_writable(out if out.is_dir() else _existing_parent(out), label, probe_bytes)
    if not out.is_dir():
        probe_writable(_existing_parent(out), label, 0)
    probe_writable(_existing_parent(out.parent / "x"), label, 0)  # the lock, staging and .partial live here
    # A link to a folder: publish into the folder it names (a rename would replace the link itself).
    return out.resolve() if out.is_symlink() else out


def foreign_entries(out: Path, kind: str) -> list[str]:
    """Names in `out` that an earlier edgekit output of this kind did not write."""
    marker = read_marker(out)
    owned = set(marker["files"]) if marker is not None and marker.get("kind") == kind else set()
    try:
        names = os.listdir(out)
    except OSError as exc:
        raise BadInputError(describe_os_error(f"--out {out}", exc)) from exc
    return [n for n in names if n not in owned and n not in (MARKER, PUBLISH_JOURNAL)]


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def probe_writable(folder: Path, label: str, size_bytes: int = PROBE_BYTES) -> None:
    """Create (and reserve `size_bytes` in) a scratch file in `folder`; BadInputError naming the cause."""
    probe = folder / f".edgekit-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise BadInputError(describe_os_error(f"{label} ({folder})", exc)) from exc
    try:
        if size_bytes > 0:
            os.posix_fallocate(fd, 0, size_bytes)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise BadInputError(describe_os_error(f"{label} ({folder})", exc)) from exc
    finally:
        os.close(fd)
        try:
            os.remove(probe)
        except OSError:
            pass


class OutputLock:
    """An exclusive lock on an output path, held by this process until released (or until it dies)."""

    def __init__(self, path: str | os.PathLike, what: str = "--out") -> None:
        self.path = absolute(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> OutputLock:
        for _ in range(20):
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            except OSError as exc:
                raise BadInputError(describe_os_error(f"{self.what} {self.path}: lock {self.lock_path}", exc)) from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise BadInputError(
                    f"{self.what} {self.path}: another edgekit run (pid {holder}) is writing it (lock "
                    f"{self.lock_path.name}); wait for it to finish or choose another folder") from None
            if _same_file(fd, self.lock_path):
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()} {process_start(os.getpid()) or ''}\n".encode())
                self._fd = fd
                return self
            os.close(fd)  # the previous holder removed the file between our open and our lock: retry
        raise BadInputError(f"{self.what} {self.path}: could not take the lock {self.lock_path}")

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.remove(self.lock_path)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").split()
    except OSError:
        return "unknown"
    return text[0] if text and text[0].isdigit() else "unknown"


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def staging_path(out: Path) -> Path:
    return out.with_name(out.name + ".staging")


def recover_output(out: Path) -> list[str]:
    """Under the lock: finish or undo what a killed publish into `out` left; returns what was done."""
    done: list[str] = []
    staging = staging_path(out)
    journal = out / PUBLISH_JOURNAL
    if out.is_dir() and journal.is_file():
        _finish_journal(out, journal)
        done.append(f"finished the interrupted publish into {out}")
    old = out.with_name(out.name + ".old")  # earlier edgekit versions swapped through <out>.old
    if old.is_dir() and not out.exists() and (old / "report.json").is_file():
        os.replace(old, out)
        done.append(f"restored {out} from {old.name}")
    if staging.is_dir() and (staging / MARKER).is_file() and not os.path.lexists(out):
        os.replace(staging, out)  # killed between writing the marker and the one rename
        done.append(f"finished the interrupted publish into {out}")
    elif staging.is_dir() and _is_ours(staging):
        shutil.rmtree(staging, ignore_errors=True)
        done.append(f"removed the leftover {staging.name}")
    if out.is_dir():
        done += recover_directory(out)  # temporaries of the marker or journal of a killed run
    return done


def new_staging(out: Path) -> Path:
    """A fresh, empty staging folder beside `out` (call under the lock)."""
    staging = staging_path(out)
    if os.path.lexists(staging):
        if not _is_ours(staging):
            raise BadInputError(f"--out {out}: {staging} exists and was not made by edgekit; move it away")
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    (staging / STAGING_SENTINEL).touch()
    return staging


def publish_folder(staging: Path, out: Path, kind: str, force: bool = False) -> None:
    """Make the entries of `staging` the content edgekit owns in `out`, as one unit (call under the lock)."""
    names = sorted(n for n in os.listdir(staging) if n not in (MARKER, PUBLISH_JOURNAL, STAGING_SENTINEL))
    marker = json.dumps({"kind": kind, "files": names}, indent=2)
    previous = read_marker(out) if out.exists() else None
    if not out.exists() or (previous is not None and not foreign_entries(out, kind)):
        write_atomically({os.fspath(staging / MARKER): marker})
        (staging / STAGING_SENTINEL).unlink(missing_ok=True)  # the marker now says the folder is ours
        if not out.exists():
            os.replace(staging, out)
            return
        if _exchange(staging, out):
            shutil.rmtree(staging, ignore_errors=True)  # now holds the previous output
            return
        (staging / STAGING_SENTINEL).touch()
        os.remove(staging / MARKER)
    if foreign_entries(out, kind) and not force:
        raise BadInputError(f"--out {out}: files appeared in the folder during the run; nothing was replaced")
    stale = [n for n in (previous or {}).get("files", []) if n not in names and previous.get("kind") == kind]
    body = json.dumps({"staging": os.fspath(staging), "install": names, "remove": stale, "marker": marker})
    write_atomically({os.fspath(out / PUBLISH_JOURNAL): body})
    _finish_journal(out, out / PUBLISH_JOURNAL)


def _is_ours(staging: Path) -> bool:
    return (staging / STAGING_SENTINEL).is_file() or (staging / MARKER).is_file()


def _finish_journal(out: Path, journal: Path) -> None:
    try:
        plan = json.loads(journal.read_text(encoding="utf-8"))
        staging = Path(plan["staging"])
        install, remove, marker = list(plan["install"]), list(plan["remove"]), str(plan["marker"])
    except (OSError, ValueError, KeyError, TypeError):
        journal.unlink(missing_ok=True)
        return
    if staging != staging_path(out):
        journal.unlink(missing_ok=True)  # a planted journal cannot move files from elsewhere
        return
    trash = staging / ".replaced"
    trash.mkdir(parents=True, exist_ok=True)
    for name in [*install, *remove]:
        if os.sep in name or name in ("", ".", "..", MARKER, PUBLISH_JOURNAL):
            continue
        source, target = staging / name, out / name
        if name in install and not os.path.lexists(source):
            continue  # moved before the kill
        if os.path.lexists(target):
            if os.path.lexists(trash / name):
                _remove_tree(target)
            else:
                os.replace(target, trash / name)
        if name in install:
            os.replace(source, target)
    write_atomically({os.fspath(out / MARKER): marker})
    journal.unlink(missing_ok=True)
    shutil.rmtree(staging, ignore_errors=True)


def _remove_tree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return result == 0
