"""The stages of a fit, each resumable: its outputs live in the workspace and it records itself when done."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import numpy as np

from edgekit.errors import BadInputError, DoesNotFitError
from edgekit.workflows.fit.progress import Progress
from edgekit.workflows.fit.report import (
    BudgetLine,
    CandidateSummary,
    FitResult,
    LayerChannels,
    to_html,
    to_markdown,
)
from edgekit.workflows.fit.workspace import Workspace, write_bytes, write_text

REPORTS = ("report.json", "report.md", "report.html", "plan.json")
CALIBRATION_SAMPLES = 300
MAX_REPLANS = 3


class FitDoesNotFitError(DoesNotFitError):
    """Nothing reachable fits; `result` is the report of the closest result (written to the output)."""

    def __init__(self, message: str, result: FitResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class Data:
    x_train: np.ndarray
    y_train: np.ndarray | None
    x_val: np.ndarray
    y_val: np.ndarray | None


@dataclass(frozen=True)
class Measured:
    flash_bytes: int
    ram_bytes: int | None
    ram_by: str | None
    latency_ms: float | None
    latency_by: str | None
    host_latency_ms: float | None
    arena_bytes: int | None


# ------------------------------------------------------------------------------------------------ data


def load_fit_data(data, val, model, seed: int) -> Data:
    from edgekit.data import as_dataset, split

    train = as_dataset(data, model.input_shape, "data")
    if len(train.x) < 10:
        raise BadInputError(f"{getattr(train, 'source', 'data')}: only {len(train.x)} samples; fit needs at least "
                            "a few hundred to calibrate and retrain")
    if val is not None:
        held = as_dataset(val, model.input_shape, "val")
    else:
        train, held = split(train, seed=seed)
    return Data(train.x, train.y, held.x, held.y)


def metric(outputs: np.ndarray, labels: np.ndarray | None, teacher_outputs: np.ndarray) -> float:
    """Top-1 accuracy against labels, or top-1 agreement with the teacher when there are none."""
    reference = labels if labels is not None else np.argmax(teacher_outputs, axis=-1)
    reference = np.asarray(reference).reshape(-1)
    if reference.ndim == 1 and outputs.ndim > 1 and outputs.shape[-1] > 1:
        return float(np.mean(np.argmax(outputs, axis=-1) == reference))
    raise BadInputError("edgekit fit currently scores classifiers (one output with a class axis); this model's "
                        f"output has shape {outputs.shape[1:]}: use edgekit plan / prune / distill directly")


# ----------------------------------------------------------------------------------------------- stages


def _plan(model, data: Data, options, workspace: Workspace, progress: Progress, margin: float):
    from edgekit.planner.plan_json import read_plan
    from edgekit.workflows.plan import plan

    path = workspace.path("plan.json")
    stage = f"plan@{margin:.3f}"
    if workspace.is_done(stage):
        progress.skipped("plan", "resumed from the earlier run")
        return read_plan(path)
    with progress.stage("plan", f"searching precision x channels x students for {options.device} "
                                f"(plan to {100 * margin:.0f}% of each budget)") as note:
        result = plan(model, options.device, data=(data.x_train, data.y_train), val_data=(data.x_val, data.y_val),
                      margin=margin, accuracy_tolerance=options.max_accuracy_drop,
                      evaluate=options.evaluate_candidates, epochs=options.plan_epochs,
                      batch_size=options.batch_size, seed=options.seed, progress=progress.say,
                      **options.budget_overrides())
        write_text(path, json.dumps(result.to_dict(), indent=2))
        note.append(f"chose {result.chosen.kind}: {result.chosen.description} at {result.chosen.precision}")
    workspace.record(stage)
    return result


def _compress(teacher, plan, data: Data, options, workspace: Workspace, progress: Progress):
    from edgekit.model_io import load_model, save_model

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
    from edgekit.ir.from_keras import from_keras
    from edgekit.planner.evaluate import realize

    with progress.stage("compress", f"building {chosen.kind} candidate, then distilling from the original "
                                    f"({options.epochs} epochs max)") as note:
        student = realize(teacher, build_groups(from_keras(teacher)), chosen)
        result = distill(teacher, student, data.x_train, data.y_train, data.x_val, data.y_val,
                         epochs=options.epochs, batch_size=options.batch_size, seed=options.seed,
                         patience=options.epochs, verbose=progress.keras_verbose)
        # patience = epochs: the cosine schedule decays over every epoch and the best epoch is restored anyway
        student = result.student
        save_model(student, path)
        note.append(f"best epoch {result.best_epoch} of {result.epochs_run}")
    workspace.record("compress")
    return student


def _quantize(teacher, student, plan, profile, data: Data, options, workspace: Workspace, progress: Progress,
              teacher_val_outputs: np.ndarray) -> tuple[bytes, float, float, list[str]]:
    """Post-training quantisation at the plan's precision; QAT when int8 loses more than the tolerance."""
    from edgekit.export.tflite import convert
    from edgekit.runners.litert import predict

    path = workspace.path("model.tflite")
    if workspace.is_done("quantize"):
        progress.skipped("quantize", "resumed from the earlier run")
        info = workspace.info("quantize")
        return path.read_bytes(), info["float_accuracy"], info["accuracy"], info["notes"]
    precision = plan.chosen.precision
    notes: list[str] = []
    with progress.stage("quantize", f"converting to {precision} TFLite, calibrated on the training data") as note:
        calibration = data.x_train[:CALIBRATION_SAMPLES]
        float_acc = metric(student.predict(data.x_val, verbose=0), data.y_val, teacher_val_outputs)
        # MCU firmware feeds int8 tensors: int8 input/output there (as `edgekit export` does), which also
        # keeps the float copies of input and output out of the TFLM arena
        int8_io = profile.runtime == "tflm" and precision == "int8"
        tflite = convert(student, precision, representative_data=calibration, int8_io=int8_io).tflite_bytes
        acc = metric(predict(tflite, data.x_val), data.y_val, teacher_val_outputs)
        note.append(f"{precision}: accuracy {acc:.4f} (float {float_acc:.4f})")
        if precision == "int8" and float_acc - acc > options.max_accuracy_drop:
            qat = _qat(student, data, options, progress)
            if qat is not None:
                qat_bytes = convert(qat, "int8", representative_data=calibration, int8_io=int8_io).tflite_bytes
                qat_acc = metric(predict(qat_bytes, data.x_val), data.y_val, teacher_val_outputs)
                notes.append(f"post-training int8 lost {100 * (float_acc - acc):.2f} points; quantisation-aware "
                             f"training gave {qat_acc:.4f}")
                if qat_acc > acc:
                    tflite, acc = qat_bytes, qat_acc
        write_bytes(path, tflite)
    workspace.record("quantize", {"float_accuracy": float_acc, "accuracy": acc, "notes": notes})
    return tflite, float_acc, acc, notes


def _qat(student, data: Data, options, progress: Progress):
    from edgekit.errors import UnsupportedModelError
    from edgekit.export.qat import quantize_aware

    progress.say("quantize: int8 lost more than the tolerance: quantisation-aware fine-tuning")
    try:
        return quantize_aware(student, data.x_train, data.y_train, epochs=max(2, options.epochs // 5),
                              batch_size=options.batch_size, seed=options.seed).model
    except UnsupportedModelError as err:
        progress.say(f"quantize: QAT not possible ({err}); keeping post-training int8")
        return None


def _export(tflite: bytes, profile, student, data: Data, workspace: Workspace,
            progress: Progress) -> tuple[bytes, list[str], int | None]:
    """MCU profiles: check ops, strip what TFLM does not need, measure the arena, write the C sources."""
    if profile.runtime != "tflm":
        return tflite, ["model.tflite"], None
    names = ["model.tflite", "mcu"]
    if workspace.is_done("export"):
        progress.skipped("export", "resumed from the earlier run")
        return workspace.path("model.tflite").read_bytes(), names, workspace.info("export").get("arena_bytes")
    from edgekit.export.mcu import build_mcu_sources

    with progress.stage("export", "checking TFLM ops, stripping names/metadata, writing C sources") as note:
        mcu = build_mcu_sources(tflite, "model", keras_model=student, check_data=data.x_val[:16])
        write_bytes(workspace.path("model.tflite"), mcu.tflite_bytes)
        folder = workspace.path("mcu")
        folder.mkdir(exist_ok=True)
        for name, text in mcu.files.items():
            write_text(folder / name, text)
        note.append(f"{len(tflite):,} -> {len(mcu.tflite_bytes):,} bytes; arena {mcu.arena_bytes:,} B "
                    f"(constant {mcu.arena_constant_bytes:,} B with margin)")
    workspace.record("export", {"arena_bytes": mcu.arena_bytes})
    return mcu.tflite_bytes, names, mcu.arena_bytes


def _measure(tflite: bytes, profile, arena: int | None, progress: Progress, options=None) -> Measured:
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
        host = LiteRTRunner(threads=1, warmup=5, runs=100).run(tflite)
        note.append(f"host p50 {host.latency_ms_p50:.3f} ms")
    ram = arena + profile.cost_model.runtime_overhead_ram_bytes if arena is not None else None
    latency, latency_by = None, None
    if profile.kind == "host":
        latency, latency_by = host.latency_ms_p50, "LiteRT on this host (p50)"
    if phone is not None:
        latency = phone.latency_ms_p50 if phone.latency_ms_p50 is not None else phone.latency_ms_mean
        latency_by = f"adb benchmark_model on {phone.device} ({'p50' if phone.latency_ms_p50 else 'mean'})"
    return Measured(
        flash_bytes=len(tflite), ram_bytes=ram,
        ram_by=("TFLM arena (bisected) + profile runtime overhead" if arena is not None else None),
        latency_ms=latency, latency_by=latency_by, host_latency_ms=host.latency_ms_p50, arena_bytes=arena)


# ------------------------------------------------------------------------------------------------- run


def run(model_or_path, data_arg, val_arg, options, workspace: Workspace, progress: Progress) -> FitResult:
    from edgekit.budgets import resolve_budgets
    from edgekit.model_io import load_keras
    from edgekit.profiles import load_profile

    with progress.stage("load", "reading the model, the device profile and the data") as note:
        profile = load_profile(options.device)
        budgets = resolve_budgets(profile, **options.budget_overrides())
        teacher, loaded = load_keras(model_or_path, trust=options.trust)
        data = load_fit_data(data_arg, val_arg, teacher, options.seed)
        teacher_val = teacher.predict(data.x_val, verbose=0)
        teacher_acc = metric(teacher_val, data.y_val, teacher_val)
        note.append(f"{len(data.x_train)} train / {len(data.x_val)} val samples; teacher accuracy {teacher_acc:.4f}")
    model_name = str(model_or_path) if loaded is not None else teacher.name
    limits = budgets.as_dict()
    margin = options.margin
    last = None
    for round_ in range(MAX_REPLANS + 1):
        try:
            plan = _plan(teacher, data, options, workspace, progress, margin)
        except DoesNotFitError as err:
            return _does_not_fit(model_name, profile, limits, str(err), last, teacher_acc, workspace, progress)
        student = _compress(teacher, plan, data, options, workspace, progress)
        tflite, _float_acc, acc, q_notes = _quantize(teacher, student, plan, profile, data, options, workspace, progress,
                                                    teacher_val)
        tflite, deliverables, arena = _export(tflite, profile, student, data, workspace, progress)
        measured = _measure(tflite, profile, arena, progress, options)
        last = (plan, measured, acc)
        over = _over_budget(measured, limits)
        if not over:
            break
        worst = max(over.values())
        if round_ == MAX_REPLANS:
            return _does_not_fit(model_name, profile, limits,
                                 f"measured {', '.join(over)} over budget after {MAX_REPLANS} re-plans", last,
                                 teacher_acc, workspace, progress)
        margin = margin / worst * 0.97
        progress.say(f"measured {', '.join(f'{k} at {100 * v:.0f}% of budget' for k, v in over.items())}: "
                     f"re-planning with margin {100 * margin:.0f}%")
        for stage in ("compress", "quantize", "export"):
            workspace.done.pop(stage, None)
    plan, measured, acc = last
    result = _result(model_name, profile, plan, measured, teacher_acc, acc, limits, progress,
                     status="already_fits" if plan.chosen.kind == "original" else "fits",
                     notes=(*plan.explanation, *q_notes))
    result = replace(result, artifacts={n: str(workspace.out_dir / n) for n in (*deliverables, "model.h5", *REPORTS)})
    _write_reports(result, workspace)
    workspace.publish([*deliverables, "model.h5", *REPORTS])
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


def _channels(plan) -> tuple[LayerChannels, ...]:
    return tuple(LayerChannels(w.name, w.channels_before, w.channels_after) for w in plan.chosen.layers
                 if w.channels_before is not None)


def _result(model_name, profile, plan, measured: Measured | None, teacher_acc, acc, limits, progress, status,
            notes) -> FitResult:
    predicted = dict(plan.chosen.predicted)
    m = {"flash_bytes": (measured.flash_bytes, "exported .tflite size") if measured else (None, None),
         "ram_bytes": (measured.ram_bytes, measured.ram_by) if measured else (None, None),
         "latency_ms": (measured.latency_ms, measured.latency_by) if measured else (None, None),
         "energy_mj": (None, None)}
    lines = tuple(BudgetLine(k, limits.get(k), predicted.get(k), measured=m[k][0], measured_by=m[k][1]) for k in limits)
    candidates = tuple(CandidateSummary(c.label if hasattr(c, "label") else c.description, c.kind, c.precision,
                                        dict(c.predicted), c.fits, c.accuracy, c == plan.chosen)
                       for c in plan.candidates)
    extra = []
    if measured is not None and measured.host_latency_ms is not None and profile.kind != "host":
        extra.append(f"host LiteRT latency {measured.host_latency_ms:.3f} ms (this x86 machine, not the "
                     f"{profile.name}); device latency and energy are the cost model's predictions")
    return FitResult(model_path=model_name, device=profile.name, runtime=profile.runtime, status=status,
                     precision=plan.chosen.precision, budgets=lines, teacher_accuracy=teacher_acc,
                     final_accuracy=acc, candidates=candidates, channels=_channels(plan),
                     stages=tuple(progress.timings), notes=(*extra, *notes), binding_budget=plan.binding_budget)


def _write_reports(result: FitResult, workspace: Workspace) -> None:
    write_text(workspace.path("report.json"), json.dumps(result.to_dict(), indent=2, default=str))
    write_text(workspace.path("report.md"), to_markdown(result))
    write_text(workspace.path("report.html"), to_html(result))


def _does_not_fit(model_name, profile, limits, message, last, teacher_acc, workspace: Workspace,
                  progress: Progress) -> FitResult:
    """Exit 3: reports of the closest result, no model file in the output."""
    progress.say(f"does not fit: {message}")
    budgets = tuple(BudgetLine(k, v, None) for k, v in limits.items())
    result = FitResult(model_path=model_name, device=profile.name, runtime=profile.runtime, status="does_not_fit",
                       precision=profile.precision_preferred, budgets=budgets, teacher_accuracy=teacher_acc,
                       final_accuracy=None, stages=tuple(progress.timings), notes=(message,))
    if last is not None:
        plan, measured, acc = last
        result = _result(model_name, profile, plan, measured, teacher_acc, acc, limits, progress, "does_not_fit",
                         (message, *plan.explanation))
    reports = ["report.json", "report.md", "report.html"]
    _write_reports(result, workspace)
    workspace.publish(reports)
    workspace.discard()
    raise FitDoesNotFitError(message, result)
