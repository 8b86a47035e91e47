"""The stages of a fit, each resumable: its outputs live in the workspace and it records itself when done.

A fit runs rounds (`_round`): plan -> compress -> quantize -> export -> measure, re-planned with a tighter
margin while a measured figure breaks a device budget. The task's metric (edgekit.tasks) scores every round;
edgekit.workflows.fit.attempts decides whether to walk back (accuracy lost) or re-plan upward (headroom).
"""

from __future__ import annotations

from dataclasses import replace

from edgekit.errors import BadInputError, DoesNotFitError
from edgekit.export.mixed import CHOICE_CALIBRATION_SAMPLES  # one count for fit's int8 and its per-layer mixed choice
from edgekit.workflows.fit.attempts import (
    Attempt,
    Step,
    accuracy_message,
    headroom_step,
    walk_back_steps,
)
from edgekit.workflows.fit.context import (
    Context,
    Data,
    Measured,
    Round,
    load_fit_data,
    predict_outputs,
    score_outputs,
    train_heads,
    training_input,
)
from edgekit.workflows.fit.layers import PRECISIONS_FILE, QUANTIZED_FILE, keep_quantized, layer_report, try_mixed
from edgekit.workflows.fit.outcome import (
    FitDoesNotFitError,
    build_result,
    does_not_fit,
    keep_round_files,
    restore_round_files,
    summaries,
    write_reports,
)
from edgekit.workflows.fit.planning import plan_stage
from edgekit.workflows.fit.progress import Progress
from edgekit.workflows.fit.report import FitResult
from edgekit.workflows.fit.workspace import Workspace, write_bytes, write_text

REPORTS = ("report.json", "report.md", "report.html", "plan.json")
MAX_REPLANS = 3
ROUND_FILES = ("model.tflite", "model.h5", "plan.json", "mcu", QUANTIZED_FILE, PRECISIONS_FILE)
ROUND_STAGES = ("compress", "quantize", "export")

__all__ = ["Data", "FitDoesNotFitError", "Measured", "load_fit_data", "run"]


# ----------------------------------------------------------------------------------------------- stages


def _compress(ctx: Context, plan, epochs: int):
    from edgekit.model_io import load_model, save_model

    teacher, data, progress, workspace, options = ctx.teacher, ctx.data, ctx.progress, ctx.workspace, ctx.options
    path = workspace.path("model.h5")
    if workspace.is_done("compress"):
        progress.skipped("compress", "resumed from the earlier run")
        return load_model(path).keras_model
    chosen = plan.chosen
    if chosen.kind == "original":
        with progress.stage("compress", "not needed: the model already fits") as note:
            save_model(teacher, path)
            note.append("original model kept")
        workspace.record("compress")
        return teacher
    from edgekit.channels.groups import build_groups
    from edgekit.distill import distill
    from edgekit.distill.recipe import fit_recipe  # consistent augmentation (benchmarks/distill_ablation.md)
    from edgekit.ir.from_keras import from_keras
    from edgekit.planner.evaluate import realize

    with progress.stage("compress", f"building {chosen.kind} candidate, then distilling from the original "
                                    f"({epochs} epochs max, {ctx.task.distill_task} loss)") as note:
        student = realize(teacher, build_groups(from_keras(teacher)), chosen)
        labels = ctx.task.training_labels
        if len(ctx.task.heads) > 1:
            result = train_heads(ctx, teacher, student, epochs, verbose=progress.keras_verbose)
        else:
            result = distill(teacher, student, *training_input(ctx), data.x_val, labels(data.y_val),
                             epochs=epochs, batch_size=options.batch_size, seed=options.seed, patience=epochs,
                             verbose=progress.keras_verbose, task=ctx.task.distill_task,
                             **fit_recipe(options.augment, epochs=epochs))
        # patience = epochs: the cosine schedule decays over every epoch and the best epoch is restored anyway
        student = result.student
        save_model(student, path)
        note.append(f"best epoch {result.best_epoch} of {result.epochs_run}")
    workspace.record("compress")
    return student


def _quantize(ctx: Context, student, plan) -> tuple[bytes, float, float, list[str]]:
    """Post-training quantisation at the plan's precision; QAT when int8 costs the accuracy budget."""
    from edgekit.export.tflite import convert

    data, progress, workspace, options = ctx.data, ctx.progress, ctx.workspace, ctx.options
    path = workspace.path("model.tflite")
    if workspace.is_done("quantize"):
        progress.skipped("quantize", "resumed from the earlier run")
        info = workspace.info("quantize")
        return path.read_bytes(), info["float_accuracy"], info["accuracy"], info["notes"]
    precision = plan.chosen.precision
    notes: list[str] = []
    layer_precisions: dict = {}  # set when per-layer mixed precision is kept
    metric = ctx.task.metric
    with progress.stage("quantize", f"converting to {precision} TFLite, calibrated on the training data") as note:
        calibration = data.x_train[:CHOICE_CALIBRATION_SAMPLES]
        float_acc = score_outputs(ctx, student.predict(data.x_val, verbose=0))
        # MCU firmware feeds int8 tensors: int8 input/output there (as `edgekit export` does), which also
        # keeps the float copies of input and output out of the TFLM arena
        int8_io = ctx.profile.runtime == "tflm" and precision == "int8"
        tflite = convert(student, precision, representative_data=calibration, int8_io=int8_io).tflite_bytes
        score = ctx.task.score(predict_outputs(ctx, tflite, data.x_val), data.y_val, ctx.teacher_val, data.x_val)
        acc = score.value
        if score.details:
            notes.append(f"{precision} model, {score.metric}: {acc:.4f}; "
                         + ", ".join(f"{k} {v:.4f}" for k, v in score.details.items()))
        note.append(f"{precision}: {metric} {acc:.4f} (float {float_acc:.4f})")
        over_budget = ctx.teacher_score - acc > options.max_accuracy_drop
        lossy = precision == "int8" and float_acc > acc and (over_budget or float_acc - acc > options.max_accuracy_drop)
        if lossy:
            mixed = try_mixed(ctx, student, calibration, acc)  # per-layer int16x8 / float32 before QAT
            if mixed is not None:
                notes.extend(mixed.notes)
                if mixed.score > acc:
                    tflite, acc, layer_precisions = mixed.tflite_bytes, mixed.score, mixed.layer_precisions
            qat = _qat(ctx, student) if ctx.teacher_score - acc > options.max_accuracy_drop else None
            try:
                qat_bytes = None if qat is None else convert(qat, "int8", representative_data=calibration,
                                                             int8_io=int8_io).tflite_bytes
            except Exception as err:  # noqa: BLE001 - QAT is an optional improvement: keep the working PTQ model
                notes.append(f"the quantisation-aware model could not be converted ({type(err).__name__}: "
                             f"{str(err)[:120]}); kept post-training int8")
                qat_bytes = None
            if qat_bytes is not None:
                qat_acc = score_outputs(ctx, predict_outputs(ctx, qat_bytes, data.x_val))
                notes.append(f"post-training int8 lost {float_acc - acc:.4f} {metric}; quantisation-aware "
                             f"training gave {qat_acc:.4f}" + (" (kept)" if qat_acc > acc else " (not kept)"))
                if qat_acc > acc:
                    tflite, acc, layer_precisions = qat_bytes, qat_acc, {}
        write_bytes(path, tflite)
        keep_quantized(workspace, tflite, layer_precisions)
    workspace.record("quantize", {"float_accuracy": float_acc, "accuracy": acc, "notes": notes})
    return tflite, float_acc, acc, notes


def _qat(ctx: Context, student):
    from edgekit.errors import UnsupportedModelError
    from edgekit.export.qat import quantize_aware

    ctx.progress.say("quantize: int8 lost accuracy the budget cannot spare: quantisation-aware fine-tuning")
    try:
        return quantize_aware(student, ctx.data.x_train, ctx.task.training_labels(ctx.data.y_train),
                              epochs=max(2, ctx.options.epochs // 5), batch_size=ctx.options.batch_size,
                              seed=ctx.options.seed).model
    except UnsupportedModelError as err:
        ctx.progress.say(f"quantize: QAT not possible ({err}); keeping post-training int8")
        return None


def _export(tflite: bytes, profile, student, data: Data, workspace: Workspace,
            progress: Progress, memory_opt: bool = True) -> tuple[bytes, list[str], int | None]:
    """MCU profiles: check ops, strip what TFLM does not need, measure the arena, write the C sources."""
    if profile.runtime != "tflm":
        return tflite, ["model.tflite"], None
    names = ["model.tflite", "mcu"]
    if workspace.is_done("export"):
        progress.skipped("export", "resumed from the earlier run")
        return workspace.path("model.tflite").read_bytes(), names, workspace.info("export").get("arena_bytes")
    from edgekit.export.mcu import build_mcu_sources

    with progress.stage("export", "checking TFLM ops, stripping names/metadata, writing C sources") as note:
        # the same memory default as `edgekit export` (no overlap: unverified on CMSIS-NN)
        mcu = build_mcu_sources(tflite, "model", keras_model=student, check_data=data.x_val[:16],
                                memory_plan=memory_opt, memory_overlap=False, share_vectors=memory_opt,
                                ram_regions=profile.ram_regions, profile_name=profile.name)
        memory_notes = [mcu.memory.note() if mcu.memory is not None else "memory optimisation: off "
                        f"(--no-memory-opt): arena {mcu.arena_bytes} bytes as TFLM plans it"]
        memory_notes += [mcu.placement.note()] if mcu.placement is not None else []
        write_bytes(workspace.path("model.tflite"), mcu.tflite_bytes)
        folder = workspace.path("mcu")
        folder.mkdir(exist_ok=True)
        for name, text in mcu.files.items():
            write_text(folder / name, text)
        note.append(f"{len(tflite):,} -> {len(mcu.tflite_bytes):,} bytes; arena {mcu.arena_bytes:,} B "
                    f"(constant {mcu.arena_constant_bytes:,} B with margin)")
        note.extend(memory_notes)
    workspace.record("export", {"arena_bytes": mcu.arena_bytes, "notes": memory_notes})
    return mcu.tflite_bytes, names, mcu.arena_bytes


def _measure(tflite: bytes, profile, arena: int | None, progress: Progress, options=None, heads: int = 1,
             timed: bytes | None = None) -> Measured:
    from edgekit.runners.litert import LiteRTRunner

    phone = None
    if options is not None and options.adb:
        if profile.runtime != "litert":
            raise BadInputError(f"--adb measures on an Android phone; {profile.name} is a {profile.kind} "
                                f"({profile.runtime}) profile")
        from edgekit.runners.adb import AdbRunner

        with progress.stage("measure-phone", "running benchmark_model on the attached phone over adb") as note:
            phone = AdbRunner(binary=options.adb_binary, threads=profile.cpu.threads).run(tflite)
            phone_ms = phone.latency_ms_p50 if phone.latency_ms_p50 is not None else phone.latency_ms_mean
            note.append(f"{phone.device}: {phone_ms:.3f} ms")

    with progress.stage("measure", "timing the exported model in LiteRT on this host") as note:
        if arena is not None:
            note.append(f"TFLM arena {arena:,} B (smallest that runs, bisected)")
        host_ms = None
        if heads == 1:  # the LiteRT timing runner takes one output
            host_ms = LiteRTRunner(threads=1, warmup=5, runs=100).run(timed or tflite).latency_ms_p50
            note.append(f"host p50 {host_ms:.3f} ms")
        else:
            note.append(f"{heads} outputs: host timing skipped (the LiteRT runner times one-output models)")
    ram = arena + profile.cost_model.runtime_overhead_ram_bytes if arena is not None else None
    latency, latency_by = None, None
    if profile.kind == "host" and host_ms is not None:
        latency, latency_by = host_ms, "LiteRT on this host (p50)"
    if phone is not None:
        latency = phone.latency_ms_p50 if phone.latency_ms_p50 is not None else phone.latency_ms_mean
        latency_by = f"adb benchmark_model on {phone.device} ({'p50' if phone.latency_ms_p50 else 'mean'})"
    return Measured(
        flash_bytes=len(tflite), ram_bytes=ram,
        ram_by=("TFLM arena (bisected) + profile runtime overhead" if arena is not None else None),
        latency_ms=latency, latency_by=latency_by, host_latency_ms=host_ms, arena_bytes=arena)


# ------------------------------------------------------------------------------------------------- run


def _load(model_or_path, data_arg, val_arg, options, workspace, progress) -> tuple[Context, str]:
    from edgekit.budgets import resolve_budgets
    from edgekit.model_io import load_keras
    from edgekit.profiles import load_profile
    from edgekit.tasks import detect_task, heads_of, load_metric

    with progress.stage("load", "reading the model, the device profile and the data") as note:
        profile = load_profile(options.device)
        budgets = resolve_budgets(profile, **options.budget_overrides())
        custom = load_metric(options.metric) if options.metric else None
        teacher, loaded = load_keras(model_or_path, trust=options.trust)
        data = load_fit_data(data_arg, val_arg, teacher, options.seed)
        teacher_val = teacher.predict(data.x_val, verbose=0)
        task = detect_task(heads_of(teacher, teacher_val), tuple(data.x_val.shape[1:]), data.y_val, teacher_val,
                           override=options.task, custom=custom)
        teacher_score = task.score(teacher_val, data.y_val, teacher_val, data.x_val)
        note.append(f"{len(data.x_train)} train / {len(data.x_val)} val samples; task {task.name} ({task.why}); "
                    f"teacher {teacher_score.metric} {teacher_score.value:.4f}")
    model_name = str(model_or_path) if loaded is not None else teacher.name
    ctx = Context(teacher, task, data, profile, budgets.as_dict(), options, workspace, progress, teacher_val,
                  teacher_score.value)
    return ctx, model_name


def _round(ctx: Context, step: Step, number: int) -> Round:
    """One attempt: plan at the step's margin, compress, quantise, export, measure; while a measured figure
    breaks a device budget, re-plan with a tighter margin (at most MAX_REPLANS times)."""
    margin = step.margin
    if number > 1:
        for stage in [s for s in ctx.workspace.done if s.startswith("plan@") or s in ROUND_STAGES]:
            ctx.workspace.done.pop(stage, None)
    for replan in range(MAX_REPLANS + 1):
        plan = plan_stage(ctx, margin)
        if step.higher_precision:
            plan = _at_higher_precision(ctx, plan)
        student = _compress(ctx, plan, step.epochs)
        quantized, _float_score, score, q_notes = _quantize(ctx, student, plan)
        tflite, deliverables, arena = _export(quantized, ctx.profile, student, ctx.data, ctx.workspace, ctx.progress,
                                              ctx.options.memory_opt)
        q_notes = [*q_notes, *ctx.workspace.info("export").get("notes", [])]  # memory optimisation applied
        # host timing runs the file before TFLM stripping: LiteRT needs the all-zero biases strip drops
        measured = _measure(tflite, ctx.profile, arena, ctx.progress, ctx.options, len(ctx.task.heads),
                            timed=quantized)
        over = _over_budget(measured, ctx.limits)
        if not over or replan == MAX_REPLANS:
            break
        margin = margin / max(over.values()) * 0.97
        ctx.progress.say(f"measured {', '.join(f'{k} at {100 * v:.0f}% of budget' for k, v in over.items())}: "
                         f"re-planning with margin {100 * margin:.0f}%")
        for stage in ROUND_STAGES:
            ctx.workspace.done.pop(stage, None)
    chosen = plan.chosen
    attempt = Attempt(number, step.reason, chosen.description, chosen.kind, chosen.precision, margin, step.epochs,
                      measured.as_dict(), {k: v for k, v in ctx.limits.items() if v}, score, ctx.teacher_score,
                      ctx.options.max_accuracy_drop, not over, tuple(q_notes))
    keep_round_files(ctx.workspace, number, ROUND_FILES)
    ctx.progress.say(f"attempt {number}: {ctx.task.metric} {score:.4f} vs teacher {ctx.teacher_score:.4f} "
                     f"(drop {attempt.drop:+.4f}, allowed {ctx.options.max_accuracy_drop:g}); "
                     f"{'fits the device' if attempt.fits_device else 'over a device budget'}")
    return Round(attempt, plan, measured, tuple(deliverables), tuple(q_notes))


def _at_higher_precision(ctx: Context, plan):
    """The plan with its network at the next precision (profile order) at which it still fits, if any."""
    from edgekit.planner.search import precision_order

    order = precision_order(ctx.profile)
    chosen = plan.chosen
    rank = order.index(chosen.precision) if chosen.precision in order else len(order)
    same = [c for c in plan.candidates if c.architecture() == chosen.architecture() and c.fits
            and c.precision in order[rank + 1:]]
    if not same:
        raise DoesNotFitError(f"no precision above {chosen.precision} fits the budgets for this network")
    return replace(plan, chosen=min(same, key=lambda c: order.index(c.precision)))


def run(model_or_path, data_arg, val_arg, options, workspace: Workspace, progress: Progress) -> FitResult:
    ctx, model_name = _load(model_or_path, data_arg, val_arg, options, workspace, progress)
    metric = ctx.task.metric
    first = Step("the plan's choice", options.margin, options.epochs)
    rounds: list[Round] = []
    try:
        rounds.append(_round(ctx, first, 1))
    except DoesNotFitError as err:
        return does_not_fit(model_name, ctx.profile, ctx.limits, str(err), None, ctx.teacher_score, workspace,
                            progress, ctx.task)
    if not rounds[0].attempt.ok and rounds[0].attempt.fits_device:
        for step in walk_back_steps(first, options.accuracy_attempts, rounds[0].attempt.kind):
            progress.say(f"accuracy: {metric} dropped {rounds[-1].attempt.drop:.4f} > "
                         f"{options.max_accuracy_drop:g}: walking back: {step.reason}")
            try:
                rounds.append(_round(ctx, step, len(rounds) + 1))
            except DoesNotFitError as err:
                progress.say(f"walk-back stopped: {err}")
                break
            if rounds[-1].attempt.ok:
                break
    good = [r for r in rounds if r.attempt.ok]
    if not good:
        attempts = [r.attempt for r in rounds]
        fitting = [r for r in rounds if r.attempt.fits_device]
        closest = max(fitting, key=lambda r: r.attempt.score) if fitting else rounds[-1]
        message = (accuracy_message(attempts, metric) if fitting else
                   f"measured {', '.join(k for k, v in _over_budget(closest.measured, ctx.limits).items())} over "
                   f"budget after {MAX_REPLANS} re-plans")
        return does_not_fit(model_name, ctx.profile, ctx.limits, message,
                            (closest.plan, closest.measured, closest.attempt.score), ctx.teacher_score, workspace,
                            progress, ctx.task, attempts, binding="accuracy" if fitting else None)
    chosen = good[-1]
    step = headroom_step(chosen.attempt) if options.reclaim_headroom else None
    if step is not None:
        progress.say(f"{step.reason}: one more round to use it")
        try:
            rounds.append(_round(ctx, step, len(rounds) + 1))
            better = rounds[-1].attempt.ok and rounds[-1].attempt.score > chosen.attempt.score
            chosen = rounds[-1] if better else chosen
        except DoesNotFitError as err:
            progress.say(f"headroom round found nothing that fits ({err}); keeping attempt {chosen.attempt.number}")
    restore_round_files(workspace, chosen.attempt.number, ROUND_FILES)
    return _deliver(ctx, model_name, chosen, rounds)


def _deliver(ctx: Context, model_name: str, chosen: Round, rounds: list[Round]) -> FitResult:
    from edgekit.workflows.fit.explain import explain

    workspace, plan = ctx.workspace, chosen.plan
    attempts = [r.attempt for r in rounds]
    result = build_result(model_name, ctx.profile, plan, chosen.measured, ctx.teacher_score, chosen.attempt.score,
                          ctx.limits, ctx.progress, "already_fits" if plan.chosen.kind == "original" else "fits",
                          (*plan.explanation, *chosen.notes), ctx.task.metric)
    names = (*chosen.deliverables, "model.h5", *REPORTS)
    result = replace(result, artifacts={n: str(workspace.out_dir / n) for n in names}, task=ctx.task.name,
                     max_accuracy_drop=ctx.options.max_accuracy_drop,
                     explanation=explain(chosen.attempt, attempts, ctx.task, ctx.profile.name),
                     attempts=summaries(attempts, chosen.attempt.number))
    result = replace(result, **layer_report(ctx, workspace, result.budgets))  # per-layer precisions, error table
    write_reports(result, workspace)
    workspace.publish(list(dict.fromkeys(names)))
    workspace.discard()
    return result


def _over_budget(measured: Measured, limits: dict) -> dict[str, float]:
    """budget -> measured/limit for every measured figure above its limit."""
    out = {}
    for key, value in (("flash_bytes", measured.flash_bytes), ("ram_bytes", measured.ram_bytes),
                       ("latency_ms", measured.latency_ms)):
        limit = limits.get(key)
        if value is not None and limit and value > limit:
            out[key] = value / limit
    return out
