"""Channel importance criteria: each is a function over one channel group, returning a score per unit.

    >>> scores = group_scores(groups, "l1", ImportanceInputs(groups, weights))   # doctest: +SKIP

Criteria (higher = more important):
    l1      sum of |w| over every weight producing the channel (its conv / dense filter, its depthwise
            filters; Li et al. 2017 generalised to a group: a residual channel sums all its producers).
            A channel whose producing weights are all zero scores 0 and goes first. Behind a
            BatchNormalization the filter's scale says little (BN renormalises): prefer bn or taylor there
    l2      the same weights' L2 norm
    bn      sum of |gamma| of the BatchNormalizations in the group (Liu et al. 2017, network slimming);
            a group without BatchNormalization is ranked by l1 and the notices say so
    taylor  first-order Taylor: mean over samples of |sum over positions of activation x gradient|
            (Molchanov et al. 2017), summed over the group's tensors; needs data (see taylor_inputs)

The weight criteria read plain numpy arrays (`ImportanceInputs`), so they are testable without
TensorFlow; only `taylor_inputs` runs the model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from edgekit.channels.axes import weight_axes
from edgekit.channels.criteria import CRITERIA
from edgekit.channels.groups import ROLE_CHANNELWISE, ROLE_OUT, ChannelGroup, ChannelGroups
from edgekit.channels.sequence import BACKWARD, RECURRENT_OUT_KINDS, direction_offset, internal_kind
from edgekit.errors import BadInputError
from edgekit.ir.ops import KERNEL_ROLES
from edgekit.ir.sequence import gates, recurrent_op


@dataclass(frozen=True)
class ImportanceInputs:
    """What criteria read: the groups, weights per node (in node.weights order), Taylor slot scores."""

    groups: ChannelGroups
    weights: Mapping[str, tuple[np.ndarray, ...]]
    # tensor -> per-channel-slot mean |sum(activation * gradient)|, for the taylor criterion
    activation_gradients: Mapping[str, np.ndarray] = field(default_factory=dict)


Criterion = Callable[[ChannelGroup, ImportanceInputs], "np.ndarray | None"]


def _scatter(slots: tuple[int, ...], units: tuple[int, ...], per_slot: np.ndarray, into: np.ndarray) -> None:
    np.add.at(into, np.asarray(units, dtype=np.int64), per_slot[np.asarray(slots, dtype=np.int64)])


def _producing_weight_sums(group: ChannelGroup, inputs: ImportanceInputs, power: float) -> np.ndarray:
    """Per unit: sum of |w|**power over the kernels that produce the unit's channels."""
    graph = inputs.groups.graph
    total = np.zeros(group.size, np.float64)
    for ref in group.members:
        if ref.role not in (ROLE_OUT, ROLE_CHANNELWISE):
            continue
        node = graph.node(ref.node)
        kinds = _producing_kinds(ref)
        for w, array in zip(node.weights, inputs.weights.get(ref.node, ())):
            if w.role not in KERNEL_ROLES:
                continue
            for axis, axis_kind in weight_axes(node, w).items():
                if axis_kind in kinds:
                    per_slot = np.sum(np.abs(np.moveaxis(np.asarray(array, np.float64), axis, -1)) ** power,
                                      axis=tuple(range(array.ndim - 1)))
                    if axis_kind in ("gates", "gates" + BACKWARD):  # a column per gate block: fold onto units
                        per_slot = per_slot.reshape(gates(recurrent_op(node)), -1).sum(axis=0)
                    if axis_kind.endswith(BACKWARD):  # a Bidirectional's backward units: their output slots
                        per_slot = np.pad(per_slot, (direction_offset(node, axis_kind), 0))
                    _scatter(ref.slots, ref.units, _padded(per_slot, max(ref.slots) + 1), total)
    return total


def _producing_kinds(ref) -> tuple[str, ...]:
    """Weight axis kinds holding a ref's channels: an internal set's own kind (heads ...), out and gates."""
    internal = internal_kind(ref.tensor)
    if internal is not None:
        return (internal,)
    return RECURRENT_OUT_KINDS if ref.role == ROLE_OUT else ("in",)


def _padded(per_slot: np.ndarray, width: int) -> np.ndarray:
    """Zeros for the slots a weight does not produce (a Bidirectional's forward weights vs. backward slots)."""
    return per_slot if len(per_slot) >= width else np.pad(per_slot, (0, width - len(per_slot)))


def l1_norm(group: ChannelGroup, inputs: ImportanceInputs) -> np.ndarray:
    """Sum of |w| over every kernel weight producing each channel of the group."""
    return _producing_weight_sums(group, inputs, 1.0)


def l2_norm(group: ChannelGroup, inputs: ImportanceInputs) -> np.ndarray:
    """L2 norm of all kernel weights producing each channel of the group."""
    return np.sqrt(_producing_weight_sums(group, inputs, 2.0))


def bn_scale(group: ChannelGroup, inputs: ImportanceInputs) -> np.ndarray | None:
    """Sum of |gamma| over the group's BatchNormalizations; None when the group has none."""
    graph = inputs.groups.graph
    total = np.zeros(group.size, np.float64)
    found = False
    for ref in group.members:
        node = graph.node(ref.node)
        if node.op != "BatchNormalization":
            continue
        for w, array in zip(node.weights, inputs.weights.get(ref.node, ())):
            if w.role == "gamma":
                _scatter(ref.slots, ref.units, np.abs(np.asarray(array, np.float64)), total)
                found = True
    return total if found else None


def taylor(group: ChannelGroup, inputs: ImportanceInputs) -> np.ndarray | None:
    """Sum of per-slot |activation x gradient| scores over the tensors carrying the group's channels."""
    graph = inputs.groups.graph
    tensors = []
    for ref in group.members:
        if ref.role == ROLE_OUT:
            tensors.append(ref.tensor)
        elif ref.role == ROLE_CHANNELWISE and graph.node(ref.node).outputs:
            tensors.append(graph.node(ref.node).outputs[0])
    total = np.zeros(group.size, np.float64)
    found = False
    for t in dict.fromkeys(tensors):
        scores = inputs.activation_gradients.get(t)
        if scores is None:
            continue
        for slot, (gid, unit) in enumerate(inputs.groups.slot_units[t]):
            if gid == group.id:
                total[unit] += float(scores[slot])
                found = True
    return total if found else None


CRITERION_FUNCTIONS: dict[str, Criterion] = {"l1": l1_norm, "l2": l2_norm, "bn": bn_scale, "taylor": taylor}


def group_scores(groups: ChannelGroups, criterion: str, inputs: ImportanceInputs
                 ) -> tuple[dict[int, np.ndarray], tuple[str, ...]]:
    """Scores per prunable group by `criterion`, and notices (groups ranked by l1 instead, and why)."""
    if criterion not in CRITERION_FUNCTIONS:
        raise BadInputError(f"unknown importance {criterion!r}; use one of {', '.join(CRITERIA)}")
    fn = CRITERION_FUNCTIONS[criterion]
    scores: dict[int, np.ndarray] = {}
    fallback = []
    for group in groups.prunable_groups:
        score = fn(group, inputs)
        if score is None:
            score = l1_norm(group, inputs)
            fallback.append(group)
        scores[group.id] = score
    notices = ()
    if fallback:
        names = ", ".join("+".join(g.sources) for g in fallback[:6]) + (" ..." if len(fallback) > 6 else "")
        why = "no BatchNormalization" if criterion == "bn" else "no activation reachable for gradients"
        notices = (f"{len(fallback)} channel group(s) have {why} and were ranked by l1 instead: {names}",)
    return scores, notices


# --------------------------------------------------------------------------------------------- taylor (TF)


def taylor_inputs(model, groups: ChannelGroups, x: np.ndarray, y: np.ndarray | None, batch_size: int = 64
                  ) -> dict[str, np.ndarray]:
    """Per tensor and channel slot: mean over samples of |sum over positions of activation x dLoss/dact|.

    The loss is the one fine-tuning uses (edgekit.prune.training.taylor_objective): labels when given,
    else the model's own top class (classifiers) or its input (autoencoders).
    """
    from edgekit._tf import tensorflow, tf_keras
    from edgekit.prune.surgery import ir_tensor_names
    from edgekit.prune.training import taylor_objective

    tf, keras = tensorflow(), tf_keras()
    wanted = set()
    for group in groups.prunable_groups:
        for ref in group.members:
            node = groups.graph.node(ref.node)
            if ref.role == ROLE_OUT:
                wanted.add(ref.tensor)
            elif ref.role == ROLE_CHANNELWISE and node.outputs:
                wanted.add(node.outputs[0])
    by_name = _reachable_tensors(model, ir_tensor_names(model))
    names = sorted(t for t in wanted if t in by_name)
    if not names:
        return {}
    taps = keras.Model(model.inputs, [*model.outputs, *(by_name[t] for t in names)])
    loss_fn, targets = taylor_objective(model, x, y)
    n_out = len(model.outputs)
    sums = [np.zeros(by_name[t].shape[-1], np.float64) for t in names]
    for start in range(0, len(x), batch_size):
        xb = tf.constant(x[start:start + batch_size])
        with tf.GradientTape() as tape:
            outs = taps(xb, training=False)
            outs = outs if isinstance(outs, (list, tuple)) else [outs]
            loss = loss_fn(targets[start:start + batch_size], outs[0])
        acts = list(outs[n_out:])
        grads = tape.gradient(loss, acts)
        for i, (a, g) in enumerate(zip(acts, grads)):
            if g is None:
                continue
            # The loss is a batch mean: scale by the batch size for each sample's own gradient.
            contribution = tf.reduce_sum(tf.reshape(a * g, (tf.shape(a)[0], -1, a.shape[-1])), axis=1)
            sums[i] += np.abs(contribution.numpy()).sum(axis=0) * int(xb.shape[0])
    return {t: s / len(x) for t, s in zip(names, sums)}


def _reachable_tensors(model, tensor_names: Mapping[int, str]) -> dict[str, object]:
    """IR name -> keras tensor for the tensors of the top-level model (inside nested models: outputs only)."""
    out = {}
    for depth in model._nodes_by_depth:
        for node in model._nodes_by_depth[depth]:
            flat = node.output_tensors if isinstance(node.output_tensors, (list, tuple)) else [node.output_tensors]
            for kt in flat:
                name = tensor_names.get(id(kt))
                if name is not None:
                    out[name] = kt
    return out
