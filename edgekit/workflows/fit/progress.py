"""Stage-by-stage progress of a fit: what it is doing and how long each stage took.

Messages go to stderr so that `--json` keeps stdout one clean JSON object; `quiet` silences them.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator

from edgekit.workflows.fit.report import StageTiming


class Progress:
    def __init__(self, quiet: bool = False, stream=None) -> None:
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.timings: list[StageTiming] = []
        self._t0 = time.monotonic()

    @property
    def keras_verbose(self) -> int:
        """Distillation verbosity: one line per epoch with an ETA on stderr for people, nothing when quiet."""
        from edgekit.distill.epoch_progress import EPOCH_LINES

        return 0 if self.quiet else EPOCH_LINES

    def say(self, message: str) -> None:
        if not self.quiet:
            print(f"[{time.monotonic() - self._t0:6.1f}s] {message}", file=self.stream, flush=True)

    @contextlib.contextmanager
    def stage(self, name: str, doing: str) -> Iterator[list[str]]:
        """Time a stage; the yielded list collects a short note for the report."""
        self.say(f"{name}: {doing}")
        start = time.monotonic()
        note: list[str] = []
        yield note
        seconds = time.monotonic() - start
        self.timings.append(StageTiming(name, seconds, "; ".join(note)))
        self.say(f"{name}: done in {seconds:.1f}s" + (f" ({'; '.join(note)})" if note else ""))

    def skipped(self, name: str, why: str) -> None:
        self.timings.append(StageTiming(name, 0.0, why))
        self.say(f"{name}: {why}")
