"""Write a set of export files all-or-nothing: temporary names in the target directory, then renames.

    >>> write_atomically({"build/m.tflite": tflite_bytes, "build/m_data.h": header})   # doctest: +SKIP

Nothing appears under a final name until every file has been written in full; a failure (disk full,
an exception while producing the files, Ctrl-C) removes the temporaries and leaves existing files
as they were. Input model files loaded in this process are refused as targets.

A set of several files cannot be renamed in one step, so before the first rename a journal
(`.edgekit-journal-<pid>-<id>.json`, listing temporary -> final names) is written beside them. A run
killed during the renames leaves the journal; the next edgekit write into that folder (or
`recover_directory`) finishes the renames first, so the folder ends with the whole new set. Temporary
files of dead processes are removed at the same time.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid

from edgekit.errors import BadInputError

# Every model file loaded in this process (edgekit.model_io.loading adds them): never a write target.
loaded_input_paths: set[str] = set()

JOURNAL_PREFIX = ".edgekit-journal-"
_TEMP_RE = re.compile(r"^\..+\.tmp-(?:(\d+)-)?[0-9a-f]{8}$")
_OLD_TEMP_AGE_S = 3600.0   # temporaries without a pid (older edgekit versions) count as stale after an hour
_OUTPUT_SUFFIXES = (".tflite", ".cc", ".h", ".json", ".h5", ".keras", ".md", ".html")


def process_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (to tell a live holder from a reused pid), None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None if not _pid_exists(pid) else ""


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0
    return pid > 0


def process_alive(pid: int, start: str | None = None) -> bool:
    """True while the process `pid` (started at `start`, when known) is still running."""
    if pid <= 0:
        return False
    now = process_start(pid)
    if now is None:
        return False
    return not start or not now or now == start


def check_target(path: str | os.PathLike, protected=()) -> str:
    """The absolute target path, or BadInputError if it is a directory, in a missing one, or an input."""
    target = os.path.abspath(os.fspath(path))
    inputs = {os.path.realpath(p) for p in (*loaded_input_paths, *protected)}
    if os.path.realpath(target) in inputs:
        raise BadInputError(f"{path}: is the input model; edgekit never overwrites its input: choose another path")
    if os.path.isdir(target):
        raise BadInputError(f"{path}: is a directory; give a file path such as build/model.tflite")
    if os.path.lexists(target) and not os.path.isfile(target):
        raise BadInputError(f"{path}: exists and is not a regular file (a FIFO, device or broken link); "
                            "choose another path")
    if not os.path.isdir(os.path.dirname(target)):
        raise BadInputError(f"{path}: the directory {os.path.dirname(target)} does not exist")
    return target


def temp_name(target: str) -> str:
    """A temporary name beside `target` that records this process, so leftovers can be told stale."""
    directory, name = os.path.split(target)
    return os.path.join(directory, f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def write_atomically(files: dict[str, bytes | str], protected=()) -> tuple[str, ...]:
    """Write every file (bytes, or text as UTF-8) or none; returns the final paths."""
    targets = {check_target(path, protected): content for path, content in files.items()}
    for directory in {os.path.dirname(t) for t in targets}:
        recover_directory(directory)
    temps: dict[str, str] = {}
    journal = None
    try:
        for target, content in targets.items():
            temps[target] = temp_name(target)
            data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
            _write_file(temps[target], data, target)
        if len(temps) > 1:
            journal = _write_journal(os.path.dirname(next(iter(temps))), temps)
    except BaseException:
        for temp in temps.values():
            _remove(temp)
        raise
    if journal is None:
        for target, temp in temps.items():
            os.replace(temp, target)
    else:
        _roll_forward(journal)
    return tuple(targets)


def _write_file(path: str, data: bytes, label: str) -> None:
    try:
        with open(path, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        _remove(path)
        raise BadInputError(describe_os_error(label, exc)) from exc


def describe_os_error(label: str, exc: OSError) -> str:
    """One line for a failed write: disk full and permissions said as such."""
    import errno

    reasons = {errno.ENOSPC: "no space left on the device; free some space or choose another output folder",
               errno.EDQUOT: "disk quota exceeded; free some space or choose another output folder",
               errno.EACCES: "permission denied; choose a folder you can write to",
               errno.EPERM: "permission denied; choose a folder you can write to",
               errno.EROFS: "the file system is read-only; choose another output folder",
               errno.EFBIG: "the file size limit was reached (ulimit -f); raise it or write less"}
    reason = reasons.get(exc.errno, f"cannot write ({exc.strerror or exc})")
    return f"{label}: {reason}"


def _write_journal(directory: str, temps: dict[str, str]) -> str:
    journal = os.path.join(directory, f"{JOURNAL_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}.json")
    body = json.dumps({"pid": os.getpid(), "start": process_start(os.getpid()),
                       "moves": [[temp, target] for target, temp in temps.items()]})
    temp = temp_name(journal)
    _write_file(temp, body.encode(), journal)
    os.replace(temp, journal)  # the set is committed from here on: recovery finishes the renames
    return journal


def _roll_forward(journal: str) -> None:
    try:
        with open(journal, encoding="utf-8") as f:
            moves = json.load(f)["moves"]
    except (OSError, ValueError, KeyError, TypeError):
        _remove(journal)  # unreadable: written by nothing we know; its temporaries are cleaned as stale
        return
    directory = os.path.dirname(journal)
    for temp, target in moves:
        # Only names in the journal's own folder: a journal planted elsewhere cannot move other files.
        if os.path.dirname(temp) == directory and os.path.dirname(target) == directory and os.path.isfile(temp):
            os.replace(temp, target)
    _remove(journal)


def recover_directory(directory: str | os.PathLike) -> list[str]:
    """Finish the renames of killed runs in `directory` and remove their temporaries; returns what was done."""
    directory = os.fspath(directory)
    done: list[str] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return done
    for name in sorted(n for n in names if n.startswith(JOURNAL_PREFIX) and n.endswith(".json")):
        path = os.path.join(directory, name)
        pid = _pid_in(name[len(JOURNAL_PREFIX):])
        if pid is not None and not process_alive(pid):
            _roll_forward(path)
            done.append(f"finished the interrupted write recorded in {name}")
    for name in os.listdir(directory):
        match = _TEMP_RE.match(name)
        if not match:
            continue
        path = os.path.join(directory, name)
        if match.group(1) is not None:
            stale = not process_alive(int(match.group(1)))
        elif name.split(".tmp-")[0].endswith(_OUTPUT_SUFFIXES):  # older edgekit: no pid in the name
            try:
                stale = time.time() - os.lstat(path).st_mtime > _OLD_TEMP_AGE_S
            except OSError:
                continue
        else:
            continue
        if stale and os.path.isfile(path) and not os.path.islink(path):
            _remove(path)
            done.append(f"removed the leftover temporary file {name}")
    return done


def _pid_in(text: str) -> int | None:
    head = text.split("-", 1)[0]
    return int(head) if head.isdigit() else None


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass
