"""Distillation of multi-output models (detection: a class head and a box head, or any several heads).

One loss per output, weighted: soft-target KL (temperature T) for class heads, L1 (or MSE) for box and
regression heads, each divided by the teacher's own spread on that head so that no head drowns the others;
`weights` scales them further. The student is trained in place with Adam and a cosine schedule; the weights
of the epoch with the lowest validation loss are restored (the starting weights count as epoch 0).

    >>> result = distill_heads(teacher, student, x_train, x_val, ["class", "box"], epochs=10)   # doctest: +SKIP
    >>> result.val_metrics["loss"], result.best_epoch                                          # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgekit.distill import DistillResult
from edgekit.errors import BadInputError

HEAD_KINDS = ("class", "box", "regression")


def head_loss(kind: str, teacher_out, student_out, *, temperature: float, spread: float, box_loss: str = "l1"):
    """One head's loss: KL of softened class distributions, or L1/MSE scaled by the teacher's spread."""
    from edgekit._tf import tensorflow
    from edgekit.distill import losses

    tf = tensorflow()
    if kind == "class":
        return losses.soft_target_kl(teacher_out, student_out, temperature)
    diff = tf.cast(student_out, tf.float32) - tf.cast(teacher_out, tf.float32)
    if box_loss == "mse":
        return tf.reduce_mean(tf.square(diff)) / max(spread * spread, 1e-12)
    return tf.reduce_mean(tf.abs(diff)) / max(spread, 1e-12)


def distill_heads(teacher, student, x_train, x_val, head_kinds: Sequence[str], *, probabilities: Sequence[bool] = (),
                  weights: Sequence[float] | None = None, temperature: float = 4.0, box_loss: str = "l1",
                  epochs: int = 20, batch_size: int = 64, learning_rate: float = 1e-3, seed: int = 0,
                  verbose: int = 0) -> DistillResult:
    """Train a multi-output `student` on a frozen `teacher`'s outputs, one weighted loss per head.

    head_kinds: per output, "class" (KL), "box" or "regression" (L1 / MSE per `box_loss`).
    probabilities: per output, True when the head ends in a softmax (its log is used as logits).
    """
    from edgekit._tf import tensorflow, tf_keras

    tf, keras = tensorflow(), tf_keras()
    n = len(head_kinds)
    if len(teacher.outputs) != n or len(student.outputs) != n:
        raise BadInputError(f"distill_heads: {n} head kinds for a teacher with {len(teacher.outputs)} and a student "
                            f"with {len(student.outputs)} outputs")
    if any(k not in HEAD_KINDS for k in head_kinds) or box_loss not in ("l1", "mse"):
        raise BadInputError(f"distill_heads: head kinds must be {HEAD_KINDS}, box_loss l1 or mse")
    weights = list(weights) if weights is not None else [1.0] * n
    probabilities = list(probabilities) or [False] * n
    keras.utils.set_random_seed(int(seed))

    def as_logits(outputs):
        outs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return [tf.math.log(tf.clip_by_value(o, 1e-7, 1.0)) if p else o for o, p in zip(outs, probabilities)]

    def teacher_outputs(x):
        outs = teacher.predict(x, verbose=0, batch_size=256)
        return [np.asarray(o, np.float32) for o in (outs if isinstance(outs, list) else [outs])]

    t_train, t_val = teacher_outputs(x_train), teacher_outputs(x_val)
    spreads = [float(np.std(t)) or 1.0 for t in t_train]

    def total_loss(t_outs, s_outs):
        s_logits, t_logits = as_logits(s_outs), as_logits(list(t_outs))
        terms = [w * head_loss(k, t, s, temperature=temperature, spread=sp, box_loss=box_loss)
                 for k, w, t, s, sp in zip(head_kinds, weights, t_logits, s_logits, spreads)]
        return tf.add_n(terms), terms

    steps = int(np.ceil(len(x_train) / batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, epochs * steps), alpha=0.05)
    optimizer = keras.optimizers.Adam(learning_rate=schedule)
    train = tf.data.Dataset.from_tensor_slices((x_train, tuple(t_train))).shuffle(len(x_train), seed=seed)
    train = train.batch(batch_size)

    @tf.function
    def step(x, t_outs):
        with tf.GradientTape() as tape:
            loss, _ = total_loss(t_outs, student(x, training=True))
        grads = tape.gradient(loss, student.trainable_variables)
        optimizer.apply_gradients([(g, v) for g, v in zip(grads, student.trainable_variables) if g is not None])
        return loss

    def validate() -> dict[str, float]:
        loss, terms = total_loss(t_val, student(x_val, training=False))
        return {"loss": float(loss), **{f"head_{i}_loss": float(t) for i, t in enumerate(terms)}}

    initial = validate()
    best, best_weights, best_epoch = initial["loss"], student.get_weights(), 0
    history: dict[str, list[float]] = {"loss": [], "val_loss": []}
    for epoch in range(1, epochs + 1):
        losses_ = [float(step(x, t)) for x, t in train]
        val = validate()
        history["loss"].append(float(np.mean(losses_)))
        history["val_loss"].append(val["loss"])
        if verbose:
            print(f"epoch {epoch}/{epochs}: loss {history['loss'][-1]:.4f} val_loss {val['loss']:.4f}")
        if val["loss"] < best:
            best, best_weights, best_epoch = val["loss"], student.get_weights(), epoch
    student.set_weights(best_weights)
    return DistillResult(student=student, task="heads", history=history, val_metrics=validate(),
                         initial_val_metrics=initial, best_epoch=best_epoch, epochs_run=epochs,
                         notices=(f"one loss per head: {', '.join(head_kinds)}; weights {weights}",))
