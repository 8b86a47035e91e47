"""Teacher outputs computed once and reused, inside `shared_teacher_outputs()` (a fleet fit's devices).

Distillation feeds the teacher's fixed outputs over the training samples to every epoch; a fit computes
them for each candidate it evaluates and again for the final student, and a fleet fit does all that once
per device. Inside the context, outputs are kept per (teacher tap, samples): the key is a digest of the
tap's weights and output names and of the sample bytes, so a teacher loaded again from the same file
hits the cache and a different teacher or different samples never do. Outside it, nothing is kept.

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


def _key(teacher_tap, x: np.ndarray) -> str:
    digest = hashlib.sha256()
    digest.update(repr([t.name for t in teacher_tap.outputs]).encode())
    for weight in teacher_tap.weights:
        value = np.ascontiguousarray(weight.numpy())
        digest.update(f"{weight.name}{value.shape}{value.dtype}".encode())
        digest.update(value.tobytes())
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


__all__ = ["TeacherOutputCache", "shared_teacher_outputs", "teacher_outputs"]
