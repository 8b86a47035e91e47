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

# The held-out samples a streamed fit keeps in memory (scoring candidates, the teacher, the int8 model).
VAL_SAMPLE_BYTES = 32 << 20


@dataclass(frozen=True)
class Data:
    """Arrays every stage may read. With streamed data (edgekit.data.stream) x_train / y_train are a bounded
    sample of the training part (planning, calibration, QAT), x_val / y_val a bounded sample of the held-out
    part, and `train_stream` the whole training part, which only the final distillation reads (streamed)."""

    x_train: np.ndarray
    y_train: np.ndarray | None
    x_val: np.ndarray
    y_val: np.ndarray | None
    train_stream: object | None = None


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
    from edgekit.data import as_dataset, open_data, split
    from edgekit.data.stream import StreamSource

    train = open_data(data, model.input_shape, "data")
    if isinstance(train, StreamSource):
        return _streamed_fit_data(train, val, model, seed)
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


def _streamed_fit_data(train, val, model, seed: int) -> Data:
    """Data for a streamed training source: nothing is loaded whole (see Data)."""
    from edgekit.data import open_data
    from edgekit.data.stream import StreamSource

    if train.num_samples < 10:
        raise BadInputError(f"{train.source}: only {train.num_samples} samples; fit needs at least a few hundred to "
                            "calibrate and retrain")
    if val is None:
        train, held = train.split(seed=seed)
    else:
        held = open_data(val, model.input_shape, "val")
    held = held.sample(VAL_SAMPLE_BYTES) if isinstance(held, StreamSource) else held
    sample = train.sample()
    return Data(sample.x, sample.y, held.x, held.y, train_stream=train)


def training_input(ctx: Context) -> tuple:
    """(x, y) the final distillation trains on: the whole streamed training part, its teacher logits cached
    in the work folder (edgekit.distill.teacher_cache), or the training arrays."""
    data, labels = ctx.data, ctx.task.training_labels
    if data.train_stream is None:
        return data.x_train, labels(data.y_train)
    stream = data.train_stream.with_cache_dir(ctx.workspace.path("teacher_logits"))
    return (stream if labels(data.y_train) is not None else stream.without_labels()), None


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
