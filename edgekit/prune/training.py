"""The losses and short training loops pruning needs: fine-tuning after removal, the Taylor criterion's loss.

The task is read from the labels: integer labels -> sparse cross-entropy (from logits unless the model
ends in a softmax) and accuracy; one-hot rows -> categorical cross-entropy; anything else -> mean squared
error. Without labels, fine-tuning matches the original model's outputs (self-distillation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekit.errors import BadInputError


@dataclass(frozen=True)
class Metric:
    name: str       # "accuracy" or "mse"
    value: float

    def __str__(self) -> str:
        return f"{self.name} {self.value:.4f}"


def ends_in_softmax(model) -> bool:
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    name = getattr(activation, "__name__", "")
    return name == "softmax" or type(last).__name__ == "Softmax"


def label_kind(model, y: np.ndarray | None) -> str:
    """'sparse' (class ids), 'onehot', 'regression' or 'none'."""
    if y is None:
        return "none"
    y = np.asarray(y)
    width = int(model.output_shape[-1]) if model.output_shape[-1] is not None else 1
    if y.ndim == 1 and width > 1 and np.issubdtype(y.dtype, np.integer):
        return "sparse"
    if y.ndim == 1 and width > 1 and np.all(np.mod(y, 1) == 0):
        return "sparse"
    if y.ndim == 2 and y.shape[1] == width > 1 and np.allclose(y.sum(axis=1), 1) and np.all((y == 0) | (y == 1)):
        return "onehot"
    return "regression"


def fit_objective(model, y: np.ndarray | None):
    """(loss, metrics) for training `model` on labels y (None: on the original model's outputs)."""
    from edgekit._tf import tf_keras

    keras = tf_keras()
    kind = label_kind(model, y)
    from_logits = not ends_in_softmax(model)
    if kind == "sparse":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits), ["accuracy"]
    if kind == "onehot":
        return keras.losses.CategoricalCrossentropy(from_logits=from_logits), ["accuracy"]
    return keras.losses.MeanSquaredError(), []


def taylor_objective(model, x: np.ndarray, y: np.ndarray | None):
    """(loss_fn(y_true, y_pred), targets) whose gradients the Taylor criterion reads."""
    from edgekit._tf import tf_keras

    keras = tf_keras()
    if y is not None:
        loss, _ = fit_objective(model, y)
        return loss, np.asarray(y)
    if tuple(model.output_shape[1:]) == tuple(model.input_shape[1:]):
        return keras.losses.MeanSquaredError(), np.asarray(x)
    if model.output_shape[-1] and model.output_shape[-1] > 1:
        pseudo = np.argmax(model.predict(x, verbose=0, batch_size=256), axis=-1)
        return keras.losses.SparseCategoricalCrossentropy(from_logits=not ends_in_softmax(model)), pseudo
    raise BadInputError("taylor importance needs labels (y) for a model that is neither a classifier nor an "
                        "autoencoder; add y to the data or use --importance l1")


def fine_tune(model, x: np.ndarray, y: np.ndarray | None, *, epochs: int, batch_size: int = 64,
              learning_rate: float = 1e-3, teacher=None, callbacks=(), seed: int = 0, strategy=None) -> None:
    """Train `model` in place for `epochs` on (x, y); y None: on `teacher`'s outputs (required then). A model
    with several outputs trains on a list of targets (one per output, MSE each): the teacher's outputs.

    strategy: a tf.distribute strategy or its name; None uses the process's active one (edgekit.distill.strategy).
    """
    from edgekit._tf import tf_keras
    from edgekit.distill.strategy import fit_arrays, scope, training_copy

    keras = tf_keras()
    if epochs <= 0:
        return
    if y is None:
        if teacher is None:
            raise BadInputError("fine-tuning without labels needs the original model's outputs as targets")
        y = teacher.predict(x, verbose=0, batch_size=256)
    if isinstance(y, (list, tuple)):  # several outputs (targets: the original model's): MSE on each, summed
        y = tuple(np.asarray(v, np.float32) for v in y)
        if len(y) != len(model.outputs):
            raise BadInputError(f"fine-tuning {model.name}: {len(y)} targets for {len(model.outputs)} outputs")
        loss, metrics = keras.losses.MeanSquaredError(), []
    else:
        loss, metrics = fit_objective(model, y)
    keras.utils.set_random_seed(seed)
    with training_copy(model, strategy, callbacks) as (work, distributed):
        with scope(distributed):
            work.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=metrics)
        fit_arrays(work, x, y, distributed, epochs=epochs, batch_size=batch_size, seed=seed, callbacks=callbacks)


def evaluate(model, x: np.ndarray, y: np.ndarray | None, teacher=None) -> Metric:
    """Accuracy for class labels; otherwise MSE against y (or against `teacher`'s outputs when y is None)."""
    pred = model.predict(x, verbose=0, batch_size=256)
    kind = label_kind(model, y)
    if kind == "sparse":
        return Metric("accuracy", float(np.mean(np.argmax(pred, axis=-1) == np.asarray(y).astype(np.int64))))
    if kind == "onehot":
        return Metric("accuracy", float(np.mean(np.argmax(pred, axis=-1) == np.argmax(y, axis=-1))))
    target = np.asarray(y) if y is not None else (teacher.predict(x, verbose=0, batch_size=256)
                                                  if teacher is not None else None)
    if target is None:
        raise BadInputError("evaluating without labels needs the original model's outputs")
    return Metric("mse", float(np.mean((pred - target.reshape(pred.shape)) ** 2)))
