"""Channel dependency groups: hand-built IR graphs (no TensorFlow) for each coupling rule, then the
groups of real reference models, then channel selection and the predicted costs of a choice."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.channels.groups import ROLE_CHANNELWISE, ROLE_IN, ROLE_OUT, build_groups
from edgekit.channels.keep import Targets, keep_for_target, select_keep, shrink_graph
from edgekit.costmodel.layer_costs import analyze
from edgekit.errors import BadInputError, DoesNotFitError
from edgekit.ir.graph import Graph, Node, Tensor, Weight


def conv(name, x, y, cin, cout, k=3, **attrs):
    weights = (Weight(f"{name}/kernel", (k, k, cin, cout), "kernel"), Weight(f"{name}/bias", (cout,), "bias"))
    return Node(name, "Conv2D", (x,), (y,), {"filters": cout, **attrs}, weights)


def dense(name, x, y, cin, cout):
    return Node(name, "Dense", (x,), (y,), {"units": cout},
                (Weight(f"{name}/kernel", (cin, cout), "kernel"), Weight(f"{name}/bias", (cout,), "bias")))


def bn(name, x, y, c):
    return Node(name, "BatchNormalization", (x,), (y,), {"axis": -1},
                tuple(Weight(f"{name}/{r}", (c,), r) for r in ("gamma", "beta", "moving_mean", "moving_variance")))


def graph(tensors, nodes, inputs=("x",), outputs=("y",)):
    return Graph.build([Tensor(n, s) for n, s in tensors.items()], nodes, inputs, outputs)


def sources(groups):
    return sorted(g.sources for g in groups.prunable_groups)


def group_of(groups, source):
    return next(g for g in groups.groups if source in g.sources)


def refs(group, node):
    return [(m.role, m.slots, m.units) for m in group.members if m.node == node]


# --------------------------------------------------------------------------------------------- rules on the IR


def test_residual_add_ties_both_producers_and_bn_into_one_group():
    g = graph({"x": (8, 8, 3), "a": (8, 8, 4), "b": (8, 8, 4), "c": (8, 8, 4), "s": (8, 8, 4), "p": (4,),
               "y": (2,)},
              [conv("c1", "x", "a", 3, 4), bn("bn", "a", "b", 4), conv("c2", "b", "c", 4, 4),
               Node("add", "Add", ("b", "c"), ("s",)), Node("gap", "GlobalAveragePooling2D", ("s",), ("p",)),
               dense("fc", "p", "y", 4, 2)])
    groups = build_groups(g)
    assert sources(groups) == [("c1", "c2")]
    grp = group_of(groups, "c1")
    assert grp.size == 4 and grp.frozen_units == frozenset()
    assert refs(grp, "bn") == [(ROLE_CHANNELWISE, (0, 1, 2, 3), (0, 1, 2, 3))]
    assert refs(grp, "fc") == [(ROLE_IN, (0, 1, 2, 3), (0, 1, 2, 3))]
    assert sorted(r[0] for r in refs(grp, "c2")) == [ROLE_IN, ROLE_OUT]


def test_concatenate_keeps_each_input_at_its_channel_offset():
    g = graph({"x": (8, 8, 3), "a": (8, 8, 2), "b": (8, 8, 5), "c": (8, 8, 7), "d": (8, 8, 4), "y": (8, 8, 4)},
              [conv("ca", "x", "a", 3, 2), conv("cb", "x", "b", 3, 5),
               Node("cat", "Concatenate", ("a", "b"), ("c",), {"axis": -1}), conv("next", "c", "d", 7, 4),
               Node("relu", "ReLU", ("d",), ("y",))])
    groups = build_groups(g)
    a, b = group_of(groups, "ca"), group_of(groups, "cb")
    assert [(m.offset, m.units) for m in a.members if m.node == "next"] == [(0, (0, 1))]
    assert [(m.offset, m.units) for m in b.members if m.node == "next"] == [(2, (0, 1, 2, 3, 4))]
    keep = {a.id: frozenset({1}), b.id: frozenset({0, 4})}
    assert groups.kept_mask("c", keep) == (False, True, True, False, False, False, True)
    shrunk = shrink_graph(groups, keep)
    assert shrunk.node("next").weights[0].shape == (3, 3, 3, 4)
    assert shrunk.tensors["c"].shape == (8, 8, 3)


def test_concatenate_along_a_spatial_axis_ties_channels_like_a_merge():
    g = graph({"x": (8, 8, 3), "a": (8, 8, 4), "b": (8, 8, 4), "c": (16, 8, 4), "y": (16, 8, 4)},
              [conv("ca", "x", "a", 3, 4), conv("cb", "x", "b", 3, 4),
               Node("cat", "Concatenate", ("a", "b"), ("c",), {"axis": 1}), Node("r", "ReLU", ("c",), ("y",))])
    groups = build_groups(g)
    assert sources(groups) == []  # tied into one group, which reaches the model output: frozen
    assert group_of(groups, "ca").sources == ("ca", "cb")


def test_flatten_into_dense_maps_each_channel_to_its_spatial_rows():
    g = graph({"x": (3, 3, 1), "a": (3, 3, 2), "f": (18,), "y": (4,)},
              [conv("c", "x", "a", 1, 2), Node("flat", "Flatten", ("a",), ("f",)), dense("fc", "f", "y", 18, 4)])
    groups = build_groups(g)
    grp = group_of(groups, "c")
    [(role, slots, units)] = refs(grp, "fc")
    assert role == ROLE_IN and slots == tuple(range(18)) and units == (0, 1) * 9
    shrunk = shrink_graph(groups, {grp.id: frozenset({1})})
    assert shrunk.node("fc").weights[0].shape == (9, 4)
    assert analyze(shrunk).macs == 9 * 1 * 1 * 9 + 9 * 4  # conv 3x3 on 1 channel -> 1 filter; dense 9 x 4


def test_reshape_keeping_channels_last_resizes_its_target_shape():
    g = graph({"x": (4, 4, 2), "a": (4, 4, 6), "r": (16, 6), "y": (16, 3)},
              [conv("c", "x", "a", 2, 6),
               Node("rs", "Reshape", ("a",), ("r",), {"target_shape": (16, 6)}),
               Node("fc", "Dense", ("r",), ("y",), {"units": 3}, (Weight("k", (6, 3), "kernel"),))])
    groups = build_groups(g)
    grp = group_of(groups, "c")
    shrunk = shrink_graph(groups, {grp.id: frozenset({0, 2, 5})})
    assert shrunk.node("rs").attrs["target_shape"] == (16, 3)
    assert shrunk.node("fc").weights[0].shape == (3, 3)


def test_depthwise_multiplier_repeats_each_input_channel():
    dw = Node("dw", "DepthwiseConv2D", ("a",), ("d",), {"depth_multiplier": 2},
              (Weight("dw/depthwise_kernel", (3, 3, 3, 2), "depthwise_kernel"), Weight("dw/bias", (6,), "bias")))
    g = graph({"x": (8, 8, 1), "a": (8, 8, 3), "d": (8, 8, 6), "e": (8, 8, 4), "y": (8, 8, 4)},
              [conv("c", "x", "a", 1, 3), dw, conv("pw", "d", "e", 6, 4, k=1), Node("r", "ReLU", ("e",), ("y",))])
    groups = build_groups(g)
    grp = group_of(groups, "c")
    assert refs(grp, "pw") == [(ROLE_IN, tuple(range(6)), (0, 0, 1, 1, 2, 2))]
    shrunk = shrink_graph(groups, {grp.id: frozenset({1})})
    assert shrunk.node("dw").weights[0].shape == (3, 3, 1, 2)
    assert shrunk.node("dw").weights[1].shape == (2,)
    assert shrunk.node("pw").weights[0].shape == (1, 1, 2, 4)


def test_squeeze_excite_multiply_ties_gate_to_features_and_broadcast_input_ties_nothing():
    g = graph({"x": (8, 8, 3), "f": (8, 8, 6), "p": (1, 1, 6), "r": (1, 1, 2), "s": (1, 1, 6), "m": (8, 8, 6),
               "one": (8, 8, 1), "m2": (8, 8, 6), "y": (6,)},
              [conv("feat", "x", "f", 3, 6), Node("pool", "GlobalAveragePooling2D", ("f",), ("p",), {"keepdims": True}),
               conv("reduce", "p", "r", 6, 2, k=1), conv("expand", "r", "s", 2, 6, k=1),
               Node("scale", "Multiply", ("f", "s"), ("m",)), conv("gate1", "x", "one", 3, 1, k=1),
               Node("scale2", "Multiply", ("m", "one"), ("m2",)), Node("gap", "GlobalMaxPooling2D", ("m2",), ("y",))],
              outputs=("y", "r"))
    groups = build_groups(g)
    assert group_of(groups, "feat").sources == ("feat", "expand")
    assert group_of(groups, "gate1").sources == ("gate1",)
    assert not group_of(groups, "reduce").prunable  # "r" is also a model output


def test_unknown_layer_freezes_what_it_touches_and_says_why():
    g = graph({"x": (8, 8, 3), "a": (8, 8, 4), "b": (8, 8, 4), "c": (8, 8, 5), "y": (8, 8, 5)},
              [conv("c1", "x", "a", 3, 4), Node("lam", "Lambda", ("a",), ("b",)), conv("c2", "b", "c", 4, 5),
               Node("r", "ReLU", ("c",), ("y",))])
    groups = build_groups(g)
    assert sources(groups) == []
    frozen = {f.node: f.reason for f in groups.frozen_layers}
    assert "Lambda is not a layer the pruner can follow" in frozen["lam"]
    assert frozen["r"] == "model output"
    assert any("read by lam" in r for r in group_of(groups, "c1").frozen_reasons)


@pytest.mark.parametrize("node, reason", [
    (Node("g", "Conv2D", ("a",), ("b",), {"groups": 2}, (Weight("k", (3, 3, 2, 4), "kernel"),)), "grouped"),
    (Node("s", "Softmax", ("a",), ("b",), {"axis": -1}), "softmax"),
    (Node("t", "Conv2D", ("a",), ("b",), {"data_format": "channels_first"}, (Weight("k", (3, 3, 4, 4), "kernel"),)),
     "channels_first"),
    (Node("n", "BatchNormalization", ("a",), ("b",), {"axis": 1}, (Weight("g", (8,), "gamma"),)), "axis 1"),
])
def test_layers_the_rules_do_not_cover_are_frozen(node, reason):
    g = graph({"x": (8, 8, 3), "a": (8, 8, 4), "b": (8, 8, 4), "y": (4,)},
              [conv("c", "x", "a", 3, 4), node, Node("gap", "GlobalAveragePooling2D", ("b",), ("y",))])
    groups = build_groups(g)
    assert not group_of(groups, "c").prunable
    assert reason in {f.node: f.reason for f in groups.frozen_layers}[node.name]


def test_shared_layer_is_frozen():
    shared = [Node("c", "Conv2D", ("x",), ("a",), {}, (Weight("k", (1, 1, 3, 4), "kernel"),)),
              Node("c:1", "Conv2D", ("x2",), ("b",), {}, (Weight("k", (1, 1, 3, 4), "kernel"),))]
    g = Graph.build([Tensor("x", (4, 4, 3)), Tensor("x2", (4, 4, 3)), Tensor("a", (4, 4, 4)),
                     Tensor("b", (4, 4, 4)), Tensor("s", (4, 4, 4)), Tensor("y", (4, 4, 2))],
                    [*shared, Node("add", "Add", ("a", "b"), ("s",)), conv("out", "s", "y", 4, 2, k=1)],
                    ["x", "x2"], ["y"])
    groups = build_groups(g)
    assert sources(groups) == []
    assert "shared layer (applied 2 times)" in {f.node: f.reason for f in groups.frozen_layers}["c"]


# --------------------------------------------------------------------------------------------- real models


def test_reference_model_groups():
    from edgekit.examples import zoo
    from edgekit.ir.from_keras import from_keras

    resnet = build_groups(from_keras(zoo.resnet8()))
    assert sources(resnet) == [("b0_conv1",), ("b1_conv1",), ("b1_conv2", "b1_proj"), ("b2_conv1",),
                               ("b2_conv2", "b2_proj"), ("stem", "b0_conv2")]  # identity and projection shortcuts
    xcep = build_groups(from_keras(zoo.xception_like()))
    assert ("stem", "sep0_b", "sep1_b") in sources(xcep)
    concat = build_groups(from_keras(zoo.concat_se_net()))
    assert ("conv", "se_expand") in sources(concat)
    mobile = build_groups(from_keras(zoo.mobilenet_v2()))
    assert ("block_3_project", "block_4_project", "block_5_project") in sources(mobile)
    assert [f.node for f in mobile.frozen_layers] == ["logits"]
    depthwise = group_of(mobile, "block_1_expand")
    assert [m.node for m in depthwise.members if m.role == ROLE_CHANNELWISE] == [
        "block_1_expand_BN", "block_1_depthwise", "block_1_depthwise_BN"]


# --------------------------------------------------------------------------------------------- selection


def chain(widths=(8, 8)):
    """x(4) -> fc0 -> fc1 -> ... -> out(2): one prunable group per hidden layer."""
    tensors = {"x": (4,)}
    nodes, prev, cin = [], "x", 4
    for i, w in enumerate(widths):
        tensors[f"h{i}"] = (w,)
        nodes.append(dense(f"fc{i}", prev, f"h{i}", cin, w))
        prev, cin = f"h{i}", w
    tensors["y"] = (2,)
    nodes.append(dense("out", prev, "y", cin, 2))
    return build_groups(graph(tensors, nodes))


def test_per_group_ratio_keeps_the_highest_scores():
    groups = chain()
    g0, g1 = (group_of(groups, f"fc{i}").id for i in range(2))
    scores = {g0: np.array([5, 1, 7, 3, 0, 2, 6, 4.0]), g1: np.arange(8.0)}
    keep = select_keep(groups, scores, 0.5, global_ranking=False)
    assert keep[g0] == frozenset({0, 2, 6, 7}) and keep[g1] == frozenset({4, 5, 6, 7})


def test_global_ranking_normalises_per_group_and_respects_min_channels_and_round_to():
    groups = chain()
    g0, g1 = (group_of(groups, f"fc{i}").id for i in range(2))
    # g0: one strong channel, the rest weak; g1: all alike. Globally, g0 loses more.
    scores = {g0: np.array([100, 1, 1, 1, 1, 1, 1, 1.0]), g1: np.full(8, 3.0)}
    keep = select_keep(groups, scores, 0.5)
    assert len(keep[g0]) == 1 and len(keep[g1]) == 7 and 0 in keep[g0]
    keep = select_keep(groups, scores, 0.5, min_channels=3)
    assert len(keep[g0]) == 3 and len(keep[g0]) + len(keep[g1]) == 8
    keep = select_keep(groups, scores, 0.5, min_channels=3, round_to=4)
    assert (len(keep[g0]), len(keep[g1])) == (4, 8)


def test_select_keep_rejects_bad_ratio():
    groups = chain()
    with pytest.raises(BadInputError, match="between 0 and 1"):
        select_keep(groups, {g.id: np.ones(g.size) for g in groups.prunable_groups}, 1.5)


def test_target_search_reaches_the_budget_with_the_least_pruning():
    groups = chain((16, 16))
    scores = {g.id: np.arange(g.size, dtype=float) for g in groups.prunable_groups}
    start = analyze(groups.graph).macs  # 4*16 + 16*16 + 16*2 = 352
    keep, ratio = keep_for_target(groups, scores, Targets(macs=start // 2))
    macs = analyze(shrink_graph(groups, keep)).macs
    assert macs <= start // 2
    assert 0 < ratio < 1
    looser = select_keep(groups, scores, ratio - 0.05)  # a little less pruning no longer fits
    assert analyze(shrink_graph(groups, looser)).macs > start // 2
    # At one channel per group: 4*1 + 1*1 + 1*2 = 7 MACs is the floor.
    assert analyze(shrink_graph(groups, keep_for_target(groups, scores, Targets(macs=7))[0])).macs == 7
    with pytest.raises(DoesNotFitError, match="cannot reach MACs 6: .* still has 7 MACs"):
        keep_for_target(groups, scores, Targets(macs=6))
    both = Targets(macs=300, params=200)
    keep, _ = keep_for_target(groups, scores, both)
    shrunk = analyze(shrink_graph(groups, keep))
    assert shrunk.macs <= 300 and shrunk.params <= 200
