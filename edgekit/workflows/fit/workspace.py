"""Where a fit writes: a resumable work directory, then an atomic move into the output directory.

A fit works in `<out>.partial/`, beside the output directory. Each finished stage records itself in
`state.json` together with a fingerprint of the inputs (model bytes, data bytes, options); `--resume`
skips the stages recorded there when the fingerprint still matches. When the fit ends, the work
directory's deliverables are moved into `<out>` in one rename, so `<out>` never holds a half-written
result, and the user's input model is never written to.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from edgekit.errors import BadInputError

STATE_FILE = "state.json"


def fingerprint(paths: Iterable[str | os.PathLike | None], options: dict) -> str:
    """A digest of input files (or directory trees) and the options that shape the result."""
    digest = hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode())
    for path in paths:
        if path is None:
            continue
        p = Path(path)
        files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
        for f in files:
            digest.update(str(f.relative_to(p) if p.is_dir() else f.name).encode())
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()


class Workspace:
    """The work directory of one fit, with the stages it has finished."""

    def __init__(self, out_dir: str | os.PathLike, fingerprint_: str, resume: bool) -> None:
        self.out_dir = Path(out_dir)
        self.work_dir = self.out_dir.with_name(self.out_dir.name + ".partial")
        self.fingerprint = fingerprint_
        state = self._read_state()
        if resume and state is not None and state.get("fingerprint") == fingerprint_:
            self.done: dict[str, dict] = state.get("stages", {})
            self.resumed = bool(self.done)
        else:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            self.done = {}
            self.resumed = False
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._write_state()

    def _read_state(self) -> dict | None:
        try:
            return json.loads((self.work_dir / STATE_FILE).read_text())
        except (OSError, ValueError):
            return None

    def _write_state(self) -> None:
        write_text(self.work_dir / STATE_FILE,
                   json.dumps({"fingerprint": self.fingerprint, "stages": self.done}, indent=2))

    def path(self, name: str) -> Path:
        return self.work_dir / name

    def is_done(self, stage: str) -> bool:
        return stage in self.done

    def record(self, stage: str, info: dict | None = None) -> None:
        """Mark a stage finished (after its files are written)."""
        self.done[stage] = info or {}
        self._write_state()

    def info(self, stage: str) -> dict:
        return self.done.get(stage, {})

    def publish(self, names: Iterable[str]) -> dict[str, str]:
        """Move the named deliverables into the output directory in one rename; returns name -> final path."""
        staging = self.out_dir.with_name(self.out_dir.name + ".staging")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        published = {}
        for name in names:
            src = self.work_dir / name
            if src.is_dir():
                shutil.copytree(src, staging / name)
            elif src.exists():
                shutil.copy2(src, staging / name)
            else:
                continue
            published[name] = str(self.out_dir / name)
        if self.out_dir.exists():
            old = self.out_dir.with_name(self.out_dir.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(self.out_dir, old)
            os.replace(staging, self.out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, self.out_dir)
        return published

    def discard(self) -> None:
        shutil.rmtree(self.work_dir, ignore_errors=True)


def check_output_dir(out_dir: str | os.PathLike, inputs: Iterable[str | os.PathLike | None]) -> None:
    """Refuse an output directory that would contain or replace one of the inputs."""
    out = Path(out_dir).resolve()
    for path in inputs:
        if path is None:
            continue
        p = Path(path).resolve()
        if p == out or out in p.parents:
            raise BadInputError(f"--out {out_dir}: it contains the input {path}; edgekit never writes over its "
                                "inputs, choose another output directory")
    if out.exists() and not out.is_dir():
        raise BadInputError(f"--out {out_dir}: exists and is not a directory")


def write_text(path: Path, text: str) -> None:
    """Write a file atomically (temporary file in the same directory, then rename)."""
    write_bytes(path, text.encode())


def write_bytes(path: Path, data: bytes) -> None:
    from edgekit.model_io.atomic import write_atomically

    write_atomically({os.fspath(path): data})
