"""The plan stage of a fit: the planner's candidates, evaluated by the task's metric, then chosen."""

from __future__ import annotations

import json

from edgekit.workflows.fit.context import Context, plan_labels, score_outputs, train_heads
from edgekit.workflows.fit.workspace import write_text


def plan_stage(ctx: Context, margin: float):
    from edgekit.planner.plan_json import read_plan
    from edgekit.workflows.plan import plan

    options, data, progress, workspace = ctx.options, ctx.data, ctx.progress, ctx.workspace
    path = workspace.path("plan.json")
    stage = f"plan@{margin:.3f}"
    if workspace.is_done(stage):
        progress.skipped("plan", "resumed from the earlier run")
        return read_plan(path)
    with progress.stage("plan", f"searching precision x channels x students for {options.device} "
                                f"(plan to {100 * margin:.0f}% of each budget)") as note:
        result = plan(ctx.teacher, options.device, data=(data.x_train, plan_labels(ctx, data.y_train)),
                      margin=margin, accuracy_tolerance=options.max_accuracy_drop, evaluate=0,
                      batch_size=options.batch_size, seed=options.seed, memory_opt=options.memory_opt,
                      **options.budget_overrides())
        result = _evaluate_plan(ctx, result, margin)
        write_text(path, json.dumps(result.to_dict(), indent=2))
        note.append(f"chose {result.chosen.kind}: {result.chosen.description} at {result.chosen.precision}")
    workspace.record(stage)
    return result


# decide() writes these lines again when it chooses among the evaluated candidates
_CHOICE_LINES = ("chose ", "binding budget:", "a student starts", "it fits the limits")


def _evaluate_plan(ctx: Context, result, margin: float):
    """Short fine-tunes of the most promising candidates scored by the task's metric, then choose again."""
    from edgekit.channels.groups import build_groups
    from edgekit.ir.from_keras import from_keras
    from edgekit.planner.evaluate import evaluate_candidates
    from edgekit.planner.search import PlannerOptions, decide

    options, data = ctx.options, ctx.data
    if options.evaluate_candidates <= 0 or not any(c.fits and c.kind != "original" for c in result.candidates):
        return result
    graph = from_keras(ctx.teacher)
    train = (data.x_train, plan_labels(ctx, data.y_train))
    evaluation = evaluate_candidates(
        ctx.teacher, build_groups(graph), result.candidates, train, (data.x_val, plan_labels(ctx, data.y_val)),
        k=options.evaluate_candidates, epochs=options.plan_epochs, batch_size=options.batch_size, seed=options.seed,
        progress=ctx.progress.say, score=lambda net: score_outputs(ctx, net.predict(data.x_val, verbose=0)),
        metric=ctx.task.metric, distill_task=ctx.task.distill_task,
        train_student=(lambda t, s, _train, _val, epochs: train_heads(ctx, t, s, epochs))
        if len(ctx.task.heads) > 1 else None)
    notes = [line for line in result.explanation[1:]
             if not line.startswith(_CHOICE_LINES) and "student(s) considered" not in line]
    notes.append(f"evaluated {evaluation.evaluated} candidate(s) by {ctx.task.metric} on {len(data.x_val)} "
                 f"validation samples after {options.plan_epochs} epoch(s) of fine-tuning / distillation; the "
                 f"original model scores {evaluation.baseline:.4f} (float, quantisation not included)")
    planner_options = PlannerOptions(margin=margin, accuracy_tolerance=options.max_accuracy_drop,
                                     memory_opt=options.memory_opt)
    return decide(result.model, graph, ctx.profile, ctx.limits, evaluation.candidates, planner_options,
                  notes=notes, baseline_accuracy=evaluation.baseline)
