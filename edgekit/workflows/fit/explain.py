"""The report's first section in plain words: why this model, what bound it, how to get more accuracy (pure)."""

from __future__ import annotations

from edgekit.budgets import BUDGET_LABELS, format_budget
from edgekit.workflows.fit.attempts import Attempt, binding_use

OPTIONS = {"flash_bytes": "--max-flash", "ram_bytes": "--max-ram", "latency_ms": "--max-latency-ms",
           "energy_mj": "--max-energy-mj"}


def explain(chosen: Attempt, attempts: list[Attempt], task, device: str) -> tuple[str, ...]:
    """Three or four sentences for people; the first lines of the report and of `edgekit fit --explain`."""
    metric = task.metric
    lines = [f"Task: {task.name} ({task.why}); every model is scored by {metric}."]
    tried = f" after {len(attempts)} attempts" if len(attempts) > 1 else ""
    if chosen.kind == "original":
        lines.append(f"Chosen: the model as it is, at {chosen.precision}: it already fits the {device}; nothing "
                     f"was cut. {metric} {chosen.score:.4f} vs {chosen.teacher_score:.4f} in float.")
    else:
        lines.append(f"Chosen{tried}: attempt {chosen.number}, a {chosen.kind} model at {chosen.precision} "
                     f"({chosen.description}): it fits every budget of the {device} and keeps {metric} at "
                     f"{chosen.score:.4f} vs {chosen.teacher_score:.4f} for the original (a drop of "
                     f"{chosen.drop:+.4f}, allowed {chosen.max_drop:g}).")
    use = binding_use(chosen)
    if use is not None:
        key, share = use
        limit = chosen.limits[key]
        lines.append(f"Binding budget: {BUDGET_LABELS.get(key, key)}: measured "
                     f"{format_budget(key, chosen.measured[key])} of {format_budget(key, limit)} ({share:.0%}).")
        if chosen.kind != "original":
            room = [BUDGET_LABELS.get(k, k) for k, v in chosen.limits.items()
                    if k != key and chosen.measured.get(k) is not None and chosen.measured[k] < 0.5 * v]
            lines.append(f"More accuracy: the model was cut to fit {BUDGET_LABELS.get(key, key)}; raising "
                         f"{OPTIONS.get(key, key)} (e.g. to {format_budget(key, 1.5 * limit)}, +50%) leaves room for "
                         "more channels or a larger student"
                         + (f"; {', '.join(room)} still has room to spare" if room else "") + ".")
    return tuple(lines)
