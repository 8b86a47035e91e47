"""The IR alone: validation, lookups (no TensorFlow)."""

import pytest

from edgekit.ir.graph import Graph, Node, Tensor, Weight


def _chain():
    return Graph.build(
        [Tensor("x", (8, 3)), Tensor("h", (8, 4)), Tensor("y", (8, 4))],
        [Node("conv", "Conv1D", ("x",), ("h",), {"kernel_size": [3]},
              (Weight("conv/kernel", (3, 3, 4), "kernel"), Weight("conv/bias", (4,), "bias"))),
         Node("relu", "ReLU", ("h",), ("y",))],
        ["x"], ["y"])


def test_lookups_and_params():
    g = _chain()
    assert g.params == 3 * 3 * 4 + 4
    assert g.producer("h").name == "conv"
    assert g.producer("x") is None
    assert [n.name for n in g.consumers("h")] == ["relu"]
    assert g.node("conv").weight("bias").shape == (4,)
    assert g.tensors["h"].nbytes("int8") == 32 and g.tensors["h"].nbytes() == 128


def test_rejects_use_before_definition():
    with pytest.raises(ValueError, match="reads 'h' before it is produced"):
        Graph.build([Tensor("x", (2,)), Tensor("h", (2,)), Tensor("y", (2,))],
                    [Node("b", "ReLU", ("h",), ("y",)), Node("a", "ReLU", ("x",), ("h",))], ["x"], ["y"])


def test_rejects_duplicate_nodes_and_undefined_outputs():
    with pytest.raises(ValueError, match="appears twice"):
        Graph.build([Tensor("x", (2,)), Tensor("y", (2,))],
                    [Node("a", "ReLU", ("x",), ("y",)), Node("a", "ReLU", ("y",), ("y",))], ["x"], ["y"])
    with pytest.raises(ValueError, match="undefined tensor 'z'"):
        Graph.build([Tensor("x", (2,)), Tensor("y", (2,))], [Node("a", "ReLU", ("x",), ("z",))], ["x"], ["y"])


def test_node_attrs_are_read_only():
    node = _chain().node("conv")
    with pytest.raises(TypeError):
        node.attrs["kernel_size"] = [5]
