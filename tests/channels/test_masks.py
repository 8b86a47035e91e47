"""The fast paths the planner runs once per cost evaluation give exactly what the straightforward computation
gives: kept-slot masks (one gather per tensor vs a lookup per slot), the shrunk IR (unchanged layers reused),
per-layer costs (cached on the layer) and the scheduler's ready sets (updated per op vs rescanned)."""

from __future__ import annotations

from itertools import permutations

import numpy as np

from edgekit.channels.axes import WIDTH_KEY, weight_axes
from edgekit.channels.groups import build_groups
from edgekit.channels.keep import new_reshape_target, node_masks, shrink_graph
from edgekit.channels.masks import kept_masks, mask_index
from edgekit.costmodel.layer_costs import analyze, layer_cost
from edgekit.costmodel.schedule import Dataflow, DataflowOp, _Model, best_order, is_valid_order, live_peak_bytes
from edgekit.ir.graph import Graph, Node, Tensor, Weight


def conv(name, x, y, cin, cout, k=3):
    return Node(name, "Conv2D", (x,), (y,), {"filters": cout},
                (Weight(f"{name}/kernel", (k, k, cin, cout), "kernel"), Weight(f"{name}/bias", (cout,), "bias")))


def bn(name, x, y, c):
    return Node(name, "BatchNormalization", (x,), (y,), {"axis": -1},
                tuple(Weight(f"{name}/{r}", (c,), r) for r in ("gamma", "beta", "moving_mean", "moving_variance")))


def branched_graph() -> Graph:
    """Residual add, channel concat, depthwise (multiplier 2), separable (multiplier 2), flatten + dense."""
    t = {"x": (8, 8, 3), "a": (8, 8, 6), "b": (8, 8, 6), "c": (8, 8, 6), "s": (8, 8, 6), "d": (8, 8, 12),
         "e": (8, 8, 5), "cat": (8, 8, 17), "f": (8, 8, 7), "p": (4, 4, 7), "fl": (112,), "y": (3,)}
    nodes = [
        conv("c1", "x", "a", 3, 6), bn("bn1", "a", "b", 6), conv("c2", "b", "c", 6, 6),
        Node("add", "Add", ("b", "c"), ("s",)),
        Node("dw", "DepthwiseConv2D", ("s",), ("d",), {"depth_multiplier": 2},
             (Weight("dw/depthwise_kernel", (3, 3, 6, 2), "depthwise_kernel"), Weight("dw/bias", (12,), "bias"))),
        conv("c3", "s", "e", 6, 5), Node("cat", "Concatenate", ("d", "e"), ("cat",), {"axis": -1}),
        Node("sep", "SeparableConv2D", ("cat",), ("f",), {"filters": 7, "depth_multiplier": 2},
             (Weight("sep/depthwise_kernel", (3, 3, 17, 2), "depthwise_kernel"),
              Weight("sep/pointwise_kernel", (1, 1, 34, 7), "pointwise_kernel"), Weight("sep/bias", (7,), "bias"))),
        Node("pool", "MaxPooling2D", ("f",), ("p",), {"pool_size": (2, 2)}),
        Node("flat", "Flatten", ("p",), ("fl",)),
        Node("fc", "Dense", ("fl",), ("y",), {"units": 3},
             (Weight("fc/kernel", (112, 3), "kernel"), Weight("fc/bias", (3,), "bias"))),
    ]
    return Graph.build([Tensor(n, s) for n, s in t.items()], nodes, ["x"], ["y"])


def reference_shrink(groups, keep) -> Graph:
    """shrink_graph as first written: a mask per tensor from kept_mask, every layer rebuilt."""
    graph = groups.graph
    masks = {t: groups.kept_mask(t, keep) for t in groups.slot_units}
    tensors = [Tensor(t.name, t.shape[:-1] + (sum(masks[t.name]),) if t.shape else t.shape, t.dtype)
               for t in graph.tensors.values()]
    nodes = []
    for node in graph.nodes:
        by_kind = node_masks(groups, node, masks)
        weights = []
        for w in node.weights:
            shape = list(w.shape)
            for axis, kind in weight_axes(node, w).items():
                shape[axis] = sum(by_kind[kind])
            weights.append(Weight(w.name, tuple(shape), w.role, w.trainable))
        attrs = dict(node.attrs)
        if node.op in WIDTH_KEY and WIDTH_KEY[node.op] in attrs and node.outputs:
            attrs[WIDTH_KEY[node.op]] = sum(masks[node.outputs[0]])
        if node.op == "Reshape" and "target_shape" in attrs:
            old = graph.tensors[node.outputs[0]].channels
            attrs["target_shape"] = new_reshape_target(attrs["target_shape"], old, sum(masks[node.outputs[0]]))
        nodes.append(Node(node.name, node.op, node.inputs, node.outputs, attrs, tuple(weights)))
    return Graph.build(tensors, nodes, graph.inputs, graph.outputs, graph.name)


def random_keeps(groups, rng, n):
    """Random keep choices over the prunable groups, each one repeated (the caches' second look)."""
    prunable = groups.prunable_groups
    for _ in range(n):
        keep = {}
        for g in prunable:
            if rng.random() < 0.3:
                continue  # a group left out keeps every unit
            count = int(rng.integers(1, g.size + 1))
            keep[g.id] = frozenset(g.frozen_units) | frozenset(int(u) for u in rng.choice(g.size, count, replace=False))
        yield keep
        yield dict(keep)


def test_masks_and_shrunk_graph_equal_the_straightforward_computation():
    groups = build_groups(branched_graph())
    assert len(groups.prunable_groups) >= 3          # the graph really has several coupled groups
    rng = np.random.default_rng(0)
    for keep in random_keeps(groups, rng, 30):
        expected = {t: groups.kept_mask(t, keep) for t in groups.slot_units}
        assert kept_masks(groups, keep) == expected
        assert mask_index(groups).counts(keep) == {t: sum(m) for t, m in expected.items()}
        assert shrink_graph(groups, keep) == reference_shrink(groups, keep)


def test_unhashable_and_out_of_range_keeps_read_like_kept_mask():
    groups = build_groups(branched_graph())
    g = groups.prunable_groups[0]
    for units in ({0, 2}, frozenset({1, g.size + 3, -1}), frozenset()):
        keep = {g.id: units, 999: frozenset({0})}
        assert kept_masks(groups, keep) == {t: groups.kept_mask(t, keep) for t in groups.slot_units}


def test_unchanged_layers_are_reused_and_changed_ones_resized():
    groups = build_groups(branched_graph())
    graph = groups.graph
    sep_group = next(grp for grp in groups.prunable_groups if grp.sources == ("sep",))
    shrunk = shrink_graph(groups, {sep_group.id: frozenset({0, 1, 2})})
    assert shrunk.node("c1") is graph.node("c1") and shrunk.node("dw") is graph.node("dw")
    assert shrunk.node("sep").weight("pointwise_kernel").shape == (1, 1, 34, 3)
    assert shrunk.node("fc").weight("kernel").shape == (48, 3)        # 4 x 4 positions x 3 channels


def test_cached_layer_costs_equal_costs_computed_afresh():
    groups = build_groups(branched_graph())
    rng = np.random.default_rng(1)
    for keep in random_keeps(groups, rng, 20):
        shrunk = shrink_graph(groups, keep)
        fresh = reference_shrink(groups, keep)   # new node objects: nothing cached on them
        assert analyze(shrunk) == analyze(fresh)
        assert analyze(shrunk).layers == tuple(layer_cost(shrunk, node) for node in shrunk.nodes)
    assert analyze(groups.graph).macs == sum(layer_cost(groups.graph, n).macs for n in groups.graph.nodes)


def test_ready_sets_updated_per_op_equal_a_rescan():
    # a diamond with a side branch: 0 -> (1, 2) -> 3, 0 -> 4 -> 5 -> 3
    ops = (DataflowOp((0,), (1,)), DataflowOp((1,), (2,)), DataflowOp((1,), (3,)), DataflowOp((2, 3, 6), (4,)),
           DataflowOp((1,), (5,)), DataflowOp((5,), (6,)))
    flow = Dataflow(ops, {t: 16 * (t + 1) for t in range(7)}, (0,), (4,))
    model = _Model(flow, 16)
    rng = np.random.default_rng(2)
    for _ in range(20):
        done, ready = 0, model._ready_mask(0)
        while done != model.full:
            assert ready == model._ready_mask(done)
            i = int(rng.choice(model._ready(done)))
            ready, done = model._ready_after(ready, done, i), done | (1 << i)
    schedule = best_order(flow)
    brute = min(live_peak_bytes(flow, order) for order in permutations(range(len(ops))) if is_valid_order(flow, order))
    assert schedule.exact and schedule.peak_live_bytes == brute
