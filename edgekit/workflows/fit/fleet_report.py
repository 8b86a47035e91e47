"""The fleet's comparison: one row per device (accuracy, size, RAM, latency, energy), as JSON, Markdown, HTML.

Pure functions of a FleetResult (edgekit.workflows.fleet); each figure is the measured one where the fit
measured it, else the prediction, and the table says which.
"""

from __future__ import annotations

import html
import os

from edgekit.budgets import BUDGET_KEYS, BUDGET_LABELS, format_budget

STATUS_TEXT = {"fits": "fits", "already_fits": "fits (unchanged)", "does_not_fit": "DOES NOT FIT",
               "failed": "FAILED"}


def fleet_rows(fleet) -> list[dict]:
    """One plain dict per device: status, accuracies and per budget value / limit / measured or predicted."""
    rows = []
    for o in fleet.outcomes:
        r = o.result
        budgets = {}
        for b in (r.budgets if r is not None else ()):
            budgets[b.budget] = {"value": b.value, "limit": b.limit, "measured": b.measured is not None,
                                 "fits": b.fits}
        rows.append({
            "device": o.device, "status": o.status, "fits": o.fits, "out_dir": o.out_dir,
            "runtime": getattr(r, "runtime", None), "precision": getattr(r, "precision", None),
            "accuracy_metric": getattr(r, "accuracy_metric", None),
            "teacher_accuracy": getattr(r, "teacher_accuracy", None),
            "final_accuracy": getattr(r, "final_accuracy", None) if o.fits else None,
            "budgets": budgets, "message": o.message, "seconds": o.seconds,
        })
    return rows


def cell(row: dict, key: str) -> str:
    entry = row["budgets"].get(key)
    if entry is None or entry["value"] is None:
        return "-"
    text = format_budget(key, entry["value"]) + ("" if entry["measured"] else " (pred.)")
    if entry["limit"] is not None:
        text += f" / {format_budget(key, entry['limit'])}"
    return text + (" **OVER**" if entry["fits"] is False else "")


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def to_markdown(fleet) -> str:
    rows = fleet_rows(fleet)
    fitted = sum(1 for r in rows if r["fits"])
    lines = [f"# edgekit fleet fit: {fleet.model_path}", "",
             (f"**{fitted} of {len(rows)} devices fit** in {fleet.seconds / 60:.1f} min; teacher outputs computed "
             f"{fleet.teacher_output_misses} time(s), reused {fleet.teacher_output_hits} time(s)."), "",
             ("| device | result | precision | accuracy (teacher -> final) | flash | RAM | latency | energy | "
             "folder |"), "|---|---|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        accuracy = f"{_pct(r['teacher_accuracy'])} -> {_pct(r['final_accuracy'])}"
        lines.append(f"| {r['device']} | {STATUS_TEXT.get(r['status'], r['status'])} | {r['precision'] or '-'} | "
                     f"{accuracy} | " + " | ".join(cell(r, k) for k in BUDGET_KEYS)
                     + f" | `{os.path.basename(r['out_dir'])}/` |")
    lines += ["", ("Figures are value / budget; measured where the fit measured them (size; TFLM arena on "
              "microcontrollers; latency on the host profile or an attached phone), otherwise the device "
              "profile's prediction, marked (pred.). No phone or board was attached unless a device's report says "
              "so.")]
    problems = [r for r in rows if r["message"]]
    if problems:
        lines += ["", "## Devices that do not fit", ""] + [f"- {r['device']}: {r['message']}" for r in problems]
    return "\n".join(lines) + "\n"


def to_html(fleet) -> str:
    """A self-contained page with the same table."""
    rows = fleet_rows(fleet)
    head = ["device", "result", "precision", "accuracy (teacher → final)",
            *(BUDGET_LABELS[k] for k in BUDGET_KEYS), "folder"]
    body = []
    for r in rows:
        cells = [r["device"], STATUS_TEXT.get(r["status"], r["status"]), r["precision"] or "-",
                 f"{_pct(r['teacher_accuracy'])} → {_pct(r['final_accuracy'])}",
                 *(cell(r, k).replace("**", "") for k in BUDGET_KEYS), os.path.basename(r["out_dir"]) + "/"]
        style = "" if r["fits"] else " class='bad'"
        body.append(f"<tr{style}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    problems = "".join(f"<li>{html.escape(r['device'])}: {html.escape(r['message'])}</li>" for r in rows
                       if r["message"])
    fitted = sum(1 for r in rows if r["fits"])
    return ("<!doctype html><html><head><meta charset='utf-8'><title>edgekit fleet fit</title><style>"
            "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;font-size:14px}"
            "th{background:#f4f4f4}tr.bad td{background:#fdecea}</style></head><body>"
            f"<h1>edgekit fleet fit: {html.escape(fleet.model_path)}</h1>"
            f"<p><b>{fitted} of {len(rows)} devices fit</b> in {fleet.seconds / 60:.1f} min.</p>"
            "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>" + "".join(body)
            + "</table><p>Figures are value / budget; measured where the fit measured them, otherwise the "
            "device profile's prediction, marked (pred.).</p>"
            + (f"<h2>Devices that do not fit</h2><ul>{problems}</ul>" if problems else "") + "</body></html>")


def write_fleet_reports(fleet, protected=()) -> tuple[str, ...]:
    """fleet.md, fleet.html and fleet.json into the fleet's folder, all or none."""
    import json

    from edgekit.model_io.atomic import write_atomically

    root = fleet.out_dir
    os.makedirs(root, exist_ok=True)
    files = {os.path.join(root, "fleet.md"): to_markdown(fleet), os.path.join(root, "fleet.html"): to_html(fleet),
             os.path.join(root, "fleet.json"): json.dumps(fleet.to_dict(), indent=2, default=str)}
    return write_atomically(files, protected=protected)


__all__ = ["fleet_rows", "to_html", "to_markdown", "write_fleet_reports"]
