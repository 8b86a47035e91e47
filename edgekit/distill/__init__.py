"""Knowledge distillation: train a small student on a trained teacher's outputs (and features).

Importing this package is light; TensorFlow is loaded when `distill` (or a student builder) runs.

    >>> from edgekit.distill import distill                          # doctest: +SKIP
    >>> result = distill(teacher, student, x_train, y_train, epochs=10)  # doctest: +SKIP
    >>> result.val_metrics["accuracy"], result.best_epoch              # doctest: +SKIP

Prune -> distill -> prune: `distill` takes any student with the teacher's input and output shapes,
e.g. a structurally pruned copy of the teacher, and returns it trained (in place) with its best weights.
"""

from __future__ import annotations

from edgekit.distill.result import DistillResult


def distill(teacher, student, x_train, y_train=None, x_val=None, y_val=None, *, temperature: float = 4.0,
            alpha: float = 0.1, hint_weight: float = 0.0, attention_weight: float = 0.0, hint_pairs=None,
            epochs: int = 20, batch_size: int = 64, learning_rate: float = 1e-3, patience: int = 5,
            seed: int = 0, verbose: int = 1, task: str = "auto", lr_schedule: str = "cosine", augment: str = "none",
            mixup: float = 0.0, flip: bool = False, strategy=None) -> DistillResult:
    """Train `student` to mimic `teacher`; returns the student with its best validation weights restored.

    Loss (classification): alpha * CE(y, s) + (1 - alpha) * T^2 * KL(softmax(t/T) || softmax(s/T)),
    the KL term alone when y_train is None (the teacher labels the data), plus
    hint_weight * FitNets hint MSE (through learned 1x1 adapters) and attention_weight * attention-transfer
    loss, each summed over `hint_pairs`. Softmax heads are tapped before the softmax on both models.
    Regression / autoencoder teachers use MSE on outputs: alpha * MSE(y, s) + (1 - alpha) * MSE(t, s).

    Args:
        teacher, student: tf_keras models with the same input and output shapes. The teacher is not
            changed; the student is trained in place and must not share weights with the teacher.
        x_train, y_train: samples, and optional labels (class indices or one-hot) or regression targets.
        x_val, y_val: validation data; when None, 10 % of the training data is held out (stratified).
        temperature: T for the soft targets. alpha: weight of the hard-label term.
        hint_pairs: [(student_layer, teacher_layer), ...]; None pairs block outputs of equal spatial size
            automatically (deepest first) when hint_weight or attention_weight is > 0.
        patience: epochs without a better validation score before stopping (score: accuracy against the
            labels, else agreement with the teacher, ties broken by loss; val loss for regression).
        seed: seeds Python, NumPy and TF (tf_keras.utils.set_random_seed) and the shuffling.
        verbose: 0 quiet, 1 Keras progress bar, 2 one line per epoch, 3 one line per epoch with an ETA on
            stderr (edgekit.distill.epoch_progress).
        task: 'auto', 'classification', 'binary' (sigmoid outputs) or 'regression'.
        lr_schedule: 'cosine' (decay over all epochs) or 'plateau' (halve on a val-loss plateau).
        augment: 'none', 'auto' (the kind from the input shape), 'signal', 'image' or 'spectrogram': each
            training batch is augmented in the training step (edgekit.distill.augment) and the teacher labels
            the augmented batch (consistent teaching); teacher outputs are cached only with 'none'.
        mixup: Beta(mixup, mixup) mixup of inputs and labels on top of `augment` (0: off).
        flip: also mirror images left-right (augment='image' only; not for digits or text).
        strategy: None (the process's `edgekit.distill.strategy.activate`d one, else none), 'none', 'mirrored',
            'multiworker' (TF_CONFIG) or a tf.distribute strategy; batch_size stays the global batch.
    Raises:
        BadInputError / UnsupportedModelError: one line naming the argument or layer at fault.
    """
    from edgekit.distill.trainer import distill_models

    return distill_models(teacher, student, x_train, y_train, x_val, y_val, temperature=temperature, alpha=alpha,
                          hint_weight=hint_weight, attention_weight=attention_weight, hint_pairs=hint_pairs,
                          epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, patience=patience,
                          seed=seed, verbose=verbose, task=task, lr_schedule=lr_schedule, augment=augment,
                          mixup=mixup, flip=flip, strategy=strategy)


__all__ = ["DistillResult", "distill"]
