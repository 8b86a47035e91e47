"""distill_model: the Python API behind `edgekit distill`: a teacher and data in, a smaller trained student out.

    >>> from edgekit.workflows.distill import distill_model
    >>> outcome = distill_model("teacher.h5", "train.npz", val="val.npz", family="dscnn", macs_ratio=0.25,
    ...                         epochs=20, out="student.h5")                       # doctest: +SKIP
    >>> outcome.macs_ratio, outcome.teacher_accuracy, outcome.student_accuracy     # doctest: +SKIP

The student comes from exactly one of: `width` (the teacher with every layer's channels scaled),
`student` (your own model or model file) or `family` (a reference family sized to a MAC target).
Accuracies are measured on the validation data (given, or 10 % held out from `data`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.distill.families import CHOICES, FAMILIES, resolve_family
from edgekit.errors import BadInputError

DEFAULT_MACS_RATIO = 0.25
# Loss weights behind `features=True`: of (hint 1), (attention 1), (both 0.1) and (both 1), both 1 did best on
# MNIST-1D validation accuracy for a shrunk-teacher and a DS-CNN student at 25 % MACs; the differences were
# within the noise of 800 validation samples.
FEATURE_HINT_WEIGHT = 1.0
FEATURE_ATTENTION_WEIGHT = 1.0


@dataclass(frozen=True)
class DistillOutcome:
    """What `distill_model` produced: the trained student and how it compares with the teacher.

    student: the trained tf_keras student (best validation epoch). student_source says how it was made.
    *_accuracy: on the validation data against its labels (None without labels or for regression);
    agreement: share of validation samples where student and teacher pick the same class.
    best_epoch: the epoch whose weights were kept (0: the starting weights). out_path: where it was saved.
    """

    student: Any
    student_source: str
    teacher_macs: int
    teacher_params: int
    student_macs: int
    student_params: int
    teacher_accuracy: float | None
    student_accuracy: float | None
    student_initial_accuracy: float | None
    agreement: float | None
    task: str
    best_epoch: int
    epochs_run: int
    n_train: int
    n_val: int
    temperature: float
    alpha: float
    hint_weight: float
    attention_weight: float
    hint_pairs: tuple[tuple[str, str], ...] = ()
    notices: tuple[str, ...] = ()
    out_path: str | None = None
    teacher_path: str | None = None
    history: dict[str, list[float]] = field(default_factory=dict)

    @property
    def macs_ratio(self) -> float:
        return self.student_macs / self.teacher_macs if self.teacher_macs else 1.0

    @property
    def params_ratio(self) -> float:
        return self.student_params / self.teacher_params if self.teacher_params else 1.0

    def as_dict(self) -> dict:
        """JSON-ready figures (everything but the model and the per-epoch history)."""
        return {
            "teacher": {"path": self.teacher_path, "macs": self.teacher_macs, "params": self.teacher_params,
                        "accuracy": self.teacher_accuracy},
            "student": {"source": self.student_source, "path": self.out_path, "macs": self.student_macs,
                        "params": self.student_params, "accuracy": self.student_accuracy,
                        "initial_accuracy": self.student_initial_accuracy, "macs_ratio": self.macs_ratio,
                        "params_ratio": self.params_ratio},
            "agreement": self.agreement, "task": self.task, "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run, "n_train": self.n_train, "n_val": self.n_val,
            "temperature": self.temperature, "alpha": self.alpha, "hint_weight": self.hint_weight,
            "attention_weight": self.attention_weight, "hint_pairs": [list(p) for p in self.hint_pairs],
            "notices": list(self.notices),
        }


def distill_model(teacher_or_path, data, *, val=None, width: float | None = None, student=None,
                  family: str | None = None, target_macs: int | None = None, macs_ratio: float | None = None,
                  depth: int | None = None, inherit_weights: bool = True, temperature: float = 4.0,
                  alpha: float = 0.1, features: bool = False, hint_weight: float | None = None,
                  attention_weight: float | None = None, epochs: int = 20, batch_size: int = 64,
                  learning_rate: float = 1e-3, patience: int = 5, seed: int = 0, task: str = "auto",
                  verbose: int = 0, trust: bool = False, out: str | os.PathLike | None = None,
                  log: Callable[[str], None] | None = None, strategy=None, augment: str = "none",
                  mixup: float = 0.0) -> DistillOutcome:
    """Build a student, distil the teacher into it, and (with `out`) save it atomically.

    Args:
        teacher_or_path: a tf_keras model or a model file (Keras 3 files are bridged; never modified).
        data, val: a data path (.npz with x and optional y, .npy, or an image folder with class
            sub-folders), an edgekit.data.Dataset, an (x, y) pair or an x array. Without val, 10 % of
            data is held out (stratified by class). Checked against the teacher's input shape.
        width: student = the teacher with every conv/dense layer's channels times `width` (0 < width <= 1;
            MACs shrink about width^2); inherit_weights keeps the teacher's L1-largest channels (plain
            chains), False starts from fresh weights.
        student: your own student, a tf_keras model (trained in place) or a model file.
        family: 'dscnn', 'mobilenet', 'mlp' or 'auto' (by input rank), sized to at most `target_macs`
            MACs or `macs_ratio` of the teacher's (default 0.25); `depth` fixes its depth.
        temperature, alpha: soft-target temperature and the weight of the hard-label loss.
        features: add FitNets hint and attention-transfer losses on automatically paired layers
            (weights FEATURE_HINT_WEIGHT / FEATURE_ATTENTION_WEIGHT unless hint_weight /
            attention_weight are given).
        task: 'auto', 'classification', 'binary' (sigmoid outputs) or 'regression'.
        verbose: Keras progress (0 quiet, 1 bar, 2 a line per epoch). log: called with status lines.
        strategy: 'none', 'mirrored' or 'multiworker' (TF_CONFIG; edgekit.distill.strategy); under multiworker
            only the chief worker saves `out` (out_path is None on the others).
        augment, mixup: consistent augmentation and mixup for edgekit.distill.distill ('none' / 0: off).
    Raises:
        BadInputError (and subclasses): one line naming the file, option or layer at fault.
    """
    from edgekit.distill import distill
    from edgekit.distill.strategy import activate, is_chief

    if strategy is not None:
        activate(strategy)  # before any model is built: a multi-worker setup must come first in the process
    _check_choice(width, student, family, target_macs, macs_ratio)
    say = log or (lambda _message: None)
    teacher, teacher_path = _load_teacher(teacher_or_path, trust)
    protected = [p for p in (teacher_path, student if _is_path(student) else None) if p is not None]
    if out is not None:
        check_out_path(out, protected)
    teacher_cost = _cost(teacher)
    train, validation, notices = _datasets(data, val, teacher, seed)
    model, source = _build_student(teacher, teacher_cost.macs, width=width, student=student, family=family,
                                   target_macs=target_macs, macs_ratio=macs_ratio, depth=depth,
                                   inherit_weights=inherit_weights, trust=trust)
    student_cost = _cost(model)
    if student_cost.macs >= teacher_cost.macs:
        notices.append(f"the student ({student_cost.macs:,} MACs) is not smaller than the teacher "
                       f"({teacher_cost.macs:,} MACs)")
    say(f"teacher: {teacher_cost.macs:,} MACs, {teacher_cost.params:,} params; student {source}: "
        f"{student_cost.macs:,} MACs ({student_cost.macs / max(1, teacher_cost.macs):.1%}), "
        f"{student_cost.params:,} params; {len(train)} training / {len(validation)} validation samples")
    hint = hint_weight if hint_weight is not None else (FEATURE_HINT_WEIGHT if features else 0.0)
    attention = attention_weight if attention_weight is not None else (
        FEATURE_ATTENTION_WEIGHT if features else 0.0)
    result = distill(teacher, model, *_xy(train), *_xy(validation), temperature=temperature,
                     alpha=alpha, hint_weight=hint, attention_weight=attention, epochs=epochs,
                     batch_size=batch_size, learning_rate=learning_rate, patience=patience, seed=seed,
                     verbose=verbose, task=task, augment=augment, mixup=mixup)
    notices.extend(result.notices)
    if out is not None and not is_chief():
        out = None  # a non-chief worker of a multi-worker run: the chief writes the student
    if out is not None:
        from edgekit.model_io import save_model

        save_model(model, out)
    return DistillOutcome(
        student=model, student_source=source, teacher_macs=teacher_cost.macs, teacher_params=teacher_cost.params,
        student_macs=student_cost.macs, student_params=student_cost.params,
        teacher_accuracy=accuracy(teacher, *_xy(validation, in_memory=True), result.task),
        student_accuracy=result.val_metrics.get("accuracy"),
        student_initial_accuracy=result.initial_val_metrics.get("accuracy"),
        agreement=result.val_metrics.get("agreement"), task=result.task, best_epoch=result.best_epoch,
        epochs_run=result.epochs_run, n_train=len(train), n_val=len(validation), temperature=float(temperature),
        alpha=float(alpha), hint_weight=float(hint), attention_weight=float(attention),
        hint_pairs=result.hint_pairs, notices=tuple(dict.fromkeys(notices)),
        out_path=os.fspath(out) if out is not None else None, teacher_path=teacher_path, history=result.history)


def accuracy(model, x: np.ndarray, y: np.ndarray | None, task: str, batch_size: int = 256) -> float | None:
    """Top-1 accuracy (classification: argmax; binary: output > 0.5 or logit > 0) against labels y."""
    if y is None or task not in ("classification", "binary"):
        return None
    outputs = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    if task == "binary":
        from edgekit.distill.features import head_kind, is_graph_model

        probabilities = (head_kind(model) == "sigmoid" if is_graph_model(model)
                         else bool(np.all((outputs >= 0) & (outputs <= 1))))
        predicted = outputs > (0.5 if probabilities else 0.0)
        return float(np.mean(predicted.reshape(len(y), -1) == (y.reshape(len(y), -1) > 0.5)))
    labels = np.argmax(y, axis=1) if y.ndim == 2 and y.shape[1] > 1 else y.reshape(len(y)).astype(np.int64)
    return float(np.mean(np.argmax(outputs, axis=-1) == labels))


def check_out_path(out, protected) -> None:
    """Fail before training, not after: a usable .h5/.keras path that is not one of the input models."""
    from edgekit.model_io.atomic import check_target
    from edgekit.model_io.saving import SAVE_EXTENSIONS

    target = os.fspath(out)
    extension = os.path.splitext(target)[1].lower()
    if extension not in SAVE_EXTENSIONS:
        raise BadInputError(f"{target}: cannot save a model with extension '{extension or '(none)'}': "
                            "use .h5 or .keras")
    check_target(target, protected)


def _check_choice(width, student, family, target_macs, macs_ratio) -> None:
    given = [name for name, value in (("width", width), ("student", student), ("family", family))
             if value is not None]
    if len(given) != 1:
        raise BadInputError("choose the student with exactly one of width, student or family"
                            + (f" (got {', '.join(given)})" if given else ""))
    if (target_macs is not None or macs_ratio is not None) and family is None:
        raise BadInputError("target_macs and macs_ratio size a reference family; use them with family")
    if target_macs is not None and macs_ratio is not None:
        raise BadInputError("give target_macs or macs_ratio, not both")
    if width is not None and not 0.0 < width <= 1.0:
        raise BadInputError(f"width multiplies every layer's channels and must be in (0, 1], got {width}")
    if macs_ratio is not None and not 0.0 < macs_ratio <= 1.0:
        raise BadInputError(f"macs_ratio is a share of the teacher's MACs and must be in (0, 1], got {macs_ratio}")
    if target_macs is not None and target_macs < 1:
        raise BadInputError(f"target_macs must be a positive count, got {target_macs}")
    if family is not None and family not in (*CHOICES, *FAMILIES):
        raise BadInputError(f"unknown student family {family!r}; use one of {', '.join(CHOICES)}")


def _is_path(value) -> bool:
    return isinstance(value, (str, os.PathLike))


def _load_teacher(teacher_or_path, trust: bool):
    if _is_path(teacher_or_path):
        from edgekit.model_io import load_model, require_keras

        loaded = load_model(teacher_or_path, trust=trust)
        return require_keras(loaded, "distillation"), loaded.path
    return teacher_or_path, None


@dataclass(frozen=True)
class _Cost:
    macs: int
    params: int


def _cost(model) -> _Cost:
    from edgekit.costmodel.layer_costs import analyze
    from edgekit.ir.from_keras import from_keras

    cost = analyze(from_keras(model))
    return _Cost(int(cost.macs), int(cost.params))


def _datasets(data, val, teacher, seed: int):
    """(train, validation, notices): read and check both against the teacher, hold out val if missing."""
    import edgekit.data as data_mod

    input_shape = tuple(teacher.input_shape)
    train = _dataset(data, input_shape, "data")
    notices = list(train.notices)
    if val is None:
        total = len(train)
        train, validation = train.split(seed=seed) if _streamed(train) else data_mod.split(train, seed=seed)
        notices.append(f"no validation data: held out {len(validation)} of {total} samples of {_name(train)}")
    else:
        validation = _dataset(val, input_shape, "val")
        notices.extend(validation.notices)
    for dataset in (train, validation):
        _check_against_teacher(dataset.sample() if _streamed(dataset) else dataset, teacher)
    if _labelled(train) != _labelled(validation):
        raise BadInputError(f"{_name(train)} and {_name(validation)}: give labels (y) in both or in neither")
    return train, validation, notices


def _dataset(value, input_shape: tuple, role: str):
    """A Dataset, or a StreamSource for TFRecords, .npz shard folders and large files (edgekit.data.open_data)."""
    from edgekit.data import open_data

    if value is None:
        raise BadInputError(f"{role}: no data given; pass a .npz/.npy path, a folder of images or arrays")
    return open_data(value, input_shape, role)


def _streamed(dataset) -> bool:
    from edgekit.data.stream import StreamSource

    return isinstance(dataset, StreamSource)


def _labelled(dataset) -> bool:
    return dataset.has_labels if _streamed(dataset) else dataset.y is not None


def _xy(dataset, in_memory: bool = False):
    """(x, y) to pass on: a stream as itself (it carries its labels), or its bounded sample when `in_memory`."""
    if _streamed(dataset):
        if not in_memory:
            return dataset, None
        dataset = dataset.sample()
    return dataset.x, dataset.y


def _check_against_teacher(dataset, teacher) -> None:
    """dtype and label checks that load_data cannot make without the model."""
    name = _name(dataset)
    input_dtype = _input_dtype(teacher)
    if ("int" in input_dtype or input_dtype == "bool") and not np.all(dataset.x == np.round(dataset.x)):
        raise BadInputError(f"{name}: x holds fractional values but the teacher's input is {input_dtype}; "
                            "give the integer inputs the model was trained on (e.g. token ids)")
    out_shape = tuple(teacher.output_shape[1:]) if not isinstance(teacher.output_shape, list) else ()
    y = dataset.y
    if y is None or len(out_shape) != 1 or out_shape[0] < 2 or y.ndim != 1 or y.dtype.kind not in "iub":
        return
    if y.min() < 0 or y.max() >= out_shape[0]:
        raise BadInputError(f"{name}: labels run from {int(y.min())} to {int(y.max())} but the teacher has "
                            f"{out_shape[0]} outputs (classes 0..{out_shape[0] - 1}); is this the teacher's data?")


def _input_dtype(model) -> str:
    inputs = getattr(model, "inputs", None)
    dtype = inputs[0].dtype if inputs else None
    return "float32" if dtype is None else getattr(dtype, "name", str(dtype))


def _name(dataset) -> str:
    return os.path.basename(os.path.normpath(dataset.source)) or dataset.source


def _build_student(teacher, teacher_macs: int, *, width, student, family, target_macs, macs_ratio, depth,
                   inherit_weights: bool, trust: bool):
    """(student model, one-line description)."""
    from edgekit.distill import students

    if width is not None:
        from edgekit.distill.derive import _is_plain_chain

        model = students.shrink_teacher(teacher, width, inherit_weights=inherit_weights)
        # shrink_teacher copies the teacher's L1-largest channels only for plain chains.
        inherited = inherit_weights and _is_plain_chain(teacher)
        return model, f"teacher x{width:g} width ({'L1 channels inherited' if inherited else 'fresh weights'})"
    if student is not None:
        if _is_path(student):
            return students.load_student(student, trust=trust), f"file {os.path.basename(os.fspath(student))}"
        return student, f"model {student.name}"
    target = int(target_macs) if target_macs is not None else max(
        1, int(teacher_macs * (macs_ratio if macs_ratio is not None else DEFAULT_MACS_RATIO)))
    model = students.student_for(teacher, resolve_family(family), target_macs=target, depth=depth)
    return model, f"{model.name.replace('_student', '')} ({_family_size(model)}, target {target:,} MACs)"


def _family_size(model) -> str:
    """'width W, depth D' of a students.dscnn / mobilenet_like / mlp model, read from its layer names."""
    names = [layer.name for layer in model.layers]
    first = next((model.get_layer(name) for name in ("stem", "dense_0") if name in names), None)
    config = first.get_config() if first is not None else {}
    width = config.get("filters") or config.get("units") or 0
    depth = sum(name.endswith("_dw") for name in names) or sum(name.startswith("dense_") for name in names)
    return f"width {width}, depth {depth}"
