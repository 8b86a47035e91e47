"""Reports of a fit: the FitResult value, and its JSON, Markdown and self-contained HTML renderings.

The renderers are pure functions of a FitResult (matplotlib draws the HTML's figures into inline SVG),
so a report can be re-rendered from report.json alone.
"""

from __future__ import annotations

import html
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
class AttemptSummary:
    """One compressed model a fit tried (edgekit.workflows.fit.attempts.Attempt, for the report)."""

    number: int
    reason: str
    kind: str
    precision: str
    description: str
    measured: dict                   # budget key -> measured value
    score: float | None
    drop: float | None
    fits_device: bool
    keeps_accuracy: bool
    delivered: bool = False

    @property
    def ok(self) -> bool:
        return self.fits_device and self.keeps_accuracy


@dataclass(frozen=True)
class LayerRow:
    layer: str
    dtype: str                            # the TFLite tensor holding its output: int8, int16, float32
    mse: float
    cosine: float
    max_abs: float
    snr_db: float


@dataclass(frozen=True)
class LayerTable:
    """The delivered model vs its Keras model, layer by layer (worst first), and the final output."""

    runtime: str
    samples: int
    rows: tuple[LayerRow, ...]
    output_snr_db: float
    output_cosine: float
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
    task: str | None = None          # edgekit.tasks: classify, multilabel, regress, anomaly, segment, detect, custom
    max_accuracy_drop: float | None = None   # the accuracy budget: allowed drop in accuracy_metric
    explanation: tuple[str, ...] = ()        # plain words: why this model, what bound it, what to change
    attempts: tuple[AttemptSummary, ...] = ()
    layer_precisions: dict = field(default_factory=dict)   # layer -> int8 | int16x8 | float32 (mixed precision)
    layer_table: LayerTable | None = None                  # delivered model vs Keras per layer (edgekit validate)

    @property
    def fits(self) -> bool:
        return all(b.fits is not False for b in self.budgets)

    def to_dict(self) -> dict:
        """The report object: per budget predicted/measured/limit/fits, accuracies, artifact paths."""
        data = asdict(self)
        data["budgets"] = {b.budget: {"predicted": b.predicted, "measured": b.measured, "limit": b.limit,
                                      "fits": b.fits, "measured_by": b.measured_by} for b in self.budgets}
        data["predicted_basis"] = {b.budget: b.basis for b in self.budgets if b.basis}
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
                "does_not_fit": "DOES NOT FIT: no model met every budget (the accuracy budget included)"}[result.status]
    raised = sorted({p for p in result.layer_precisions.values() if p != "int8"})
    precision = f"{result.precision} with {' / '.join(raised)} layers" if raised else result.precision
    lines += [f"**Result:** {headline} ({precision}, runtime {result.runtime}).", ""]
    if result.explanation:
        lines += ["## Why this model", "", *result.explanation, ""]
    lines += [(f"- {result.accuracy_metric}{f' (task {result.task})' if result.task else ''}: teacher "
              f"{_pct(result.teacher_accuracy)}, final {_pct(result.final_accuracy)}")]
    if result.binding_budget:
        lines.append(f"- binding budget: {BUDGET_LABELS.get(result.binding_budget, result.binding_budget)}")
    lines += ["", "## Budgets", "", "| budget | predicted | measured | limit | fits | measured by |",
              "|---|---:|---:|---:|---|---|"]
    for b in result.budgets:
        lines.append(f"| {BUDGET_LABELS[b.budget]} | {format_budget(b.budget, b.predicted)} | "
                     f"{format_budget(b.budget, b.measured)} | {format_budget(b.budget, b.limit)} | "
                     f"{_verdict(b.fits)} | {b.measured_by or '-'} |")
    drop = result.to_dict()["accuracy_drop"]
    if result.max_accuracy_drop is not None:
        verdict = _verdict(None if drop is None else drop <= result.max_accuracy_drop + 1e-12)
        lines.append(f"| accuracy drop | - | {'-' if drop is None else f'{drop:+.4f}'} | "
                     f"{result.max_accuracy_drop:g} | {verdict} | {result.accuracy_metric} vs the original |")
    repriced = {b.budget: b.basis.removesuffix(" (mixed model)") for b in result.budgets
                if b.basis.endswith("(mixed model)")}
    if repriced:
        basis = repriced.get("latency_ms", next(iter(repriced.values())))
        lines += ["", "Predicted " + ", ".join(BUDGET_LABELS[k] for k in repriced) + " are the delivered "
                  f"mixed-precision model's: {basis}, with the QUANTIZE / DEQUANTIZE between precisions."]
    if result.attempts:
        lines += ["", "## Attempts", "", "| # | why | model | measured | score | drop | result |",
                  "|---|---|---|---|---:|---:|---|"]
        for a in result.attempts:
            measured = ", ".join(f"{BUDGET_LABELS.get(k, k)} {format_budget(k, v)}" for k, v in a.measured.items()
                                 if v is not None)
            verdict = ("**delivered**" if a.delivered else "kept" if a.ok else
                       "over a device budget" if not a.fits_device else "lost too much accuracy")
            lines.append(f"| A{a.number} | {a.reason} | {a.kind} {a.precision}: {a.description} | {measured} | "
                         f"{'-' if a.score is None else f'{a.score:.4f}'} | "
                         f"{'-' if a.drop is None else f'{a.drop:+.4f}'} | {verdict} |")
    if result.candidates:
        lines += ["", "## Candidates considered", "", ("| # | candidate | kind | precision | predicted latency | "
                  "predicted flash | accuracy | fits | chosen |"), "|---|---|---|---|---:|---:|---:|---|---|"]
        for n, c in enumerate(result.candidates, 1):
            lines.append(f"| C{n} | {c.name} | {c.kind} | {c.precision} | "
                         f"{format_budget('latency_ms', c.predicted.get('latency_ms'))} | "
                         f"{format_budget('flash_bytes', c.predicted.get('flash_bytes'))} | {_pct(c.accuracy)} | "
                         f"{'yes' if c.fits else 'no'} | {'**yes**' if c.chosen else ''} |")
    lines += _layer_sections(result)
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


def to_html(result: FitResult) -> str:
    """A self-contained page (inline SVG figures, no external assets)."""
    from edgekit.workflows.fit.charts import figures as draw
    from edgekit.workflows.fit.charts import to_svg

    figures = [to_svg(f) for f in draw(result)]
    body = _markdown_tables_as_html(to_markdown(result))
    return ("<!doctype html><html><head><meta charset='utf-8'><title>edgekit fit report</title><style>"
            "body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}"
            "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
            "font-size:14px}th{background:#f4f4f4}.fig{margin:1.5em 0}</style></head><body>"
            + body + "".join(f"<div class='fig'>{f}</div>" for f in figures) + "</body></html>")


def _layer_sections(result: FitResult) -> list[str]:
    lines = []
    if result.layer_precisions:
        lines += ["", "## Per-layer precision (mixed)", "", "| layer | precision |", "|---|---|"]
        lines += [f"| {n} | {p if p == 'int8' else f'**{p}**'} |" for n, p in result.layer_precisions.items()]
    t = result.layer_table
    if t is not None:
        title = f"## Per-layer error vs the Keras model ({t.runtime}, {t.samples} validation samples, worst first)"
        lines += ["", title, "",
                  f"Final output: SNR {t.output_snr_db:.1f} dB, cosine {t.output_cosine:.4f}."
                  + (f" {t.note}" if t.note else "")]
        if t.rows:
            lines += ["", "| layer | tensor type | MSE | cosine | max abs error | SNR dB |",
                      "|---|---|---:|---:|---:|---:|"]
            lines += [f"| {r.layer} | {r.dtype} | {r.mse:.3g} | {r.cosine:.4f} | {r.max_abs:.3g} | {r.snr_db:.1f} |"
                      for r in t.rows]
    return lines


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


__all__ = ["BUDGET_KEYS", "AttemptSummary", "BudgetLine", "CandidateSummary", "FitResult", "LayerChannels",
           "StageTiming",
           "to_html", "to_markdown"]
