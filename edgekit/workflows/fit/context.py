"""What every round of a fit shares: the data, the task, the teacher's outputs and score, the options."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import numpy as np

from edgekit.errors import BadInputError
from edgekit.workflows.fit.attempts import Attempt
from edgekit.workflows.fit.progress import Progress
from edgekit.workflows.fit.workspace import Workspace


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

    def as_dict(self) -> dict:
        return {"flash_bytes": self.flash_bytes, "ram_bytes": self.ram_bytes, "latency_ms": self.latency_ms,
                "energy_mj": None}


@dataclass
class Context:
    """What every round of one fit shares."""

    teacher: object
    task: object
    data: Data
    profile: object
    limits: dict
    options: object
    workspace: Workspace
    progress: Progress
    teacher_val: object
    teacher_score: float


@dataclass(frozen=True)
class Round:
    attempt: Attempt
    plan: object
    measured: Measured
    deliverables: tuple[str, ...]
    notes: tuple[str, ...]


# ------------------------------------------------------------------------------------------------ data


def load_fit_data(data, val, model, seed: int) -> Data:
    from edgekit.data import as_dataset, split

    train = as_dataset(data, model.input_shape, "data")
    if len(train.x) < 10:
        raise BadInputError(f"{getattr(train, 'source', 'data')}: only {len(train.x)} samples; fit needs at least "
                            "a few hundred to calibrate and retrain")
    if val is not None:
        held = as_dataset(val, model.input_shape, "val")
        truth = _detection_truth(val, len(held.x), model)
    else:
        truth = _detection_truth(data, len(train.x), model)
        if truth is not None:  # the same split as below (it depends on n, y and seed only): the rows of x held out
            truth = truth.subset(split(dataclasses.replace(train, x=np.arange(len(train.x))), seed=seed)[1].x)
        train, held = split(train, seed=seed)
    return Data(train.x, train.y, held.x, held.y if truth is None else truth)


def _detection_truth(source, n: int, model):
    """DetectionLabels from an .npz's gt_boxes/gt_labels (the documented detect layout) for a multi-output model;
    None when the file has none (the validation y is then used as before)."""
    from edgekit.data import read_npz_arrays
    from edgekit.tasks.detection import GT_KEYS, detection_labels

    if not isinstance(source, (str, os.PathLike)) or len(getattr(model, "outputs", None) or ()) < 2:
        return None
    arrays = read_npz_arrays(source, GT_KEYS)
    if not arrays:
        return None
    missing = [k for k in GT_KEYS if k not in arrays]
    if missing:
        raise BadInputError(f"{os.fspath(source)}: has {', '.join(arrays)} but no {missing[0]}; detection mAP "
                            "needs both gt_boxes (N, M, 4) and gt_labels (N, M), -1 for padding")
    return detection_labels(arrays["gt_boxes"], arrays["gt_labels"], os.fspath(source), n)


def score_outputs(ctx: Context, outputs) -> float:
    return ctx.task.score(outputs, ctx.data.y_val, ctx.teacher_val, ctx.data.x_val).value


def plan_labels(ctx: Context, y):
    """Labels the planner's short fine-tunes may use (they score class labels or regression targets only)."""
    return y if ctx.task.name in ("classify", "regress") else None


def predict_outputs(ctx: Context, tflite: bytes, x):
    """The exported model's float outputs on x: an array, or a list in the Keras output order (several heads)."""
    from edgekit.runners.litert import predict, predict_named

    if len(ctx.task.heads) == 1:
        return predict(tflite, x)
    named = predict_named(tflite, [x])
    by_name = [named.get(h.name) for h in ctx.task.heads]
    return by_name if all(o is not None for o in by_name) else list(named.values())


def train_heads(ctx: Context, teacher, student, epochs: int, verbose: int = 0):
    """Multi-output distillation (edgekit.distill.heads): KL for class heads, L1 for box heads."""
    from edgekit.distill.heads import distill_heads

    return distill_heads(teacher, student, ctx.data.x_train, ctx.data.x_val, ctx.task.head_kinds,
                         probabilities=[h.activation == "softmax" for h in ctx.task.heads], epochs=epochs,
                         batch_size=ctx.options.batch_size, seed=ctx.options.seed, verbose=verbose)
