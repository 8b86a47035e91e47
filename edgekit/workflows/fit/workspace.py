"""Where a fit writes: a resumable work directory, then an atomic move into the output directory.

A fit works in `<out>.partial/`, beside the output directory. Each finished stage records itself in
`state.json` together with a fingerprint of the inputs (model bytes, data bytes, options); `--resume`
skips the stages recorded there when the fingerprint still matches. When the fit ends, the work
directory's deliverables are published into `<out>` as one unit (edgekit.model_io.outdir), so `<out>`
never holds a half-written result, and the user's input model is never written to. The caller holds
the locks of `<out>` and of the work directory (see edgekit.workflows.fit.fit).
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
OUTPUT_KIND = "fit"


def fingerprint(paths: Iterable[str | os.PathLike | None], options: dict) -> str:
    """A digest of input files (or directory trees) and the options that shape the result."""
    digest = hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode())
    for path in paths:
        if path is None:
            continue
        p = Path(path)
        # Regular files only: opening a FIFO or device would block or never end (the loaders refuse them).
        files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p] if p.is_file() else []
        for f in files:
            digest.update(str(f.relative_to(p) if p.is_dir() else f.name).encode())
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()


class Workspace:
    """The work directory of one fit, with the stages it has finished."""

    def __init__(self, out_dir: str | os.PathLike, fingerprint_: str, resume: bool, *, force: bool = False) -> None:
        self.out_dir = Path(os.path.abspath(os.fspath(out_dir)))
        self.work_dir = work_dir_of(self.out_dir)
        self.fingerprint = fingerprint_
        self.force = force
        state = self._read_state()
        foreign = os.path.lexists(self.work_dir) and (state is None or not self.work_dir.is_dir())
        if foreign and (not self.work_dir.is_dir() or any(self.work_dir.iterdir())):
            raise BadInputError(f"--out {out_dir}: {self.work_dir} exists and is not an edgekit work folder "
                                f"(no {STATE_FILE}); move it away or choose another --out")
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
        """Publish the named deliverables into the output directory as one unit; returns name -> final path."""
        from edgekit.model_io.outdir import new_staging, publish_folder

        staging = new_staging(self.out_dir)
        published = {}
        for name in names:
            src = self.work_dir / name
            if src.is_dir():
                shutil.copytree(src, staging / name)
            elif src.is_file():
                shutil.copy2(src, staging / name)
            else:
                continue
            published[name] = str(self.out_dir / name)
        publish_folder(staging, self.out_dir, OUTPUT_KIND, force=self.force)
        return published

    def discard(self) -> None:
        shutil.rmtree(self.work_dir, ignore_errors=True)


def work_dir_of(out_dir: str | os.PathLike) -> Path:
    """The resumable work folder of a fit into `out_dir`: `<out>.partial` beside it."""
    out = Path(os.path.abspath(os.fspath(out_dir)))
    return out.with_name(out.name + ".partial")


def check_output_dir(out_dir: str | os.PathLike, inputs: Iterable[str | os.PathLike | None],
                     force: bool = False) -> Path:
    """Refuse an output directory that holds an input, is not a folder, or is someone else's (unless force)."""
    from edgekit.model_io.outdir import check_output_folder

    return check_output_folder(out_dir, OUTPUT_KIND, [p for p in inputs if p is not None], force=force)


def write_text(path: Path, text: str) -> None:
    """Write a file atomically (temporary file in the same directory, then rename)."""
    write_bytes(path, text.encode())


def write_bytes(path: Path, data: bytes) -> None:
    from edgekit.model_io.atomic import write_atomically

    write_atomically({os.fspath(path): data})
