"""Teacher outputs computed once and reused, inside `shared_teacher_outputs()` (a fleet fit's devices).

Distillation feeds the teacher's fixed outputs over the training samples to every epoch; a fit computes
them for each candidate it evaluates and again for the final student, and a fleet fit does all that once
per device. Inside the context, outputs are kept per (teacher tap, samples): the key is a digest of the
tap's weights and output names and of the sample bytes, so a teacher loaded again from the same file
hits the cache and a different teacher or different samples never do. Outside it, nothing is kept.

Streamed data (edgekit.data.stream) is too large to keep in memory: `disk_teacher_outputs` writes the
teacher's outputs for every sample once, in one streamed pass, to a float32 .npy file that training reads
through a memory map by sample index (the fit's work folder keeps it for --resume; otherwise it is temporary).

    >>> with shared_teacher_outputs() as cache:            # doctest: +SKIP
    ...     fit(...); fit(...)
    >>> cache.hits, cache.misses                           # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np


@dataclass
class TeacherOutputCache:
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0
    seconds_saved: float = 0.0       # compute time of the outputs served from the cache
    _seconds: dict[str, float] = field(default_factory=dict)


_active: list[TeacherOutputCache] = []


@contextlib.contextmanager
def shared_teacher_outputs() -> Iterator[TeacherOutputCache]:
    """Within this block, `teacher_outputs` computes each (teacher, samples) pair's outputs once."""
    cache = TeacherOutputCache()
    _active.append(cache)
    try:
        yield cache
    finally:
        _active.remove(cache)


def _model_digest(teacher_tap):
    digest = hashlib.sha256()
    digest.update(repr([getattr(t, "name", "") for t in getattr(teacher_tap, "outputs", None) or []]).encode())
    for weight in teacher_tap.weights:
        value = np.ascontiguousarray(weight.numpy())
        digest.update(f"{weight.name}{value.shape}{value.dtype}".encode())
        digest.update(value.tobytes())
    return digest


def _key(teacher_tap, x: np.ndarray) -> str:
    digest = _model_digest(teacher_tap)
    samples = np.ascontiguousarray(x)
    digest.update(f"{samples.shape}{samples.dtype}".encode())
    digest.update(samples.tobytes())
    return digest.hexdigest()


def teacher_outputs(teacher_tap, x: np.ndarray, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """`compute()`, or its earlier result for the same teacher and samples inside `shared_teacher_outputs`."""
    if not _active:
        return compute()
    import time

    cache = _active[-1]
    key = _key(teacher_tap, x)
    if key in cache.outputs:
        cache.hits += 1
        cache.seconds_saved += cache._seconds[key]
        return cache.outputs[key]
    start = time.monotonic()
    value = compute()
    cache.misses += 1
    cache.outputs[key], cache._seconds[key] = value, time.monotonic() - start
    return value


# ------------------------------------------------------------------------------- on disk, for streamed data


@dataclass(frozen=True)
class DiskLogits:
    """The teacher's outputs over every sample of a streamed source, row i for sample index i: a float32 .npy
    read through a memory map (`rows`), so lookups of a 2 GB data set's logits cost no more RAM than the pages
    they touch. `path` is None when the file was a temporary one, already unlinked (the mapping keeps it)."""

    rows: np.ndarray
    path: str | None
    reused: bool

    def lookup(self, index: np.ndarray) -> np.ndarray:
        return np.asarray(self.rows[np.asarray(index, np.int64)], np.float32)


def disk_teacher_outputs(teacher_tap, source, folder: str | None, predict: Callable[[np.ndarray], np.ndarray],
                         check: Callable | None = None) -> DiskLogits:
    """The teacher's outputs over all of `source` (a StreamSource, every part), computed in one streamed pass
    in file order and written to `folder`/teacher_logits-<key>.npy, or reused from there when the key matches.

    The key digests the tap's weights and output names and the source's fingerprint (files, sizes, modification
    times, layout), so a changed teacher or changed data never reuses stale logits; older teacher_logits files
    in `folder` are removed when a new one is written. folder None: a temporary file, unlinked once mapped.
    `predict(x)` gives float32 outputs for a batch; `check(x, y, index)` may refuse a block (bad labels).
    """
    import dataclasses
    import os
    import tempfile

    whole = dataclasses.replace(source, part="all")
    digest = _model_digest(teacher_tap)
    digest.update(whole.fingerprint().encode())
    digest.update(repr(whole.element_shape).encode())
    name = f"teacher_logits-{digest.hexdigest()[:20]}.npy"
    temporary = folder is None
    folder = tempfile.mkdtemp(prefix="edgekit-logits-") if temporary else folder
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    if not temporary and os.path.isfile(path):
        try:
            rows = np.load(path, mmap_mode="r", allow_pickle=False)
            if rows.shape[0] == whole.total_samples and rows.dtype == np.float32:
                return DiskLogits(rows, path, reused=True)
        except (ValueError, OSError):
            pass  # damaged (an interrupted write cannot leave one: it is renamed into place): compute again
    tmp = path + f".tmp{os.getpid()}"
    rows = None
    try:
        for x, y, index in whole.iter_blocks():
            if check is not None:
                check(x, y, index)
            out = np.asarray(predict(x), np.float32)
            if rows is None:
                rows = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                                 shape=(whole.total_samples, *out.shape[1:]))
            rows[index] = out
        rows.flush()
        del rows
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    for other in os.listdir(folder):
        if other.startswith("teacher_logits-") and other != name:
            os.remove(os.path.join(folder, other))
    mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    if temporary:
        os.remove(path)
        os.rmdir(folder)
    return DiskLogits(mapped, None if temporary else path, reused=False)


__all__ = ["DiskLogits", "TeacherOutputCache", "disk_teacher_outputs", "shared_teacher_outputs", "teacher_outputs"]
