"""The figures of a fit report (matplotlib, drawn to inline SVG): budgets, the accuracy trade-off, channels.

Only what was measured or evaluated is plotted as a point: candidates the planner did not evaluate sit in a
row of their own under the chart, never at a made-up accuracy of 0. An axis whose values span more than a
decade is logarithmic; point labels are placed where they overlap no other label; the binding budget's limit
and the accuracy budget are drawn as lines.
"""

from __future__ import annotations

import io

from edgekit.budgets import BUDGET_LABELS, format_budget

LABEL_OFFSETS = ((5, 5), (5, -11), (-16, 5), (-16, -11), (6, 14), (-16, 14), (9, -1), (-22, -1), (0, -20),
                 (0, 22), (14, 10), (-26, 10))


def candidate_ids(result) -> list[str]:
    return [f"C{i + 1}" for i in range(len(result.candidates))]


def to_svg(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.find("<svg"):]
    start, end = text.find("<metadata>"), text.find("</metadata>")
    if start != -1 and end != -1:  # creator/licence metadata only; keeps the page free of outside references
        text = text[:start] + text[end + len("</metadata>"):]
    return text


def figures(result) -> list:
    """The report's matplotlib figures (the caller renders and closes them)."""
    import matplotlib

    matplotlib.use("Agg")
    return [f for f in (figure_budgets(result), figure_tradeoff(result), figure_channels(result)) if f is not None]


def _axis_key(result) -> str | None:
    keys = [b.budget for b in result.budgets if b.limit]
    if result.binding_budget in keys:
        return result.binding_budget
    with_values = [k for k in ("flash_bytes", "ram_bytes", "latency_ms") if k in keys]
    return with_values[0] if with_values else None


def _scale(v: float, key: str) -> float:
    return v / 1024.0 if key.endswith("_bytes") else v


def _unit(key: str) -> str:
    return "KiB" if key.endswith("_bytes") else ("ms" if key == "latency_ms" else "mJ")


def figure_tradeoff(result):
    """The task metric against the binding budget: attempts (measured) and evaluated candidates (predicted)."""
    import matplotlib.pyplot as plt

    key = _axis_key(result)
    if key is None or (not result.candidates and not result.attempts):
        return None
    ids = candidate_ids(result)
    evaluated = [(i, c) for i, c in zip(ids, result.candidates)
                 if c.accuracy is not None and c.predicted.get(key) is not None]
    unevaluated = [(i, c) for i, c in zip(ids, result.candidates)
                   if c.accuracy is None and c.predicted.get(key) is not None]
    attempts = [a for a in result.attempts if a.score is not None and a.measured.get(key) is not None]
    limit = next(b.limit for b in result.budgets if b.budget == key)
    xs = [_scale(c.predicted[key], key) for _, c in evaluated + unevaluated]
    xs += [_scale(a.measured[key], key) for a in attempts] + [_scale(limit, key)]
    fig, (ax, strip) = plt.subplots(2, 1, figsize=(7.0, 4.6), sharex=True,
                                    gridspec_kw={"height_ratios": [5, 1] if unevaluated else [5, 0.01]})
    labels = []
    for i, c in evaluated:
        ax.scatter(_scale(c.predicted[key], key), c.accuracy, marker="o", s=36,
                   color="tab:green" if c.fits else "tab:red", zorder=3)
        labels.append((ax, _scale(c.predicted[key], key), c.accuracy, i))
    for a in attempts:
        ax.scatter(_scale(a.measured[key], key), a.score, marker="*" if a.delivered else "D",
                   s=160 if a.delivered else 40, color="tab:blue" if a.ok else "tab:orange", zorder=4)
        labels.append((ax, _scale(a.measured[key], key), a.score, f"A{a.number}"))
    for i, c in unevaluated:
        strip.scatter(_scale(c.predicted[key], key), 0, marker="x", color="gray")
        labels.append((strip, _scale(c.predicted[key], key), 0, i))
    strip.set_yticks([0], ["not\nevaluated"] if unevaluated else [""], fontsize=7)
    strip.set_ylim(-1, 1)
    ax.axvline(_scale(limit, key), color="tab:red", linestyle="--", label=f"{BUDGET_LABELS.get(key, key)} budget")
    strip.axvline(_scale(limit, key), color="tab:red", linestyle="--")
    if result.teacher_accuracy is not None:
        ax.axhline(result.teacher_accuracy, color="tab:gray", linestyle=":", label="original model")
        if result.max_accuracy_drop is not None:
            ax.axhline(result.teacher_accuracy - result.max_accuracy_drop, color="tab:purple", linestyle="-.",
                       label="accuracy budget")
    if max(xs) / max(min(xs), 1e-12) > 10:
        ax.set_xscale("log")
    ax.set_xlim(min(xs) * 0.8, max(xs) * 1.15)
    strip.set_xlabel(f"{BUDGET_LABELS.get(key, key)} ({_unit(key)}): measured for attempts (A), predicted for "
                     "candidates (C)")
    ax.set_ylabel(result.accuracy_metric)
    ax.set_title("What was tried: the task metric against the binding budget")
    ax.legend(fontsize=7, loc="lower right")
    place_labels(fig, labels)
    return fig


def place_labels(fig, labels) -> list:
    """Annotate each (axes, x, y, text) at the first offset whose box overlaps no label placed before."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    placed, boxes = [], []
    for axes, x, y, text in labels:
        for dx, dy in LABEL_OFFSETS:
            note = axes.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=7)
            box = note.get_window_extent(renderer).expanded(1.05, 1.1)
            if not any(box.overlaps(b) for b in boxes) or (dx, dy) == LABEL_OFFSETS[-1]:
                break
            note.remove()
        boxes.append(box)
        placed.append(note)
    return placed


def figure_budgets(result):
    """Each budget's share used, measured where measured (predicted otherwise, marked), and the accuracy budget."""
    import matplotlib.pyplot as plt

    rows = [(BUDGET_LABELS.get(b.budget, b.budget), b.measured, b.predicted, b.limit,
             format_budget(b.budget, b.limit)) for b in result.budgets if b.limit]
    if result.max_accuracy_drop and result.teacher_accuracy is not None and result.final_accuracy is not None:
        drop = max(0.0, result.teacher_accuracy - result.final_accuracy)
        rows.append(("accuracy drop", drop, None, result.max_accuracy_drop, f"{result.max_accuracy_drop:g}"))
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 0.5 + 0.45 * len(rows)))
    for y, (name, measured, predicted, limit, _) in enumerate(rows):
        if measured is not None:
            ax.barh(y, 100 * measured / limit, color="tab:blue", height=0.5)
        elif predicted is not None:
            ax.barh(y, 100 * predicted / limit, color="none", edgecolor="tab:blue", hatch="//", height=0.5)
    ax.set_yticks(range(len(rows)), [f"{r[0]} (limit {r[4]})" for r in rows], fontsize=8)
    ax.axvline(100, color="tab:red", linestyle="--")
    ax.set_xlabel("% of the budget used (solid: measured; hatched: predicted, not measurable here)")
    ax.invert_yaxis()
    return fig


def figure_channels(result):
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
    return fig
