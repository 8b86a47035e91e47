"""Channel groups of Bidirectional recurrent layers (pure IR): one group per direction when the outputs are
concatenated, one shared group when they are merged, frozen when the wrapper cannot be followed."""

from __future__ import annotations

import pytest

from edgekit.channels.groups import build_groups
from edgekit.channels.keep import shrink_graph
from edgekit.costmodel.layer_costs import analyze
from edgekit.ir.graph import Graph, Node, Tensor, Weight

STEPS, FEATURES, UNITS = 6, 3, 8
GATES = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}


def _direction(prefix: str, cell: str, units: int) -> tuple[Weight, ...]:
    g = GATES[cell]
    bias = (2, g * units) if cell == "GRU" else (g * units,)   # GRU reset_after: two bias rows
    return (Weight(f"bi/{prefix}/kernel:0", (FEATURES, g * units), "kernel"),
            Weight(f"bi/{prefix}/recurrent_kernel:0", (units, g * units), "recurrent_kernel"),
            Weight(f"bi/{prefix}/bias:0", bias, "bias"))


def _bidirectional_graph(cell="LSTM", merge_mode="concat", units=UNITS):
    width = 2 * units if merge_mode == "concat" else units
    attrs = {"merge_mode": merge_mode, "layer": {"class_name": cell, "config": {"units": units, "go_backwards": False}}}
    weights = _direction(f"forward_{cell.lower()}", cell, units) + _direction(f"backward_{cell.lower()}", cell, units)
    return Graph.build(
        [Tensor("x", (STEPS, FEATURES)), Tensor("h", (STEPS, width)), Tensor("y", (width,)), Tensor("z", (2,))],
        [Node("bi", "Bidirectional", ("x",), ("h",), attrs, weights),
         Node("pool", "GlobalAveragePooling1D", ("h",), ("y",)),
         Node("fc", "Dense", ("y",), ("z",), {"units": 2}, (Weight("fc/kernel:0", (width, 2), "kernel"),))],
        ["x"], ["z"])


def _groups_of_bi(groups):
    return [g for g in groups.prunable_groups if g.sources == ("bi",)]


def test_concatenated_directions_are_two_groups_pruned_independently():
    groups = build_groups(_bidirectional_graph("LSTM"))
    forward, backward = _groups_of_bi(groups)
    slots = [[m.slots for m in g.members if m.role == "out"] for g in (forward, backward)]
    assert slots == [[tuple(range(8))], [tuple(range(8, 16))]]
    small = shrink_graph(groups, {forward.id: frozenset({0, 2, 5}), backward.id: frozenset({1, 7})})
    bi = small.node("bi")
    assert [w.shape for w in bi.weights] == [(3, 12), (3, 12), (12,), (3, 8), (2, 8), (8,)]
    assert bi.attrs["layer"]["config"]["units"] == 3
    assert bi.attrs["backward_layer"]["config"] == {"units": 2, "go_backwards": True}
    assert small.node("fc").weights[0].shape == (5, 2)
    # per step: each direction's input x kernel plus state x recurrent kernel, every gate
    assert analyze(small).layer("bi").macs == STEPS * 4 * (3 * (FEATURES + 3) + 2 * (FEATURES + 2))


@pytest.mark.parametrize("cell, merge_mode", [("GRU", "sum"), ("LSTM", "ave"), ("SimpleRNN", "mul")])
def test_merged_directions_share_one_group(cell, merge_mode):
    groups = build_groups(_bidirectional_graph(cell, merge_mode))
    (group,) = _groups_of_bi(groups)
    assert group.size == UNITS
    small = shrink_graph(groups, {group.id: frozenset({1, 4, 6})})
    g = GATES[cell]
    shapes = [w.shape for w in small.node("bi").weights]
    bias = (2, 3 * g) if cell == "GRU" else (3 * g,)
    assert shapes == [(3, 3 * g), (3, 3 * g), bias] * 2
    assert "backward_layer" not in small.node("bi").attrs   # same width: tf_keras copies the forward layer
    assert small.node("fc").weights[0].shape == (3, 2)


def test_unfollowable_wrappers_are_frozen_with_a_reason():
    graph = _bidirectional_graph()
    no_merge = Graph.build(graph.tensors.values(), [
        Node(n.name, n.op, n.inputs, n.outputs, {**n.attrs, "merge_mode": None}, n.weights) for n in graph.nodes],
        graph.inputs, graph.outputs)
    groups = build_groups(no_merge)
    assert not _groups_of_bi(groups)
    assert [f.reason for f in groups.frozen_layers if f.node == "bi"] == ["merge_mode None (one output per direction)"]
    assert shrink_graph(groups, {}).node("bi").weights == graph.node("bi").weights   # kept whole
    conv = Graph.build(graph.tensors.values(), [
        Node(n.name, n.op, n.inputs, n.outputs, {**n.attrs, "layer": {"class_name": "Conv1D"}}, n.weights)
        for n in graph.nodes], graph.inputs, graph.outputs)
    reasons = [f.reason for f in build_groups(conv).frozen_layers if f.node == "bi"]
    assert reasons == ["wraps Conv1D, not an LSTM, GRU or SimpleRNN"]


def test_variable_length_sequences_freeze_the_layer_but_keep_its_weights():
    graph = _bidirectional_graph("GRU")
    tensors = [Tensor(t.name, (-1, *t.shape[1:])) if len(t.shape) == 2 else t for t in graph.tensors.values()]
    groups = build_groups(Graph.build(tensors, graph.nodes, graph.inputs, graph.outputs))
    assert not _groups_of_bi(groups)
    assert [f.reason for f in groups.frozen_layers if f.node == "bi"] == ["tensor shape not fully known"]
    assert shrink_graph(groups, {}).node("bi").weights == graph.node("bi").weights
