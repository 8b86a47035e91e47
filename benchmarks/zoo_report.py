"""Render benchmarks/ZOO.md from every results file in benchmarks/zoo_results/ (the newest cell wins).

    .venv/bin/python benchmarks/zoo_report.py          # re-render without running anything
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections import Counter
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "zoo_results"
NOTES = Path(__file__).resolve().parent / "zoo_notes.md"  # hand-written: what was run, what was not and why
EARLIER = Path(__file__).resolve().parent / "zoo_earlier.md"  # an earlier run's table, kept for what it covered
ORDER = ("inspect", "prune-0.5", "pruned-litert", "export-float32", "export-float16", "export-dynamic", "export-int8",
         "export-mcu", "plan-pixel7", "plan-mcu", "distill")


# The commands the .keras variant runs (the ones whose code path differs from .h5: loading and saving).
KERAS_COMMANDS = ("inspect", "prune-0.5", "pruned-litert", "export-int8", "export-mcu")


def load_cells() -> dict[tuple[str, str, str], dict]:
    """(model, format, command) -> the newest cell over all results files."""
    cells: dict[tuple[str, str, str], dict] = {}
    for path in sorted(RESULTS_DIR.glob("*.json"), key=os.path.getmtime):
        try:
            for cell in json.loads(path.read_text()):
                cells[(cell["model"], cell["format"], cell["command"])] = cell
        except (ValueError, KeyError):
            continue
    return cells


def _cell_text(cell: dict | None) -> str:
    if cell is None:
        return "not run"
    seconds = f" ({cell['seconds']:.0f} s" if cell.get("seconds") is not None else ""
    if seconds:
        seconds += f", {cell['cpu_seconds']:.0f} s CPU)" if cell.get("cpu_seconds") is not None else ")"
    word = {"ok": "ok", "refused": "", "timeout": "", "crash": ""}.get(cell["status"], "")
    detail = str(cell.get("detail", "")).replace("|", "/").replace("\n", " ")
    return f"{word + ', ' if word else ''}{detail}{seconds}"


def render(out: Path, model_names: list[str] | None = None) -> None:
    """Write ZOO.md; model_names: every model of the zoo (the summary counts the ones with no cell as not run)."""
    cells = load_cells()
    for (model, fmt, command), cell in list(cells.items()):  # a prune that never finished left nothing to run
        prune = cells.get((model, fmt, "prune-0.5"))
        if command == "pruned-litert" and prune is not None and prune["status"] != "ok":
            cells[(model, fmt, command)] = {**cell, "status": "skipped", "seconds": None,
                                            "detail": "skipped: prune-0.5 did not finish"}
        params = cells.get((model, fmt, "params"), {}).get("detail")
        if command == "inspect" and cell["status"] == "ok" and params:  # the check: equal to count_params()
            same = str(cell["detail"]).split()[0] == params
            cells[(model, fmt, command)] = {**cell, "detail": f"{cell['detail']} "
                                            + ("= count_params()" if same else f"WRONG: count_params() is {params}")}
    models = list(dict.fromkeys(m for m, _, _ in cells))
    commands = list(ORDER)
    lines = ["# edgekit x keras.applications (weights=None, 4 classes, logits head)", ""]
    if NOTES.exists():
        lines += [NOTES.read_text().strip(), ""]
    lines += [(f"Host: {platform.machine()}, {os.cpu_count()} cores shared with other jobs, no GPU, no phone or "
              "MCU board (MCU = TensorFlow Lite Micro on the host). Times: wall seconds of the whole CLI process "
              "under the shared load of its run (each run's load is in the notes above), and the CPU seconds it "
              "used; each row's date is the newest build of that model, its cells may come from earlier runs."),
              "", "## Summary (ok / refused / timeout / crash per command)", "",
              "| command | format | ok | refused | timeout | crash | skipped | not run |",
              "|---|---|---|---|---|---|---|---|"]
    for command in commands:
        for fmt in ("h5", "keras"):
            counts = Counter(cells[(m, fmt, command)]["status"] for m in models if (m, fmt, command) in cells)
            missing = len(model_names or models) - sum(counts.values())
            if sum(counts.values()) or fmt == "h5" or command in KERAS_COMMANDS:
                lines.append(f"| {command} | {fmt} | {counts['ok']} | {counts['refused']} | {counts['timeout']} | "
                             f"{counts['crash']} | {counts['skipped']} | {missing} |")
    for fmt, title in (("h5", "tf_keras .h5"), ("keras", "Keras 3 .keras")):
        rows = [m for m in models if any(k[0] == m and k[1] == fmt for k in cells)]
        if not rows:
            continue
        cols = [c for c in commands if any((m, fmt, c) in cells for m in rows)]
        lines += ["", f"## {title}", "", "| model | params | file | " + " | ".join(cols) + " |",
                  "|---|---|---|" + "---|" * len(cols)]
        for m in rows:
            head = cells.get((m, fmt, "params"), {})
            size = f"{head['model_bytes'] / 1024:.0f} KiB" if head.get("model_bytes") else "?"
            when = head.get("when", "")
            lines.append(f"| {m} ({when}) | {head.get('detail', '?')} | {size} | "
                         + " | ".join(_cell_text(cells.get((m, fmt, c))) for c in cols) + " |")
    if EARLIER.exists():
        lines += ["", EARLIER.read_text().strip()]
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, out)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import argparse

    from zoo import MODELS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=Path(__file__).resolve().parent / "ZOO.md")
    render(parser.parse_args().out, list(MODELS))
