"""Weight sparsity through tfmot (unstructured magnitude, m:n such as 2:4) and channel-sparsity training.

    >>> result = sparsify(model, 0.5)                          # doctest: +SKIP  one-shot, no data
    >>> result = sparsify(model, pattern="2:4", data=(x, y))   # doctest: +SKIP  with fine-tuning
    >>> result.model, result.layers[0].sparsity                # doctest: +SKIP

Sparsity keeps every tensor's shape: a TFLite model of a sparse network is as large and as fast as the
dense one (unless compressed for transport, or run by a kernel that skips zeros). Structured pruning
(`edgekit.prune.prune`) is what shrinks a model. `train_with_channel_l1` is the bridge between the two:
a penalty that drives whole channels towards zero, so structured removal afterwards loses less.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from edgekit.channels.groups import ROLE_CHANNELWISE, ROLE_OUT, ChannelGroups
from edgekit.errors import BadInputError

SCHEDULES = ("constant", "polynomial")
_SCHEDULE_UPDATES = 20  # polynomial: masks updated about this many times over the fine-tuning


@dataclass(frozen=True)
class LayerSparsity:
    name: str
    op: str
    weights: int          # elements of the pruned kernel
    zeros: int

    @property
    def sparsity(self) -> float:
        return self.zeros / self.weights if self.weights else 0.0


@dataclass(frozen=True)
class SparsityResult:
    """A stripped (plain tf_keras) model with zeroed weights, per-layer sparsity, and notices."""

    model: object
    pattern: str
    target_sparsity: float
    layers: tuple[LayerSparsity, ...]
    notices: tuple[str, ...] = ()

    @property
    def sparsity(self) -> float:
        """Zeros over all sparsified kernels."""
        total = sum(layer.weights for layer in self.layers)
        return sum(layer.zeros for layer in self.layers) / total if total else 0.0


def parse_pattern(pattern: str) -> tuple[int, int] | None:
    """'unstructured' -> None; '2:4' -> (2, 4) (2 zeros in every 4 consecutive input-channel weights)."""
    if pattern == "unstructured":
        return None
    match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", pattern)
    if not match or not 0 < int(match[1]) < int(match[2]):
        raise BadInputError(f"sparsity pattern {pattern!r}: use 'unstructured' or 'm:n' with 0 < m < n (e.g. 2:4)")
    return int(match[1]), int(match[2])


def private_copy(model):
    """A new tf_keras model with the same architecture and weights (so `model` is never touched)."""
    from edgekit._tf import tf_keras

    copy = tf_keras().models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def sparsify(model, sparsity: float = 0.5, *, pattern: str = "unstructured", schedule: str = "polynomial",
             data: tuple[np.ndarray, np.ndarray | None] | None = None, epochs: int = 2, batch_size: int = 64,
             learning_rate: float = 1e-4, seed: int = 0) -> SparsityResult:
    """Zero the smallest weights with tfmot's prune_low_magnitude; returns the stripped model.

    pattern "unstructured": `sparsity` of each kernel's weights; "m:n": m of every n (tfmot's
    sparsity_m_by_n, applied to rank-2 and rank-4 kernels: Dense, Conv2D, separable pointwise; others
    are skipped and named in the notices). With data=(x, y) the model is fine-tuned for `epochs` while
    the masks follow `schedule` (PolynomialDecay from 0, or ConstantSparsity); without data the masks
    are applied once, with no training. y None fine-tunes towards the original model's outputs.
    """
    from edgekit._tf import tf_keras

    keras = tf_keras()
    import tensorflow_model_optimization as tfmot

    m_by_n = parse_pattern(pattern)
    if m_by_n is None and not 0.0 <= sparsity < 1.0:
        raise BadInputError(f"sparsity must be in [0, 1), got {sparsity}")
    if schedule not in SCHEDULES:
        raise BadInputError(f"unknown sparsity schedule {schedule!r}; use {' or '.join(SCHEDULES)}")
    if m_by_n is not None:
        sparsity = m_by_n[0] / m_by_n[1]
    steps = 0
    if data is not None:
        steps = max(1, epochs * int(np.ceil(len(data[0]) / batch_size)))
    frequency = max(1, steps // _SCHEDULE_UPDATES)
    end_step = max(frequency, frequency * (steps // frequency))
    if schedule == "polynomial" and steps:
        sched = tfmot.sparsity.keras.PolynomialDecay(0.0, sparsity, begin_step=0, end_step=end_step,
                                                     frequency=frequency)
    else:
        sched = tfmot.sparsity.keras.ConstantSparsity(sparsity, begin_step=0, frequency=frequency)

    notices = []
    work = private_copy(model)

    def wrap(layer):
        if not _prunable_weights(layer):
            return layer
        if m_by_n is not None and any(len(w.shape) not in (2, 4) for w in _prunable_weights(layer)):
            notices.append(f"{layer.name} ({type(layer).__name__}): {pattern} needs rank-2 or rank-4 kernels "
                           "(tfmot's m:n layout); left dense")
            return layer
        return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=sched, sparsity_m_by_n=m_by_n)

    wrapped = keras.models.clone_model(work, clone_function=wrap)
    wrappers = [layer for layer in wrapped.layers if hasattr(layer, "pruning_obj")]
    if not wrappers:
        raise BadInputError(f"model {model.name!r} has no layer tfmot can sparsify (Conv, Dense ...)")
    if data is not None:
        from edgekit.prune.training import fine_tune

        x, y = data
        fine_tune(wrapped, x, y, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                  teacher=model, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()], seed=seed)
    for layer in wrappers:  # the final masks, at the schedule's last step (the only step without data)
        layer.pruning_step.assign(end_step if m_by_n is None else 1)
        layer.pruning_obj.conditional_mask_update()
        layer.pruning_obj.weight_mask_op()
    stripped = tfmot.sparsity.keras.strip_pruning(wrapped)
    if data is None:
        notices.append("no data: masks applied once by weight magnitude, without fine-tuning")
    return SparsityResult(stripped, pattern, float(sparsity), _layer_sparsity(stripped, wrappers), tuple(notices))


def _prunable_weights(layer) -> list:
    """The weights tfmot prunes in this layer (its registry's list); [] for layers it leaves alone."""
    from tensorflow_model_optimization.python.core.sparsity.keras import prune_registry

    names = prune_registry.PruneRegistry._LAYERS_WEIGHTS_MAP.get(layer.__class__, [])
    return [getattr(layer, name) for name in names if getattr(layer, name, None) is not None]


_PRUNED_NAMES = ("kernel", "pointwise_kernel", "embeddings")


def _layer_sparsity(model, wrappers) -> tuple[LayerSparsity, ...]:
    names = {w.layer.name for w in wrappers}
    out = []
    for layer in model.layers:
        if layer.name not in names:
            continue
        for w in layer.weights:
            if w.name.split("/")[-1].split(":")[0] in _PRUNED_NAMES:
                array = w.numpy()
                out.append(LayerSparsity(layer.name, type(layer).__name__, int(array.size),
                                         int(np.count_nonzero(array == 0))))
    return tuple(out)


# --------------------------------------------------------------------------------------------- channel L1


def channel_l1_penalty(model, groups: ChannelGroups, strength: float):
    """A zero-argument callable: strength x (sum of |gamma| of the BNs in prunable groups, plus, for groups
    without BN, the sum over channels of the L2 norm of each producing filter: a group lasso).

    Both push whole channels of `model` (the model `groups` was built from) towards zero.
    """
    from edgekit._tf import tensorflow
    from edgekit.prune.surgery import layer_at

    tf = tensorflow()
    gammas, filters = [], []
    for group in groups.prunable_groups:
        bns = [m for m in group.members if m.role == ROLE_CHANNELWISE
               and groups.graph.node(m.node).op == "BatchNormalization"]
        if bns:
            gammas.extend(layer_at(model, m.node).gamma for m in bns if getattr(layer_at(model, m.node), "gamma",
                                                                              None) is not None)
            continue
        for m in group.members:
            if m.role == ROLE_OUT:
                layer = layer_at(model, m.node)
                kernel = getattr(layer, "pointwise_kernel", None)
                filters.append(kernel if kernel is not None else getattr(layer, "kernel", None))
    gammas = list({id(g): g for g in gammas}.values())
    filters = list({id(f): f for f in filters if f is not None}.values())

    def penalty():
        terms = [tf.reduce_sum(tf.abs(g)) for g in gammas]
        for k in filters:
            flat = tf.reshape(k, (-1, k.shape[-1]))
            terms.append(tf.reduce_sum(tf.sqrt(tf.reduce_sum(tf.square(flat), axis=0) + 1e-12)))
        return strength * tf.add_n(terms) if terms else tf.constant(0.0)

    return penalty


def train_with_channel_l1(model, groups: ChannelGroups, x: np.ndarray, y: np.ndarray | None, *, strength: float,
                          epochs: int, batch_size: int = 64, learning_rate: float = 1e-3, teacher=None,
                          seed: int = 0):
    """A trained copy of `model` (the original is untouched) after `epochs` with channel_l1_penalty added."""
    from edgekit.prune.training import fine_tune

    work = private_copy(model)
    work.add_loss(channel_l1_penalty(work, groups, strength))
    fine_tune(work, x, y, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
              teacher=teacher if teacher is not None else model, seed=seed)
    return work
