"""What a model does (its task), found from its outputs and the data, and how it is scored (pure).

A `Task` scores model outputs with one number where higher is better (top-1, AUC, R^2, mean IoU ...),
so the accuracy budget is the same check for every task: teacher score - student score <= the allowed drop.

    >>> import numpy as np
    >>> task = detect_task((Head("out", (10,), "softmax"),), input_shape=(40, 1))
    >>> task.name, task.metric
    ('classify', 'top-1 accuracy')
    >>> s = task.score(np.eye(10)[[1, 2]], np.array([1, 3]), np.eye(10)[[1, 2]], None)
    >>> s.value
    0.5
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

import edgekit.tasks.metrics as m
from edgekit.errors import BadInputError
from edgekit.tasks.detection import DetectionLabels, detection_map, split_heads

TASK_NAMES = ("classify", "multilabel", "regress", "anomaly", "segment", "detect", "custom")
METRIC_NAMES = {
    "classify": "top-1 accuracy", "multilabel": "mean ROC AUC", "regress": "R^2 (1 - relative squared error)",
    "anomaly": "anomaly AUC", "segment": "mean IoU", "detect": "worst-head fidelity to the teacher",
    "custom": "custom metric",
}


@dataclass(frozen=True)
class Head:
    """One model output: its name, shape without the batch axis, and final activation when known."""

    name: str
    shape: tuple
    activation: str | None = None

    @property
    def classes(self) -> int:
        return int(self.shape[-1]) if self.shape and self.shape[-1] is not None else 1

    @property
    def is_class_head(self) -> bool:
        return self.activation == "softmax" or (self.activation in (None, "linear") and len(self.shape) == 1
                                                 and self.classes > 4)


@dataclass(frozen=True)
class Score:
    """value: the budgeted metric (higher is better); details: other figures worth reporting."""

    value: float
    metric: str
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    name: str
    heads: tuple[Head, ...]
    why: str = ""
    custom: Callable | None = None
    metric_name: str | None = None  # overrides METRIC_NAMES (detect scored by mAP@0.5)

    @property
    def metric(self) -> str:
        if self.metric_name:
            return self.metric_name
        return METRIC_NAMES[self.name] if self.custom is None else f"custom metric {_callable_name(self.custom)}"

    @property
    def distill_task(self) -> str:
        """The single-output loss family `edgekit.distill` trains with (multi-output models: per head)."""
        if self.name in ("classify", "segment"):
            return "classification"
        if self.name == "multilabel":
            return "binary"
        if self.name == "custom" and len(self.heads) == 1 and self.heads[0].is_class_head:
            return "classification"
        return "regression"

    @property
    def head_kinds(self) -> tuple[str, ...]:
        """Per output, the loss family of multi-output distillation: "class" (KL) or "box" (L1)."""
        return tuple("class" if h.is_class_head and h.classes > 1 else "box" for h in self.heads)

    def training_labels(self, y):
        """The labels distillation and fine-tuning may train on (anomaly flags, pixel maps and the labels of
        multi-output models are not targets for them: those learn from the teacher's outputs alone)."""
        if y is None or self.name not in ("classify", "multilabel", "regress"):
            return None
        return y

    def score(self, outputs, y, teacher_outputs, x) -> Score:
        """Score `outputs` against labels y (or the teacher's outputs when y is None or not usable)."""
        if isinstance(y, DetectionLabels) and self.name != "detect":
            y = None  # boxes and labels score detection models only
        if self.custom is not None:
            return _custom_score(self.custom, outputs, y, teacher_outputs, self.metric)
        return _SCORERS[self.name](self, outputs, y, teacher_outputs, x)


# ------------------------------------------------------------------------------------------ scorers


def _class_labels(y, shape: tuple, classes: int) -> np.ndarray | None:
    """Class indices shaped `shape` (N, ...) from ints or one-hot rows; None when y is not class labels."""
    if y is None:
        return None
    y = np.asarray(y)
    if y.shape == shape + (classes,) and classes > 1 and np.all((y == 0) | (y == 1)):
        return np.argmax(y, axis=-1)
    if y.size == int(np.prod(shape)) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        c = y.reshape(shape).astype(np.int64)
        return c if c.min() >= 0 and c.max() < classes else None
    return None


def _classify(task, out, y, t_out, x) -> Score:
    out = np.asarray(out)
    labels = _class_labels(y, (len(out),), out.shape[-1])
    details = {"agreement": m.top1(out, np.argmax(t_out, axis=-1))}
    if labels is None:
        return Score(details["agreement"], "top-1 agreement with the teacher", details)
    return Score(m.top1(out, labels), "top-1 accuracy", details)


def _multilabel(task, out, y, t_out, x) -> Score:
    threshold = 0.5 if task.heads[0].activation == "sigmoid" else 0.0
    out = np.asarray(out).reshape(len(out), -1)
    labels = None if y is None else np.asarray(y)
    if labels is None or labels.size != out.size or not np.all((labels == 0) | (labels == 1)):
        reference, metric = np.asarray(t_out).reshape(out.shape) > threshold, "mean ROC AUC against the teacher"
    else:
        reference, metric = labels.reshape(out.shape), "mean ROC AUC"
    auc = m.multilabel_auc(out, reference)
    return Score(auc if not np.isnan(auc) else m.multilabel_f1(out > threshold, reference), metric,
                 {"f1": m.multilabel_f1(out > threshold, reference)})


def _regress(task, out, y, t_out, x) -> Score:
    out = np.asarray(out)
    usable = y is not None and np.asarray(y).size == out.size
    target = np.asarray(y, np.float64).reshape(out.shape) if usable else np.asarray(t_out)
    metric = "R^2" if usable else "R^2 against the teacher"
    return Score(m.r2(out, target), metric, {"mse": m.mse(out, target), "mae": m.mae(out, target),
                                            "relative_error": m.relative_error(out, target)})


def _anomaly(task, out, y, t_out, x) -> Score:
    if x is None:
        raise ValueError("anomaly scores need the inputs x")
    scores = m.reconstruction_error(x, out)
    details = {"mean_reconstruction_error": float(np.mean(scores))}
    flags = None if y is None else np.asarray(y).reshape(-1)
    if flags is not None and len(flags) == len(scores) and np.all((flags == 0) | (flags == 1)):
        auc = m.roc_auc(scores, flags)
        if not np.isnan(auc):
            return Score(auc, "anomaly AUC", details)
    teacher_scores = m.reconstruction_error(x, t_out)
    return Score(m.rank_agreement(scores, teacher_scores), "anomaly-score rank agreement with the teacher", details)


def _segment(task, out, y, t_out, x) -> Score:
    out = np.asarray(out)
    classes = out.shape[-1]
    labels = _class_labels(y, out.shape[:-1], classes)
    predicted = np.argmax(out, axis=-1)
    details = {"pixel_agreement": float(np.mean(predicted == np.argmax(t_out, axis=-1)))}
    if labels is None:
        return Score(m.mean_iou(predicted, np.argmax(t_out, axis=-1), classes), "mean IoU against the teacher",
                     details)
    details["pixel_accuracy"] = float(np.mean(predicted == labels))
    return Score(m.mean_iou(predicted, labels, classes), "mean IoU", details)


def _detect(task, outs, y, t_outs, x) -> Score:
    """mAP@0.5 when y holds boxes and labels (DetectionLabels) and the outputs are a box head (N, A, 4) and a
    class head (N, A, C); otherwise per-head fidelity to the teacher: top-1 agreement for class heads, R^2 for
    box/regression heads (also reported next to the mAP)."""
    fidelity = _fidelity(task, outs, t_outs)
    value = detection_map(outs, y, task.heads) if isinstance(y, DetectionLabels) else None
    if value is None or np.isnan(value):
        return fidelity
    return Score(value, "mAP@0.5", {**fidelity.details, "worst-head fidelity": fidelity.value})


def _fidelity(task, outs, t_outs) -> Score:
    details = {}
    for head, out, t_out in zip(task.heads, _as_list(outs), _as_list(t_outs)):
        out, t_out = np.asarray(out), np.asarray(t_out)
        if head.is_class_head and head.classes > 1:
            details[f"{head.name}: top-1 agreement"] = m.top1(out, np.argmax(t_out, axis=-1))
        else:
            details[f"{head.name}: R^2"] = m.r2(out, t_out)
    return Score(min(details.values()), "worst-head fidelity to the teacher", details)


def _as_list(outputs) -> list:
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


_SCORERS = {"classify": _classify, "multilabel": _multilabel, "regress": _regress, "anomaly": _anomaly,
            "segment": _segment, "detect": _detect}


def _custom_score(fn: Callable, out, y, t_out, name: str) -> Score:
    try:
        value = float(fn(out, y, t_out))
    except Exception as err:  # noqa: BLE001  (the user's own code: one line, no traceback)
        raise BadInputError(f"{name}: raised {type(err).__name__}: {err}; it must take (outputs, y, "
                            "teacher_outputs) and return one number, higher is better") from None
    if not np.isfinite(value):
        raise BadInputError(f"{name}: returned {value}; it must return a finite number, higher is better")
    return Score(value, name)


def _callable_name(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__name__', '?')}"


# ---------------------------------------------------------------------------------------- detection


def detect_task(heads: Sequence[Head], input_shape: tuple, y=None, teacher_outputs=None, *,
                override: str | None = None, custom: Callable | None = None) -> Task:
    """The task of a model with these output `heads`, fed samples of `input_shape` (no batch axis).

    `override` (a TASK_NAMES entry, --task) wins when it suits the outputs; otherwise BadInputError.
    """
    heads = tuple(_with_activation(h, o) for h, o in zip(heads, _as_list(teacher_outputs))) \
        if teacher_outputs is not None else tuple(heads)
    if custom is not None or override == "custom":
        if custom is None:
            raise BadInputError("--task custom needs --metric module:function (your scoring function)")
        return Task("custom", heads, "a custom metric was given", custom)
    if override is not None:
        if override not in TASK_NAMES:
            raise BadInputError(f"--task {override!r}: unknown; use one of {', '.join(TASK_NAMES)}")
        _check_override(override, heads, tuple(input_shape))
        name, why = override, f"--task {override}"
    else:
        name, why = _auto(heads, tuple(input_shape), None if isinstance(y, DetectionLabels) else y)
    if name == "detect" and isinstance(y, DetectionLabels) and split_heads(teacher_outputs, heads) is not None:
        why = ("--task detect; " if override else "") + "a box head (A, 4), a class head (A, C) and gt_boxes/" \
            "gt_labels in the data: scored by mAP@0.5"
        return Task(name, heads, why, metric_name="mAP@0.5")
    return Task(name, heads, why)


def _with_activation(head: Head, outputs) -> Head:
    """Fill an unknown activation from the outputs: rows of non-negative values summing to 1 are softmax."""
    if head.activation is not None or outputs is None:
        return head
    o = np.asarray(outputs)
    if o.ndim >= 2 and o.shape[-1] > 1 and np.all(o >= 0) and np.allclose(o.sum(axis=-1), 1.0, atol=1e-3):
        return Head(head.name, head.shape, "softmax")
    return head


def _auto(heads: tuple[Head, ...], input_shape: tuple, y) -> tuple[str, str]:
    if len(heads) > 1:
        return "detect", f"{len(heads)} outputs: scored per head against the teacher"
    head = heads[0]
    if tuple(head.shape) == input_shape:
        return "anomaly", "the output has the input's shape (an autoencoder): reconstruction error scores anomalies"
    if len(head.shape) >= 2 and head.classes > 1 and (head.activation == "softmax" or _pixel_labels(y, head)):
        return "segment", f"a class axis of {head.classes} per position of a {len(head.shape) - 1}-D map"
    if head.activation == "sigmoid":
        return "multilabel", f"{head.classes} sigmoid unit(s): independent yes/no labels"
    if len(head.shape) == 1 and head.classes > 1:
        if head.activation == "softmax":
            return "classify", f"a softmax over {head.classes} classes"
        labels = None if y is None else np.asarray(y)
        if labels is not None and labels.dtype.kind == "f" and labels.size == len(labels) * head.classes \
                and not np.all(labels == np.round(labels)):
            return "regress", f"{head.classes} linear outputs with real-valued targets"
        return "classify", f"{head.classes} linear outputs (logits){'' if y is not None else ', no labels'}"
    return "regress", f"{head.classes} real-valued output(s)"


def _pixel_labels(y, head: Head) -> bool:
    return y is not None and np.asarray(y).ndim == len(head.shape) and np.asarray(y).dtype.kind in "iu"


def _check_override(name: str, heads: tuple[Head, ...], input_shape: tuple) -> None:
    shape = tuple(heads[0].shape)
    problem = None
    if name != "detect" and len(heads) > 1:
        problem = f"the model has {len(heads)} outputs; use --task detect (scored per head) or custom"
    elif name == "anomaly" and shape != input_shape:
        problem = f"an anomaly autoencoder outputs its input's shape {input_shape}, this model outputs {shape}"
    elif name == "segment" and (len(shape) < 2 or shape[-1] < 2):
        problem = f"segmentation needs a class axis per position (H, W, classes); the output is {shape}"
    elif name == "classify" and shape[-1] < 2:
        problem = f"classification needs a class axis of 2 or more; the output is {shape}"
    if problem:
        raise BadInputError(f"--task {name}: {problem}")
