"""What a distillation returns (its own module so the trainer and the package facade both import it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DistillResult:
    """What distillation produced.

    student: the student model (trained in place), with the weights of its best validation epoch.
    task: 'classification' (softmax KL), 'binary' (sigmoid KL) or 'regression' (MSE on outputs).
    history: per-epoch metrics as Keras logs them ('loss', 'val_loss', 'val_accuracy', ...).
    val_metrics / initial_val_metrics: validation metrics after / before distillation. 'agreement' is the
        fraction of validation samples where student and teacher pick the same class; 'accuracy' is
        against the labels (only when labels were given).
    best_epoch: the epoch whose weights were kept (0: the student's starting weights were best).
    hint_pairs: (student_layer, teacher_layer) names used for hint / attention losses.
    notices: things the user should know (added channel axis, held-out validation, assumed task).
    """

    student: Any
    task: str
    history: dict[str, list[float]]
    val_metrics: dict[str, float]
    initial_val_metrics: dict[str, float]
    best_epoch: int
    epochs_run: int
    hint_pairs: tuple[tuple[str, str], ...] = ()
    notices: tuple[str, ...] = field(default=())
