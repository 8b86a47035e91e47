"""Importance criteria: values by hand on IR graphs with known weights, Taylor against a numpy gradient,
and end to end: dead channels rank last under every criterion, so pruning them changes no output."""

from __future__ import annotations

import numpy as np
import pytest
from prune_helpers import random_keep, randomize_batchnorm, samples, zero_removed_channels

from edgekit.channels.groups import build_groups
from edgekit.errors import BadInputError
from edgekit.ir.from_keras import from_keras
from edgekit.ir.graph import Graph, Node, Tensor, Weight
from edgekit.prune import prune
from edgekit.prune.importance import ImportanceInputs, group_scores, taylor_inputs


def residual_graph():
    """c1 -> bn -> dw -> (+ c2) -> gap -> fc: c1 and c2 produce one group of 3 channels."""
    def w(name, shape, role):
        return Weight(name, shape, role)

    nodes = [
        Node("c1", "Conv2D", ("x",), ("a",), {}, (w("c1/kernel", (1, 1, 2, 3), "kernel"),)),
        Node("bn", "BatchNormalization", ("a",), ("b",), {"axis": -1},
             tuple(w(f"bn/{r}", (3,), r) for r in ("gamma", "beta", "moving_mean", "moving_variance"))),
        Node("dw", "DepthwiseConv2D", ("b",), ("d",), {"depth_multiplier": 1},
             (w("dw/depthwise_kernel", (1, 1, 3, 1), "depthwise_kernel"),)),
        Node("c2", "Conv2D", ("x",), ("e",), {}, (w("c2/kernel", (1, 1, 2, 3), "kernel"),)),
        Node("add", "Add", ("d", "e"), ("s",)),
        Node("gap", "GlobalAveragePooling2D", ("s",), ("p",)),
        Node("fc", "Dense", ("p",), ("y",), {}, (w("fc/kernel", (3, 2), "kernel"),)),
    ]
    shapes = {"x": (4, 4, 2), "a": (4, 4, 3), "b": (4, 4, 3), "d": (4, 4, 3), "e": (4, 4, 3), "s": (4, 4, 3),
              "p": (3,), "y": (2,)}
    return Graph.build([Tensor(n, s) for n, s in shapes.items()], nodes, ["x"], ["y"])


WEIGHTS = {
    "c1": (np.array([[[[1.0, -2.0, 0.0], [3.0, 0.0, 0.0]]]]),),
    "bn": (np.array([0.5, -2.0, 1.0]), np.zeros(3), np.zeros(3), np.ones(3)),
    "dw": (np.array([[[[2.0], [-1.0], [0.0]]]]),),
    "c2": (np.array([[[[0.0, 1.0, -1.0], [0.0, 1.0, 0.0]]]]),),
    "fc": (np.full((3, 2), 9.0),),  # reads the channels: not part of their importance
}


def scores_of(criterion, **extra):
    groups = build_groups(residual_graph())
    [group] = groups.prunable_groups
    scores, notices = group_scores(groups, criterion, ImportanceInputs(groups, WEIGHTS, **extra))
    return scores[group.id], notices


def test_l1_and_l2_sum_every_producing_filter_of_the_group():
    l1, _ = scores_of("l1")
    # unit 0: c1 |1|+|3|, dw |2|, c2 0; unit 1: c1 2, dw 1, c2 2; unit 2: c2 1
    np.testing.assert_allclose(l1, [6.0, 5.0, 1.0])
    l2, _ = scores_of("l2")
    np.testing.assert_allclose(l2, np.sqrt([1 + 9 + 4, 4 + 1 + 1 + 1, 1]))


def test_bn_scale_reads_gamma_and_falls_back_to_l1_without_batchnorm():
    bn, notices = scores_of("bn")
    np.testing.assert_allclose(bn, [0.5, 2.0, 1.0])
    assert notices == ()
    groups = build_groups(residual_graph())
    no_bn = {**WEIGHTS}
    graph = Graph.build(list(residual_graph().tensors.values()),
                        [n if n.name != "bn" else Node("bn", "ReLU", ("a",), ("b",)) for n in residual_graph().nodes],
                        ["x"], ["y"])
    groups = build_groups(graph)
    scores, notices = group_scores(groups, "bn", ImportanceInputs(groups, no_bn))
    np.testing.assert_allclose(next(iter(scores.values())), [6.0, 5.0, 1.0])
    assert "no BatchNormalization and were ranked by l1 instead: c1+c2" in notices[0]


def test_taylor_sums_slot_scores_of_the_group_tensors():
    grads = {t: np.array([1.0, 2.0, 3.0]) for t in ("a", "b", "d", "e")}
    taylor, _ = scores_of("taylor", activation_gradients=grads)
    # c1 out "a", c2 out "e", bn -> "b", dw -> "d": four tensors
    np.testing.assert_allclose(taylor, [4.0, 8.0, 12.0])


def test_unknown_criterion_is_refused():
    groups = build_groups(residual_graph())
    with pytest.raises(BadInputError, match="unknown importance 'l3'"):
        group_scores(groups, "l3", ImportanceInputs(groups, WEIGHTS))


def test_taylor_inputs_match_a_numpy_gradient(keras):
    L = keras.layers
    inp = keras.Input((5,))
    h = L.Dense(4, name="hidden")(inp)
    model = keras.Model(inp, L.Dense(3, name="logits")(L.ReLU(name="relu")(h)))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((13, 5)).astype("float32")
    y = rng.integers(0, 3, 13)
    groups = build_groups(from_keras(model))
    got = taylor_inputs(model, groups, x, y, batch_size=5)  # 5 + 5 + 3: uneven batches

    w1, b1 = model.get_layer("hidden").get_weights()
    w2, b2 = model.get_layer("logits").get_weights()
    a = x @ w1 + b1
    logits = np.maximum(a, 0) @ w2 + b2
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    g = ((p - np.eye(3)[y]) @ w2.T) * (a > 0)  # per-sample d loss / d a
    np.testing.assert_allclose(got["hidden"], np.abs(a * g).mean(0), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("criterion", ["l1", "l2", "bn", "taylor"])
def test_dead_channels_rank_last_so_pruning_them_is_exact(criterion):
    from edgekit.examples import zoo

    model = zoo.resnet8()
    randomize_batchnorm(model)
    groups = build_groups(from_keras(model))
    zero_removed_channels(model, groups, random_keep(groups, 0.5, seed=4))
    x = samples(model, 16)
    y = np.random.default_rng(0).integers(0, 10, 16)
    result = prune(model, 0.5, importance=criterion, global_ranking=False,
                   data=(x, y) if criterion == "taylor" else None)
    assert result.report.params_after < 0.5 * model.count_params()
    np.testing.assert_allclose(result.model.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_without_data_the_report_says_data_free(keras):
    from edgekit.examples import zoo

    report = prune(zoo.mlp(), 0.25).report
    assert report.data_free and report.importance == "l1"
    assert "no data: channels ranked by l1" in report.notices[0]
    with pytest.raises(BadInputError, match="taylor importance needs data"):
        prune(zoo.mlp(), 0.25, importance="taylor")
