"""The Distiller: trains a student on a frozen teacher's outputs (and optionally its features) with tf_keras.

`distill_models` is the engine behind `edgekit.distill.distill`: it checks shapes, picks the task, splits
validation data, builds the taps, then runs `Distiller.fit` with early stopping on the validation metric,
a cosine (or reduce-on-plateau) learning-rate schedule, and the best student weights restored. The student
is trained in place; the teacher is only ever called in inference mode and never updated.

This module imports TensorFlow at load time; `edgekit.distill` imports it only when distilling.
"""

from __future__ import annotations

import numpy as np

import edgekit.data as data_mod
from edgekit._tf import tensorflow, tf_keras
from edgekit.distill.augment import Augmentation, augment_batch, resolve_augmentation
from edgekit.distill.features import (
    LogOfProbabilities,
    auto_hint_pairs,
    head_kind,
    is_graph_model,
    make_adapter,
    named_hint_pairs,
    tap_model,
)
from edgekit.distill.inputs import StreamedInput, is_stream, split_input, stream_dataset, streamed_input
from edgekit.distill.losses import (
    attention_loss,
    binary_loss,
    classification_loss,
    hint_loss,
    match_spatial,
    regression_loss,
)
from edgekit.distill.result import DistillResult
from edgekit.distill.strategy import Replicas
from edgekit.errors import BadInputError, UnsupportedModelError

tf = tensorflow()
keras = tf_keras()

TASKS = ("classification", "binary", "regression")
# No early stop before this many optimizer steps: BatchNorm moving statistics (momentum 0.99) need a few
# hundred steps before validation figures say anything, which on small data sets is many epochs.
MIN_STEPS_BEFORE_STOPPING = 300


class Distiller(keras.Model):
    """Student + frozen teacher + hint adapters; `fit` trains the student, `call` runs the student.

    Batches are dicts: "x", and optionally "y" (one-hot labels / 0-1 labels / targets) and "teacher"
    (precomputed teacher logits, used when no feature losses need the teacher's inner layers).
    """

    def __init__(self, teacher_tap, student, student_tap, *, task: str, temperature: float, alpha: float,
                 hint_pairs=(), hint_weight: float = 0.0, attention_weight: float = 0.0, labelled: bool = False,
                 augmentation: Augmentation | None = None, augment_seed: int = 0):
        super().__init__(name="distiller")
        # edgekit.distill.augment: training batches augmented in train_step, the teacher run on them (consistent)
        self.augmentation, self.augment_seed = augmentation or Augmentation(), int(augment_seed)
        if task not in TASKS:
            raise BadInputError(f"task must be one of {TASKS} or 'auto', got {task!r}")
        self.teacher_tap, self.student, self.student_tap = teacher_tap, student, student_tap
        self.task, self.temperature, self.alpha = task, float(temperature), float(alpha)
        self.hint_pairs = tuple(hint_pairs)
        self.hint_weight, self.attention_weight = float(hint_weight), float(attention_weight)
        self.adapters = [make_adapter(p.student_shape, p.teacher_shape, f"hint_adapter_{i}")
                         for i, p in enumerate(self.hint_pairs)] if self.hint_weight > 0 else []
        self.student_variables = list(student_tap.trainable_variables) + [
            v for a in self.adapters for v in a.trainable_variables]
        names = ["loss", "kd_loss"]
        if labelled:
            names += ["ce_loss" if task != "regression" else "target_loss"]
        if self.hint_weight > 0:
            names.append("hint_loss")
        if self.attention_weight > 0:
            names.append("attention_loss")
        if task != "regression":
            names += (["accuracy"] if labelled else []) + ["agreement"]
        self.trackers = {n: keras.metrics.Mean(name=n) for n in names}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

    def uses_features(self) -> bool:
        return bool(self.hint_pairs) and (self.hint_weight > 0 or self.attention_weight > 0)

    def train_step(self, batch):
        batch = self._augmented(batch)
        with tf.GradientTape() as tape:
            terms = self._terms(batch, training=True)
        grads = tape.gradient(terms["loss"], self.student_variables)
        self.optimizer.apply_gradients(
            [(g, v) for g, v in zip(grads, self.student_variables) if g is not None])
        return self._update(terms, batch["x"])

    def _augmented(self, batch):
        """The batch augmented, without cached teacher outputs: the teacher labels what the student sees."""
        if not self.augmentation.active:
            return batch
        seed = tf.stack([tf.constant(self.augment_seed, tf.int64), tf.cast(self.optimizer.iterations, tf.int64)])
        x, y = augment_batch(batch["x"], batch.get("y"), self.augmentation, seed)
        return {"x": x} if y is None else {"x": x, "y": y}

    def test_step(self, batch):
        return self._update(self._terms(batch, training=False), batch["x"])

    def _update(self, terms, x):
        # Weight each batch's mean by its size, so epoch figures are exact per-sample means.
        n = tf.cast(tf.shape(x)[0], tf.float32)
        for name, tracker in self.trackers.items():
            tracker.update_state(terms[name], sample_weight=n)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def _terms(self, batch, training: bool) -> dict:
        x, y = batch["x"], batch.get("y")
        s_out = _as_list(self.student_tap(x, training=training))
        if "teacher" in batch:
            t_out = [batch["teacher"]]
        else:
            t_out = [tf.stop_gradient(t) for t in _as_list(self.teacher_tap(x, training=False))]
        s_logits, t_logits = s_out[0], t_out[0]
        if self.task == "classification":
            total, kd, hard = classification_loss(t_logits, s_logits, y, temperature=self.temperature,
                                                         alpha=self.alpha)
        elif self.task == "binary":
            total, kd, hard = binary_loss(t_logits, s_logits, y, temperature=self.temperature,
                                                 alpha=self.alpha)
        else:
            total, kd, hard = regression_loss(t_logits, s_logits, y, alpha=self.alpha)
        terms = {"kd_loss": kd}
        if hard is not None:
            terms["ce_loss" if self.task != "regression" else "target_loss"] = hard
        if self.hint_weight > 0:
            hint = tf.add_n([hint_loss(adapter(s, training=training), t)
                             for adapter, s, t in zip(self.adapters, s_out[1:], t_out[1:])])
            terms["hint_loss"] = hint
            total += self.hint_weight * hint
        if self.attention_weight > 0:
            attention = tf.add_n([attention_loss(s, t) for s, t in zip(s_out[1:], t_out[1:])])
            terms["attention_loss"] = attention
            total += self.attention_weight * attention
        terms["loss"] = total
        if self.task != "regression":
            terms["agreement"] = _same_decision(s_logits, t_logits, self.task)
            if y is not None:
                terms["accuracy"] = _same_decision(s_logits, y, self.task, labels=True)
        return terms


def distill_models(teacher, student, x_train, y_train=None, x_val=None, y_val=None, *, temperature=4.0,
                   alpha=0.1, hint_weight=0.0, attention_weight=0.0, hint_pairs=None, epochs=20, batch_size=64,
                   learning_rate=1e-3, patience=5, seed=0, verbose=1, task="auto",
                   lr_schedule="cosine", augment="none", mixup=0.0, flip=False, strategy=None) -> DistillResult:
    """See `edgekit.distill.distill` for the arguments."""
    _check_arguments(teacher, student, temperature, alpha, hint_weight, attention_weight, epochs, batch_size,
                     patience, lr_schedule)
    keras.utils.set_random_seed(int(seed))
    notices: list[str] = []
    declared_input = _declared_input_shape(teacher)
    train = _arrays(x_train, y_train, declared_input, "x_train", notices)
    if x_val is None:
        if y_val is not None:
            raise BadInputError("y_val given without x_val")
        train, val = split_input(train, seed, data_mod.split)  # a stream: by its per-sample mask
        notices.append(f"no validation data: held out {len(val)} of {len(train) + len(val)} training samples")
    else:
        val = _arrays(x_val, y_val, declared_input or (None,) + train.x.shape[1:], "x_val", notices)
    if (train.y is None) != (val.y is None):
        raise BadInputError("give labels for both training and validation data, or for neither")
    probe = train.x[:8]
    out_shape = _check_same_interface(teacher, student, probe)

    task = _resolve_task(task, teacher, train, out_shape, notices)
    augmentation = resolve_augmentation(augment, declared_input or (None,) + train.x.shape[1:], mixup=mixup, flip=flip,
                                        task=task)
    notices += [augmentation.note] if augmentation.note else []
    y_train_t, y_val_t = (_targets(d.y, out_shape, task, name) for d, name in ((train, "y_train"), (val, "y_val")))
    pairs = _hint_pairs(teacher, student, hint_pairs, hint_weight, attention_weight)
    if hint_pairs and not pairs:
        notices.append("hint_pairs given but hint_weight and attention_weight are 0: no feature losses used")
    replicas = Replicas(strategy, teacher, student)  # copies under a tf.distribute strategy, else the models
    with replicas.scope():
        teacher_tap = _tap(replicas.teacher, [p.teacher_layer for p in pairs], task, "teacher", probe)
        student_tap = _tap(replicas.student, [p.student_layer for p in pairs], task, "student", probe)
        distiller = Distiller(teacher_tap, replicas.student, student_tap, task=task, temperature=temperature,
                              alpha=alpha, hint_pairs=pairs, hint_weight=hint_weight, attention_weight=attention_weight,
                              labelled=train.y is not None, augmentation=augmentation, augment_seed=seed)
    train_ds = _dataset(distiller, train, y_train_t, batch_size, shuffle_seed=seed)
    val_ds = _dataset(distiller, val, y_val_t, batch_size)
    train_ds, val_ds = replicas.shard(train_ds), replicas.shard(val_ds)
    steps = int(np.ceil(len(train) / batch_size))
    lr = (keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, epochs * steps), alpha=0.05)
          if lr_schedule == "cosine" else learning_rate)
    with replicas.scope():
        distiller.compile(optimizer=replicas.optimizer(lr))

    initial = distiller.evaluate(val_ds, verbose=0, return_dict=True)
    keep_best = _KeepBest(distiller, _monitor(distiller), patience, initial)
    callbacks = [keep_best]
    if lr_schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau("val_loss", factor=0.5,
                                                           patience=max(1, patience // 2), verbose=0))
    if verbose == 3:  # edgekit.distill.epoch_progress.EPOCH_LINES: one line per epoch with an ETA, on stderr
        from edgekit.distill.epoch_progress import epoch_progress_callback

        callbacks.append(epoch_progress_callback(epochs))
    history = distiller.fit(train_ds, validation_data=val_ds, epochs=epochs, callbacks=callbacks,
                            verbose=0 if verbose == 3 else verbose)
    final = distiller.evaluate(val_ds, verbose=0, return_dict=True)
    replicas.copy_back()
    if keep_best.best_epoch == 0:
        notices.append("no epoch improved on the student's starting validation score; its weights are kept")
    return DistillResult(
        student=student, task=task, history={k: [float(v) for v in vs] for k, vs in history.history.items()},
        val_metrics={k: float(v) for k, v in final.items()},
        initial_val_metrics={k: float(v) for k, v in initial.items()}, best_epoch=keep_best.best_epoch,
        epochs_run=len(history.epoch), hint_pairs=tuple((p.student_layer, p.teacher_layer) for p in pairs),
        notices=tuple(notices))


class _KeepBest(keras.callbacks.Callback):
    """Early stopping on (val metric, then lower val loss) with the best student weights restored.

    The student's starting weights count as epoch 0, so distillation never returns a worse student
    (on the validation data) than it was given: safe inside prune -> distill loops.
    """

    def __init__(self, distiller, monitor: str, patience: int, initial: dict):
        super().__init__()
        self.distiller, self.monitor, self.patience = distiller, monitor, patience
        self.best_key = self._key({f"val_{k}": v for k, v in initial.items()})
        self.best_weights = self._snapshot()
        self.best_epoch, self.wait, self.steps = 0, 0, 0

    def _key(self, logs) -> tuple:
        loss = float(logs["val_loss"])
        if self.monitor == "val_loss":
            return (-loss,)
        return (float(logs[self.monitor]), -loss)

    def _snapshot(self):
        return [self.distiller.student.get_weights()] + [a.get_weights() for a in self.distiller.adapters]

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1

    def on_epoch_end(self, epoch, logs=None):
        key = self._key(logs)
        if key > self.best_key:
            self.best_key, self.best_weights, self.best_epoch, self.wait = key, self._snapshot(), epoch + 1, 0
            return
        self.wait += 1
        if self.wait >= self.patience and self.steps >= MIN_STEPS_BEFORE_STOPPING:
            self.distiller.stop_training = True

    def on_train_end(self, logs=None):
        self.distiller.student.set_weights(self.best_weights[0])
        for adapter, weights in zip(self.distiller.adapters, self.best_weights[1:]):
            adapter.set_weights(weights)


def _monitor(distiller: Distiller) -> str:
    if "accuracy" in distiller.trackers:
        return "val_accuracy"
    if "agreement" in distiller.trackers:
        return "val_agreement"
    return "val_loss"


def _dataset(distiller: Distiller, data, y, batch_size: int, shuffle_seed: int | None = None):
    if isinstance(data, StreamedInput):  # edgekit.distill.inputs: batches streamed, teacher logits on disk
        return stream_dataset(distiller, data, y, batch_size, shuffle_seed)
    x = data.x
    batch = {"x": x}
    if y is not None:
        batch["y"] = y
    augmented = shuffle_seed is not None and distiller.augmentation.active  # the teacher labels each new batch
    if not distiller.uses_features() and not augmented:  # teacher outputs are fixed: compute them once
        batch["teacher"] = _teacher_logits(distiller.teacher_tap, x)
    ds = tf.data.Dataset.from_tensor_slices(batch)
    if shuffle_seed is not None:
        ds = ds.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(2)


def _teacher_logits(teacher_tap, x, batch_size: int = 256) -> np.ndarray:
    from edgekit.distill.teacher_cache import teacher_outputs  # reused inside shared_teacher_outputs()

    return teacher_outputs(teacher_tap, x, lambda: np.concatenate(
        [np.asarray(_as_list(teacher_tap(x[i:i + batch_size], training=False))[0], np.float32)
         for i in range(0, len(x), batch_size)]))


def _tap(model, feature_layers, task: str, role: str, probe):
    """The model's [logits, *features] tap (raw outputs for regression)."""
    if task == "regression" and not feature_layers:
        return model
    if task != "regression" and not is_graph_model(model):
        return LogOfProbabilities(model) if _outputs_probabilities(model, probe) else model
    if task == "regression":
        return keras.Model(model.inputs, [model.outputs[0]] + [model.get_layer(n).output for n in feature_layers])
    return tap_model(model, feature_layers, name=f"{role}_tap")


def _outputs_probabilities(model, probe) -> bool:
    """For models we cannot inspect: are the outputs on a few samples non-negative rows summing to 1?"""
    out = np.asarray(model(probe, training=False))
    return bool(np.all(out >= 0) and np.allclose(out.sum(axis=-1), 1.0, atol=1e-3))


def _hint_pairs(teacher, student, hint_pairs, hint_weight: float, attention_weight: float):
    if hint_weight <= 0 and attention_weight <= 0:
        return []
    if hint_pairs is not None:
        pairs = named_hint_pairs(student, teacher, hint_pairs)
    else:
        pairs = auto_hint_pairs(student, teacher)
        if not pairs:
            raise BadInputError("hint/attention losses: no student and teacher feature maps share a spatial "
                                "size; name the layers with hint_pairs=[(student_layer, teacher_layer)]")
    if attention_weight > 0:
        flat = [p for p in pairs if len(p.student_shape) < 3 or len(p.teacher_shape) < 3]
        if flat:
            raise BadInputError(f"attention transfer needs feature maps; {flat[0].student_layer} / "
                                f"{flat[0].teacher_layer} output vectors {flat[0].student_shape}")
    for p in pairs:
        try:
            match_spatial(tf.zeros((1,) + tuple(p.student_shape[1:])),
                                 tf.zeros((1,) + tuple(p.teacher_shape[1:])))
        except ValueError as e:
            raise BadInputError(f"hint pair ({p.student_layer}, {p.teacher_layer}): {e}") from None
    return pairs


def _resolve_task(task: str, teacher, train, out_shape: tuple, notices: list) -> str:
    if task != "auto":
        if task not in TASKS:
            raise BadInputError(f"task must be 'auto' or one of {', '.join(TASKS)}, got {task!r}")
        return task
    if tuple(train.x.shape[1:]) == out_shape:
        notices.append("teacher output has the input's shape (an autoencoder): distilling with MSE")
        return "regression"
    kind = head_kind(teacher) if is_graph_model(teacher) else (
        "softmax" if _outputs_probabilities(teacher, train.x[:8]) else "linear")
    if kind == "softmax":
        return "classification"
    if kind == "sigmoid":
        return "binary"
    n_out = out_shape[-1] if out_shape else 1
    if train.y is not None:
        return "classification" if n_out > 1 and data_mod._class_indices(train.y) is not None else "regression"
    if n_out > 1 and len(out_shape) == 1:
        notices.append(f"teacher ends in a linear layer of {n_out} units and there are no labels: treating its "
                       "outputs as class logits; pass task='regression' if they are not")
        return "classification"
    return "regression"


def _targets(y, out_shape: tuple, task: str, name: str):
    """Labels in the form the losses want: one-hot (classification), 0/1 floats, or targets."""
    if y is None:
        return None
    if task == "classification":
        n_classes = int(out_shape[-1])
        if y.ndim == 2 and y.shape[1] == n_classes and n_classes > 1:
            return y.astype(np.float32)  # one-hot or smoothed labels
        classes = data_mod._class_indices(y)
        if classes is None or classes.min() < 0 or classes.max() >= n_classes:
            raise BadInputError(f"{name}: labels must be class indices 0..{n_classes - 1} or one-hot rows of "
                                f"{n_classes} (the teacher's outputs), got shape {y.shape}")
        return np.eye(n_classes, dtype=np.float32)[classes]
    try:
        return y.astype(np.float32).reshape((len(y),) + out_shape)
    except ValueError:
        raise BadInputError(f"{name}: targets of shape {y.shape} do not match the teacher's output "
                            f"{(None,) + out_shape}") from None


def _declared_input_shape(model) -> tuple | None:
    """(None, ...) input shape of a functional/Sequential model; None for a subclassed one (data decides)."""
    return tuple(model.input_shape) if is_graph_model(model) else None


def _arrays(x, y, model_input_shape, name: str, notices: list):
    if is_stream(x):  # a StreamSource: a small sample in memory, batches streamed (edgekit.distill.inputs)
        return streamed_input(x, y, model_input_shape, name, notices)
    if isinstance(x, data_mod.Dataset):
        x, y = x.x, x.y if y is None else y
    dataset = data_mod.from_arrays(x, y, model_input_shape=model_input_shape, source=name)
    notices.extend(dataset.notices)
    return dataset


def _check_arguments(teacher, student, temperature, alpha, hint_weight, attention_weight, epochs, batch_size,
                     patience, lr_schedule) -> None:
    if student is teacher:
        raise BadInputError("the student is the teacher itself; pass a copy (e.g. keras.models.clone_model)")
    shared = {id(v) for v in teacher.weights} & {id(v) for v in student.weights}
    if shared:
        raise BadInputError("the student shares weights with the teacher (built from the teacher's layers): "
                            "training it would change the teacher; clone it first")
    if temperature <= 0:
        raise BadInputError(f"temperature must be > 0, got {temperature}")
    if not 0.0 <= alpha <= 1.0:
        raise BadInputError(f"alpha must be in [0, 1], got {alpha}")
    if hint_weight < 0 or attention_weight < 0:
        raise BadInputError("hint_weight and attention_weight must be >= 0")
    if epochs < 1 or batch_size < 1 or patience < 1:
        raise BadInputError(f"epochs, batch_size and patience must be >= 1, got {epochs}, {batch_size}, {patience}")
    if lr_schedule not in ("cosine", "plateau"):
        raise BadInputError(f"lr_schedule must be 'cosine' or 'plateau', got {lr_schedule!r}")


def _check_same_interface(teacher, student, x_probe) -> tuple:
    """Check the student takes the teacher's input and gives its output shape; returns that shape."""
    s_in = _declared_input_shape(student)
    if s_in is not None:
        t_in = tuple(x_probe.shape[1:])
        if len(t_in) != len(s_in) - 1 or any(b is not None and a != b for a, b in zip(t_in, s_in[1:])):
            raise BadInputError(f"student {student.name} takes input {s_in} but the teacher's data is "
                                f"{(None,) + t_in}; build the student for the teacher's input")
    t_out = tuple(np.shape(teacher(x_probe, training=False))[1:])
    s_out = tuple(np.shape(student(x_probe, training=False))[1:])
    if t_out != s_out:
        raise UnsupportedModelError(f"student {student.name} outputs {(None,) + s_out} but the teacher outputs "
                                    f"{(None,) + t_out}; give the student the teacher's output shape")
    return t_out


def _same_decision(a_logits, b, task: str, labels: bool = False):
    if task == "binary":
        b_pos = b > 0.5 if labels else b > 0.0
        return tf.reduce_mean(tf.cast(tf.equal(a_logits > 0.0, b_pos), tf.float32))
    return tf.reduce_mean(tf.cast(tf.equal(tf.argmax(a_logits, -1), tf.argmax(b, -1)), tf.float32))


def _as_list(outputs):
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
