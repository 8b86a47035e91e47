"""`edgekit fit`: the whole job, closed-loop against measurements.

load -> analyze -> plan -> compress (prune or student, then distil from the original) -> quantize
(post-training; QAT when the accuracy drop exceeds the tolerance) -> export -> measure on the profile's
runner -> if a measured figure breaks a budget, tighten the margin and re-plan (bounded) -> report.

    >>> from edgekit.workflows.fit import fit
    >>> result = fit("teacher.h5", device="stm32l4r5", data="train.npz", max_flash="32KB")   # doctest: +SKIP
    >>> result.fits, result.final_accuracy                                                    # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import BadInputError, DoesNotFitError
from edgekit.workflows.fit.progress import Progress
from edgekit.workflows.fit.report import FitResult
from edgekit.workflows.fit.workspace import Workspace, check_output_dir, fingerprint, work_dir_of

DEFAULT_EPOCHS = 30
NO_DATA_MESSAGE = (
    "edgekit fit needs data (--data train.npz with `x` and optional `y`, a .npy, or an image folder): "
    "a few hundred to a few thousand samples of the model's real input. It calibrates int8 quantisation "
    "and retrains the compressed model against the original (distillation); labels are optional")


@dataclass(frozen=True)
class FitOptions:
    device: str
    out_dir: str
    epochs: int = DEFAULT_EPOCHS
    max_accuracy_drop: float = 0.01
    seed: int = 0
    margin: float = 0.9
    evaluate_candidates: int = 2
    plan_epochs: int = 2
    batch_size: int = 64
    trust: bool = False
    resume: bool = False
    quiet: bool = False
    adb: bool = False                 # measure latency on an attached Android phone (phone profiles)
    adb_binary: str | None = None     # a local benchmark_model to push; None: one already on the phone
    max_flash: str | int | None = None
    max_ram: str | int | None = None
    max_latency_ms: str | float | None = None
    max_energy_mj: str | float | None = None
    task: str | None = None           # edgekit.tasks.TASK_NAMES; None: detected from the model and data
    metric: str | None = None         # "module:function": the user's own metric (trusted code)
    accuracy_attempts: int = 2        # walk-back rounds when the accuracy budget is exceeded
    reclaim_headroom: bool = True     # one more round planning upward when >10% of the binding budget is unused
    memory_opt: bool = True           # TFLM: edgekit's memory optimisation in the plan's RAM and the export
    augment: str | None = None        # distillation augmentation (edgekit.distill.augment); None: the recipe's

    def budget_overrides(self) -> dict:
        return {k: getattr(self, k) for k in ("max_flash", "max_ram", "max_latency_ms", "max_energy_mj")}

    def fingerprint_options(self) -> dict:
        skip = {"out_dir", "resume", "quiet", "adb", "adb_binary"}
        return {k: v for k, v in vars(self).items() if k not in skip}


def fit(model_or_path, device: str, data=None, *, val=None, out_dir: str | os.PathLike = "edgekit-out",
        epochs: int = DEFAULT_EPOCHS, max_accuracy_drop: float = 0.01, seed: int = 0, trust: bool = False,
        resume: bool = False, quiet: bool = False, adb: bool = False, adb_binary: str | None = None,
        force: bool = False, task: str | None = None, metric: str | None = None, accuracy_attempts: int = 2,
        reclaim_headroom: bool = True, memory_opt: bool = True, augment: str | None = None, **budgets) -> FitResult:
    """Make a model fit a device; writes the deliverables into `out_dir` and returns the FitResult.

    Args:
        model_or_path: a model file (.h5, .keras, SavedModel dir) or a tf_keras model.
        device: a profile name (`edgekit devices`) or a profile YAML path.
        data: training data (.npz with x and optional y, .npy, image folder, or (x, y) arrays). Required.
        val: validation data; default: 10% of `data`, stratified.
        adb: measure latency on an attached Android phone over adb (benchmark_model; adb_binary to push one).
        budgets: max_flash, max_ram, max_latency_ms, max_energy_mj overriding the profile's defaults.
        force: publish into an existing folder edgekit did not write, replacing only edgekit's own files.
        task: classify, multilabel, regress, anomaly, segment, detect or custom (edgekit.tasks); default:
            detected from the model's outputs and the data. The task's metric scores every model, and
            `max_accuracy_drop` is the allowed drop in it against the original model (an accuracy budget).
        metric: "module:function" or "file.py:function" taking (outputs, y, teacher_outputs) and returning a
            number, higher is better. It is the user's code and runs as such (loaded only when named here).
        accuracy_attempts: bounded walk-back rounds (longer distillation, then a milder cut) when a model fits
            the device but loses more than `max_accuracy_drop`.
        reclaim_headroom: when the delivered model leaves >10% of its binding budget unused, one round plans
            upward; the larger model is kept only when it scores better.
        memory_opt: TFLM devices: the planner predicts the arena with edgekit's memory optimisation and the export
            applies it where TFLM proves it (shared vectors, operator order, offline plan); False: neither.
        augment: distillation augmentation, 'auto', 'none', 'signal', 'image' or 'spectrogram'; None: the
            recipe's default (edgekit.distill.recipe: 'auto' from 60 epochs on, else 'none'), the teacher
            labelling each augmented batch.
    Raises:
        BadInputError (exit 2) for unusable input, DoesNotFitError (exit 3) when nothing reachable fits; in
        that case `out_dir` holds the reports of the closest result and no model file.
    """
    from edgekit.workflows.fit.pipeline import run

    options = FitOptions(device=device, out_dir=str(out_dir), epochs=epochs, max_accuracy_drop=max_accuracy_drop,
                         seed=seed, trust=trust, resume=resume, quiet=quiet, adb=adb, adb_binary=adb_binary,
                         task=task, metric=metric, accuracy_attempts=accuracy_attempts,
                         reclaim_headroom=reclaim_headroom, memory_opt=memory_opt, augment=augment, **budgets)
    if max_accuracy_drop < 0 or (metric is None and max_accuracy_drop > 1):
        raise BadInputError(f"--max-accuracy-drop {max_accuracy_drop:g}: must be between 0 and 1 (0.01 = one point "
                            "of the task's metric)")
    if accuracy_attempts < 0:
        raise BadInputError(f"accuracy_attempts must be >= 0, got {accuracy_attempts}")
    from edgekit.tasks import TASK_NAMES

    if task is not None and task not in TASK_NAMES:
        raise BadInputError(f"--task {task!r}: unknown; use one of {', '.join(TASK_NAMES)}")
    if data is None:
        raise BadInputError(NO_DATA_MESSAGE)
    inputs = [model_or_path if isinstance(model_or_path, (str, os.PathLike)) else None,
              data if isinstance(data, (str, os.PathLike)) else None,
              val if isinstance(val, (str, os.PathLike)) else None]
    if isinstance(device, (str, os.PathLike)) and os.path.lexists(device):
        inputs.append(device)  # a profile inside --out must survive the publish
    from edgekit.distill.strategy import chief_output
    from edgekit.model_io.outdir import OutputLock, make_parent, recover_output

    make_parent(out_dir)
    # One run per output: the locks of <out> and <out>.partial are held until the result is published.
    # A non-chief worker of a multi-worker run fits into a private temporary folder instead of <out>.
    with (chief_output(out_dir) as target, OutputLock(target),
          OutputLock(work_dir_of(target), what="--out work folder")):
        recover_output(Path(os.path.abspath(target)))
        out = check_output_dir(target, inputs, force=force)
        progress = Progress(quiet=quiet)
        key = fingerprint([p for p in inputs if p is not None and Path(p).exists()],
                          options.fingerprint_options())
        workspace = Workspace(out, key, resume, force=force)
        if workspace.resumed:
            progress.say(f"resuming: stages already done: {', '.join(workspace.done)}")
        elif resume:
            progress.say("nothing to resume (no earlier run with the same inputs and options): starting afresh")
        return run(model_or_path, data, val, options, workspace, progress)


__all__ = ["DoesNotFitError", "FitOptions", "FitResult", "fit"]
