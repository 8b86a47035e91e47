"""Write a set of export files all-or-nothing: temporary names in the target directory, then renames.

    >>> write_atomically({"build/m.tflite": tflite_bytes, "build/m_data.h": header})   # doctest: +SKIP

Nothing appears under a final name until every file has been written in full; a failure (disk full,
an exception while producing the files, Ctrl-C) removes the temporaries and leaves existing files
as they were. Input model files loaded in this process are refused as targets.
"""

from __future__ import annotations

import os
import uuid

from edgekit.errors import BadInputError


def check_target(path: str | os.PathLike, protected=()) -> str:
    """The absolute target path, or BadInputError if it is a directory, in a missing one, or an input."""
    from edgekit.model_io.loading import loaded_input_paths

    target = os.path.abspath(os.fspath(path))
    inputs = {os.path.realpath(p) for p in (*loaded_input_paths, *protected)}
    if os.path.realpath(target) in inputs:
        raise BadInputError(f"{path}: is the input model; edgekit never overwrites its input: choose another path")
    if os.path.isdir(target):
        raise BadInputError(f"{path}: is a directory; give a file path such as build/model.tflite")
    if not os.path.isdir(os.path.dirname(target)):
        raise BadInputError(f"{path}: the directory {os.path.dirname(target)} does not exist")
    return target


def write_atomically(files: dict[str, bytes | str], protected=()) -> tuple[str, ...]:
    """Write every file (bytes, or text as UTF-8) or none; returns the final paths."""
    targets = {check_target(path, protected): content for path, content in files.items()}
    temps: dict[str, str] = {}
    try:
        for target, content in targets.items():
            directory, name = os.path.split(target)
            temp = os.path.join(directory, f".{name}.tmp-{uuid.uuid4().hex[:8]}")
            temps[target] = temp
            data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
            with open(temp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        for target, temp in temps.items():
            os.replace(temp, target)
    except BaseException:
        for temp in temps.values():
            try:
                os.remove(temp)
            except FileNotFoundError:
                pass
        raise
    return tuple(targets)
