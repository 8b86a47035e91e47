"""Reports of a fit: the FitResult value, and its JSON, Markdown and self-contained HTML renderings.

The renderers are pure functions of a FitResult (matplotlib draws the HTML's figures into inline SVG),
so a report can be re-rendered from report.json alone.
"""

from __future__ import annotations

import html
import io
from dataclasses import asdict, dataclass, field

from edgekit.budgets import BUDGET_KEYS, BUDGET_LABELS, BudgetLine, format_budget


@dataclass(frozen=True)
class CandidateSummary:
    name: str
    kind: str                        # original | pruned | student
    precision: str
    predicted: dict                  # budget key -> value
    fits: bool
    accuracy: float | None = None
    chosen: bool = False


@dataclass(frozen=True)
class LayerChannels:
    layer: str
    before: int
    after: int


@dataclass(frozen=True)
class StageTiming:
    stage: str
    seconds: float
    note: str = ""


@dataclass(frozen=True)
class FitResult:
    model_path: str
    device: str
    runtime: str
    status: str                      # "fits" | "already_fits" | "does_not_fit"
    precision: str
    budgets: tuple[BudgetLine, ...]
    teacher_accuracy: float | None
    final_accuracy: float | None
    accuracy_metric: str = "top-1 accuracy"
    candidates: tuple[CandidateSummary, ...] = ()
    channels: tuple[LayerChannels, ...] = ()
    stages: tuple[StageTiming, ...] = ()
    artifacts: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    binding_budget: str | None = None

    @property
    def fits(self) -> bool:
        return all(b.fits is not False for b in self.budgets)

    def to_dict(self) -> dict:
        """The report object: per budget predicted/measured/limit/fits, accuracies, artifact paths."""
        data = asdict(self)
        data["budgets"] = {b.budget: {"predicted": b.predicted, "measured": b.measured, "limit": b.limit,
                                      "fits": b.fits, "measured_by": b.measured_by} for b in self.budgets}
        data["fits"] = self.fits
        data["accuracy_drop"] = (None if self.teacher_accuracy is None or self.final_accuracy is None
                                 else self.teacher_accuracy - self.final_accuracy)
        return data


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _verdict(fits: bool | None) -> str:
    return {True: "yes", False: "**NO**", None: "-"}[fits]


def to_markdown(result: FitResult) -> str:
    lines = [f"# edgekit fit: {result.model_path} on {result.device}", ""]
    headline = {"fits": "fits after compression", "already_fits": "already fitted: exported and verified only",
                "does_not_fit": "DOES NOT FIT: no candidate met every budget"}[result.status]
    lines += [f"**Result:** {headline} ({result.precision}, runtime {result.runtime}).", ""]
    lines += [(f"- {result.accuracy_metric}: teacher {_pct(result.teacher_accuracy)}, "
              f"final {_pct(result.final_accuracy)}")]
    if result.binding_budget:
        lines.append(f"- binding budget: {BUDGET_LABELS.get(result.binding_budget, result.binding_budget)}")
    lines += ["", "## Budgets", "", "| budget | predicted | measured | limit | fits | measured by |",
              "|---|---:|---:|---:|---|---|"]
    for b in result.budgets:
        lines.append(f"| {BUDGET_LABELS[b.budget]} | {format_budget(b.budget, b.predicted)} | "
                     f"{format_budget(b.budget, b.measured)} | {format_budget(b.budget, b.limit)} | "
                     f"{_verdict(b.fits)} | {b.measured_by or '-'} |")
    if result.candidates:
        lines += ["", "## Candidates considered", "", ("| candidate | kind | precision | predicted latency | "
                  "predicted flash | accuracy | fits | chosen |"), "|---|---|---|---:|---:|---:|---|---|"]
        for c in result.candidates:
            lines.append(f"| {c.name} | {c.kind} | {c.precision} | "
                         f"{format_budget('latency_ms', c.predicted.get('latency_ms'))} | "
                         f"{format_budget('flash_bytes', c.predicted.get('flash_bytes'))} | {_pct(c.accuracy)} | "
                         f"{'yes' if c.fits else 'no'} | {'**yes**' if c.chosen else ''} |")
    if result.channels:
        lines += ["", "## Channels per layer", "", "| layer | before | after |", "|---|---:|---:|"]
        lines += [f"| {c.layer} | {c.before} | {c.after} |" for c in result.channels]
    if result.stages:
        lines += ["", "## Stages", "", "| stage | seconds | note |", "|---|---:|---|"]
        lines += [f"| {s.stage} | {s.seconds:.1f} | {s.note} |" for s in result.stages]
    if result.artifacts:
        lines += ["", "## Files", ""] + [f"- {k}: `{v}`" for k, v in sorted(result.artifacts.items())]
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in result.notes]
    return "\n".join(lines) + "\n"


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    text = buf.getvalue()
    text = text[text.find("<svg"):]
    start, end = text.find("<metadata>"), text.find("</metadata>")
    if start != -1 and end != -1:  # creator/licence metadata only; keeps the page free of outside references
        text = text[:start] + text[end + len("</metadata>"):]
    return text


def _figure_candidates(result: FitResult) -> str | None:
    import matplotlib.pyplot as plt

    points = [c for c in result.candidates if c.predicted.get("latency_ms") is not None]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for c in points:
        y = 100 * c.accuracy if c.accuracy is not None else None
        marker = "*" if c.chosen else ("o" if c.fits else "x")
        ax.scatter(c.predicted["latency_ms"], y if y is not None else 0, marker=marker, s=120 if c.chosen else 40,
                   color="tab:green" if c.fits else "tab:red")
        ax.annotate(c.name, (c.predicted["latency_ms"], y if y is not None else 0), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    limit = next((b.limit for b in result.budgets if b.budget == "latency_ms"), None)
    if limit is not None:
        ax.axvline(limit, color="gray", linestyle="--", label="latency budget")
    if result.teacher_accuracy is not None:
        ax.axhline(100 * result.teacher_accuracy, color="tab:blue", linestyle=":", label="teacher accuracy")
    ax.set_xlabel("predicted latency on device (ms)")
    ax.set_ylabel("accuracy (%) (0 = not evaluated)")
    ax.set_title("Candidates: accuracy vs latency")
    ax.legend(fontsize=7)
    return _svg(fig)


def _figure_channels(result: FitResult) -> str | None:
    import matplotlib.pyplot as plt

    if not result.channels:
        return None
    names = [c.layer for c in result.channels]
    fig, ax = plt.subplots(figsize=(max(6.4, 0.45 * len(names)), 3.8))
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [c.before for c in result.channels], width=0.4, label="before")
    ax.bar([x + 0.2 for x in xs], [c.after for c in result.channels], width=0.4, label="after")
    ax.set_xticks(list(xs), names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("output channels")
    ax.set_title("Channels per layer")
    ax.legend(fontsize=7)
    return _svg(fig)


def _figure_budgets(result: FitResult) -> str | None:
    import matplotlib.pyplot as plt

    rows = [b for b in result.budgets if b.limit]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    xs = range(len(rows))
    pred = [100 * (b.predicted or 0) / b.limit for b in rows]
    meas = [100 * (b.measured or 0) / b.limit for b in rows]
    ax.bar([x - 0.2 for x in xs], pred, width=0.4, label="predicted")
    ax.bar([x + 0.2 for x in xs], meas, width=0.4, label="measured (0 = not measured here)")
    ax.axhline(100, color="tab:red", linestyle="--", label="budget")
    ax.set_xticks(list(xs), [BUDGET_LABELS[b.budget] for b in rows])
    ax.set_ylabel("% of budget")
    ax.set_title("Predicted vs measured vs budget")
    ax.legend(fontsize=7)
    return _svg(fig)


def to_html(result: FitResult) -> str:
    """A self-contained page (inline SVG figures, no external assets)."""
    import matplotlib

    matplotlib.use("Agg")
    figures = [f for f in (_figure_budgets(result), _figure_candidates(result), _figure_channels(result)) if f]
    body = _markdown_tables_as_html(to_markdown(result))
    return ("<!doctype html><html><head><meta charset='utf-8'><title>edgekit fit report</title><style>"
            "body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}"
            "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
            "font-size:14px}th{background:#f4f4f4}.fig{margin:1.5em 0}</style></head><body>"
            + body + "".join(f"<div class='fig'>{f}</div>" for f in figures) + "</body></html>")


def _markdown_tables_as_html(markdown: str) -> str:
    """The small Markdown subset `to_markdown` writes (headings, bullets, tables, bold) as HTML."""
    out: list[str] = []
    table: list[list[str]] = []

    def inline(text: str) -> str:
        text = html.escape(text)
        parts = text.split("**")
        text = "".join(p if i % 2 == 0 else f"<b>{p}</b>" for i, p in enumerate(parts))
        parts = text.split("`")
        return "".join(p if i % 2 == 0 else f"<code>{p}</code>" for i, p in enumerate(parts))

    def flush() -> None:
        if table:
            head, *rows = [r for r in table if not set("".join(r)) <= set("-:")]
            out.append("<table><tr>" + "".join(f"<th>{inline(c)}</th>" for c in head) + "</tr>"
                       + "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in rows)
                       + "</table>")
            table.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            table.append([c.strip() for c in line.strip("|").split("|")])
            continue
        flush()
        if line.startswith("## "):
            out.append(f"<h2>{inline(line[3:])}</h2>")
        elif line.startswith("# "):
            out.append(f"<h1>{inline(line[2:])}</h1>")
        elif line.startswith("- "):
            out.append(f"<li>{inline(line[2:])}</li>")
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
    flush()
    return "\n".join(out)


__all__ = ["BUDGET_KEYS", "BudgetLine", "CandidateSummary", "FitResult", "LayerChannels", "StageTiming",
           "to_html", "to_markdown"]
