"""The end of a fit: the FitResult of the delivered round (or of the closest ones), its reports, exit 3."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

from edgekit.errors import DoesNotFitError
from edgekit.workflows.fit.attempts import Attempt, best_of_each_kind
from edgekit.workflows.fit.progress import Progress
from edgekit.workflows.fit.report import (
    AttemptSummary,
    BudgetLine,
    CandidateSummary,
    FitResult,
    LayerChannels,
    to_html,
    to_markdown,
)
from edgekit.workflows.fit.workspace import Workspace, write_text

REPORT_FILES = ("report.json", "report.md", "report.html")


class FitDoesNotFitError(DoesNotFitError):
    """Nothing reachable fits; `result` is the report of the closest result (written to the output)."""

    def __init__(self, message: str, result: FitResult) -> None:
        super().__init__(message)
        self.result = result


def summaries(attempts: list[Attempt], delivered: int | None = None) -> tuple[AttemptSummary, ...]:
    return tuple(AttemptSummary(a.number, a.reason, a.kind, a.precision, a.description, dict(a.measured), a.score,
                                a.drop, a.fits_device, a.keeps_accuracy, a.number == delivered) for a in attempts)


def keep_round_files(workspace: Workspace, number: int, names) -> None:
    """Keep a round's files: a later round may score worse and the earlier one is delivered."""
    folder = workspace.path(f"round-{number}")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for name in names:
        _copy(workspace.path(name), folder / name)


def restore_round_files(workspace: Workspace, number: int, names) -> None:
    for name in names:
        target = workspace.path(name)
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        _copy(workspace.path(f"round-{number}") / name, target)


def _copy(src, dst) -> None:
    if src.is_dir():
        shutil.copytree(src, dst)
    elif src.exists():
        shutil.copy2(src, dst)


def _channels(plan) -> tuple[LayerChannels, ...]:
    return tuple(LayerChannels(w.name, w.channels_before, w.channels_after) for w in plan.chosen.layers
                 if w.channels_before is not None)


def build_result(model_name, profile, plan, measured, teacher_score, score, limits, progress: Progress, status,
                 notes, metric: str) -> FitResult:
    predicted = dict(plan.chosen.predicted)
    m = {"flash_bytes": (measured.flash_bytes, "exported .tflite size") if measured else (None, None),
         "ram_bytes": (measured.ram_bytes, measured.ram_by) if measured else (None, None),
         "latency_ms": (measured.latency_ms, measured.latency_by) if measured else (None, None),
         "energy_mj": (None, None)}
    lines = tuple(BudgetLine(k, limits.get(k), predicted.get(k), measured=m[k][0], measured_by=m[k][1])
                  for k in limits)
    candidates = tuple(CandidateSummary(c.label if hasattr(c, "label") else c.description, c.kind, c.precision,
                                        dict(c.predicted), c.fits, c.accuracy, c == plan.chosen)
                       for c in plan.candidates)
    extra = []
    if measured is not None and measured.host_latency_ms is not None and profile.kind != "host":
        extra.append(f"host LiteRT latency {measured.host_latency_ms:.3f} ms (this x86 machine, not the "
                     f"{profile.name}); device latency and energy are the cost model's predictions")
    return FitResult(model_path=model_name, device=profile.name, runtime=profile.runtime, status=status,
                     precision=plan.chosen.precision, budgets=lines, teacher_accuracy=teacher_score,
                     final_accuracy=score, accuracy_metric=metric, candidates=candidates,
                     channels=_channels(plan), stages=tuple(progress.timings), notes=(*extra, *notes),
                     binding_budget=plan.binding_budget)


def write_reports(result: FitResult, workspace: Workspace) -> None:
    write_text(workspace.path("report.json"), json.dumps(result.to_dict(), indent=2, default=str))
    write_text(workspace.path("report.md"), to_markdown(result))
    write_text(workspace.path("report.html"), to_html(result))


def does_not_fit(model_name, profile, limits, message, last, teacher_score, workspace: Workspace,
                 progress: Progress, task, attempts: list[Attempt] = (), binding: str | None = None):
    """Exit 3: reports of the closest result (and the best attempt of each kind), no model file in the output."""
    progress.say(f"does not fit: {message}")
    metric = task.metric
    budgets = tuple(BudgetLine(k, v, None) for k, v in limits.items())
    result = FitResult(model_path=model_name, device=profile.name, runtime=profile.runtime, status="does_not_fit",
                       precision=profile.precision_preferred, budgets=budgets, teacher_accuracy=teacher_score,
                       final_accuracy=None, accuracy_metric=metric, stages=tuple(progress.timings),
                       notes=(message,))
    described = [message]
    for kind, a in best_of_each_kind(list(attempts)).items():
        what = kind.replace("_", " ")
        described.append(f"The {what}: " + (f"attempt A{a.number} ({a.kind} {a.precision}, {a.description}), "
                                              f"{metric} {a.score:.4f}, drop {a.drop:+.4f}." if a is not None
                                              else "none of the attempts."))
    if last is not None:
        plan, measured, score = last
        result = build_result(model_name, profile, plan, measured, teacher_score, score, limits, progress,
                              "does_not_fit", (message, *plan.explanation), metric)
    result = replace(result, task=task.name, explanation=tuple(described), attempts=summaries(list(attempts)),
                     max_accuracy_drop=attempts[0].max_drop if attempts else None,
                     binding_budget=binding or result.binding_budget)
    write_reports(result, workspace)
    workspace.publish(list(REPORT_FILES))
    workspace.discard()
    raise FitDoesNotFitError(message, result)
