"""Channel groups of recurrent and attention layers, TF element-wise ops, and concat + gate coverage (pure IR)."""

from __future__ import annotations

import numpy as np

from edgekit.channels.groups import build_groups
from edgekit.channels.keep import select_keep, shrink_graph
from edgekit.channels.sequence import internal_tensor
from edgekit.costmodel.layer_costs import analyze
from edgekit.ir.graph import Graph, Node, Tensor, Weight


def _lstm_graph(steps=6, features=3, units=8):
    return Graph.build(
        [Tensor("x", (steps, features)), Tensor("h", (steps, units)), Tensor("y", (2,)), Tensor("z", (2,))],
        [Node("lstm", "LSTM", ("x",), ("h",), {"units": units},
              (Weight("lstm/kernel", (features, 4 * units), "kernel"),
               Weight("lstm/recurrent_kernel", (units, 4 * units), "recurrent_kernel"),
               Weight("lstm/bias", (4 * units,), "bias"))),
         Node("pool", "GlobalAveragePooling1D", ("h",), ("y",)),
         Node("fc", "Dense", ("y",), ("z",), {"units": 2}, (Weight("fc/kernel", (units, 2), "kernel"),))],
        ["x"], ["z"])


def test_lstm_units_form_one_group_and_shrink_every_gate():
    graph = _lstm_graph()
    groups = build_groups(graph)
    (group,) = [g for g in groups.prunable_groups if "lstm" in g.sources]
    assert group.size == 8
    keep = {group.id: frozenset({0, 2, 5})}
    small = shrink_graph(groups, keep)
    lstm = small.node("lstm")
    assert [w.shape for w in lstm.weights] == [(3, 12), (3, 12), (12,)]
    assert lstm.attrs["units"] == 3
    assert small.node("fc").weights[0].shape == (3, 2)
    assert analyze(small).macs == 6 * 4 * 3 * (3 + 3) + 3 * 2


def _attention_graph(tokens=5, width=6, heads=3, key_dim=4, value_dim=2):
    w = Weight
    return Graph.build(
        [Tensor("x", (tokens, width)), Tensor("p", (tokens, 8)), Tensor("a", (tokens, 8)), Tensor("y", (8,)),
         Tensor("z", (2,))],
        [Node("proj", "Dense", ("x",), ("p",), {"units": 8}, (w("proj/kernel", (width, 8), "kernel"),)),
         Node("mha", "MultiHeadAttention", ("p", "p"), ("a",), {"num_heads": heads, "key_dim": key_dim},
              (w("mha/query/kernel:0", (8, heads, key_dim), "kernel"), w("mha/query/bias:0", (heads, key_dim), "bias"),
               w("mha/key/kernel:0", (8, heads, key_dim), "kernel"), w("mha/key/bias:0", (heads, key_dim), "bias"),
               w("mha/value/kernel:0", (8, heads, value_dim), "kernel"),
               w("mha/value/bias:0", (heads, value_dim), "bias"),
               w("mha/attention_output/kernel:0", (heads, value_dim, 8), "kernel"),
               w("mha/attention_output/bias:0", (8,), "bias"))),
         Node("pool", "GlobalAveragePooling1D", ("a",), ("y",)),
         Node("fc", "Dense", ("y",), ("z",), {"units": 2}, (w("fc/kernel", (8, 2), "kernel"),))],
        ["x"], ["z"])


def test_attention_heads_key_and_value_dims_are_groups():
    groups = build_groups(_attention_graph())
    by_tensor = {m.tensor: g for g in groups.prunable_groups for m in g.members if m.role == "out"}
    heads, keys, values = (by_tensor[internal_tensor("mha", k)] for k in ("heads", "key_dim", "value_dim"))
    assert (heads.size, keys.size, values.size) == (3, 4, 2)
    # the attention output is as wide as its query (output_shape unset): both are one group with proj
    assert by_tensor["a"].id == by_tensor["p"].id and "proj" in by_tensor["p"].sources
    keep = {heads.id: frozenset({0, 2}), keys.id: frozenset({1}), values.id: frozenset({0, 1}),
            by_tensor["p"].id: frozenset(range(5))}
    small = shrink_graph(groups, keep)
    mha = small.node("mha")
    assert [w.shape for w in mha.weights] == [(5, 2, 1), (2, 1), (5, 2, 1), (2, 1), (5, 2, 2), (2, 2), (2, 2, 5), (5,)]
    assert (mha.attrs["num_heads"], mha.attrs["key_dim"], mha.attrs["value_dim"]) == (2, 1, 2)
    assert small.tensors["a"].shape == (5, 5)


def test_a_source_tied_into_a_gate_keeps_at_least_one_channel():
    """concat([a (2 ch), b (6 ch)]) * gate(8 ch): all in one group; scores favouring b must not empty a."""
    w = Weight
    graph = Graph.build(
        [Tensor("x", (4, 4, 3)), Tensor("a", (4, 4, 2)), Tensor("b", (4, 4, 6)), Tensor("c", (4, 4, 8)),
         Tensor("s", (1, 1, 8)), Tensor("g", (1, 1, 8)), Tensor("m", (4, 4, 8)), Tensor("o", (4, 4, 2))],
        [Node("a", "Conv2D", ("x",), ("a",), {"filters": 2}, (w("a/kernel", (1, 1, 3, 2), "kernel"),)),
         Node("b", "Conv2D", ("x",), ("b",), {"filters": 6}, (w("b/kernel", (1, 1, 3, 6), "kernel"),)),
         Node("cat", "Concatenate", ("a", "b"), ("c",), {"axis": -1}),
         Node("gap", "GlobalAveragePooling2D", ("c",), ("s",), {"keepdims": True}),
         Node("gate", "Conv2D", ("s",), ("g",), {"filters": 8, "activation": "sigmoid"},
              (w("gate/kernel", (1, 1, 8, 8), "kernel"),)),
         Node("mul", "Multiply", ("c", "g"), ("m",)),
         Node("out", "Conv2D", ("m",), ("o",), {"filters": 2}, (w("out/kernel", (1, 1, 8, 2), "kernel"),))],
        ["x"], ["o"])
    groups = build_groups(graph)
    (group,) = [g for g in groups.prunable_groups if "a" in g.sources]
    assert set(group.sources) == {"a", "b", "gate"} and group.size == 8
    scores = {group.id: np.array([0.0, 0.0, 5, 6, 7, 8, 9, 10])}
    keep = select_keep(groups, scores, ratio=0.5)
    small = shrink_graph(groups, keep)
    assert small.node("a").attrs["filters"] >= 1
    assert small.node("b").attrs["filters"] >= 1
    assert small.tensors["c"].channels == small.tensors["g"].channels == len(keep[group.id])


def _lambda_graph(function, scalar):
    return Graph.build(
        [Tensor("x", (4, 3)), Tensor("h", (4, 6)), Tensor("t", (4, 6)), Tensor("y", (2,))],
        [Node("conv", "Conv1D", ("x",), ("h",), {"filters": 6}, (Weight("k", (1, 3, 6), "kernel"),)),
         Node("op", "TFOpLambda", ("h",), ("t",), {"function": function, "scalar_operands": scalar}),
         Node("fc", "Dense", ("t",), ("y",), {"units": 2}, (Weight("k2", (6, 2), "kernel"),))],
        ["x"], ["y"])


def test_tf_elementwise_op_with_scalar_passes_channels_through():
    groups = build_groups(_lambda_graph("__operators__.add", True))
    assert any("conv" in g.sources for g in groups.prunable_groups)
    assert not groups.frozen_layers or all(f.node != "op" for f in groups.frozen_layers)


def test_tf_op_with_a_tensor_constant_or_unknown_function_is_frozen():
    for function, scalar in (("math.multiply", False), ("linalg.matmul", True)):
        groups = build_groups(_lambda_graph(function, scalar))
        assert [f.node for f in groups.frozen_layers if f.node == "op"] == ["op"]
        assert not any("conv" in g.sources for g in groups.prunable_groups)


def test_grouped_convolution_is_frozen_and_keeps_its_kernel_shape():
    """ConvNeXt's depthwise step is Conv2D(groups=C) with a (7, 7, 1, C) kernel: pruning around it must not
    resize its per-group input axis."""
    w = Weight
    graph = Graph.build(
        [Tensor("x", (6, 6, 3)), Tensor("a", (6, 6, 4)), Tensor("b", (6, 6, 4)), Tensor("c", (6, 6, 8)),
         Tensor("y", (2,))],
        [Node("stem", "Conv2D", ("x",), ("a",), {"filters": 4}, (w("stem/kernel", (1, 1, 3, 4), "kernel"),)),
         Node("dw", "Conv2D", ("a",), ("b",), {"filters": 4, "groups": 4}, (w("dw/kernel", (3, 3, 1, 4), "kernel"),)),
         Node("pw", "Conv2D", ("b",), ("c",), {"filters": 8}, (w("pw/kernel", (1, 1, 4, 8), "kernel"),)),
         Node("gap", "GlobalAveragePooling2D", ("c",), ("y",))],
        ["x"], ["y"])
    groups = build_groups(graph)
    assert [f.node for f in groups.frozen_layers if "grouped" in f.reason] == ["dw"]
    keep = select_keep(groups, {g.id: np.arange(g.size, dtype=float) for g in groups.prunable_groups}, ratio=0.5)
    small = shrink_graph(groups, keep)
    assert small.node("dw").weights[0].shape == (3, 3, 1, 4)
    assert small.node("stem").weights[0].shape == (1, 1, 3, 4)
