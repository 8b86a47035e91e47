"""One planner cost evaluation lowers each graph once: size, arena and latency estimates share the lowering."""

from __future__ import annotations

from edgekit.ir import lowering
from edgekit.ir.graph import Graph, Node, Tensor, Weight
from edgekit.planner.search import cost_fn
from edgekit.profiles import load_profile


def _padded_net(width: int = 8) -> Graph:
    """ZeroPadding2D ((0, 1), (0, 1)) before a stride-2 valid conv (MobileNet's stem): the converter folds the
    padding into the conv, so the costs look at a second, folded graph too."""
    tensors = [Tensor("x", (16, 16, 3)), Tensor("p", (17, 17, 3)), Tensor("c", (8, 8, width)),
               Tensor("r", (8, 8, width)), Tensor("g", (width,)), Tensor("y", (4,))]
    nodes = [
        Node("pad", "ZeroPadding2D", ("x",), ("p",), {"padding": ((0, 1), (0, 1))}),
        Node("conv", "Conv2D", ("p",), ("c",), {"filters": width, "kernel_size": (3, 3), "strides": (2, 2),
                                                "padding": "valid", "activation": "linear"},
             (Weight("conv/kernel", (3, 3, 3, width), "kernel"), Weight("conv/bias", (width,), "bias"))),
        Node("relu", "ReLU", ("c",), ("r",)),
        Node("gap", "GlobalAveragePooling2D", ("r",), ("g",)),
        Node("fc", "Dense", ("g",), ("y",), {"units": 4, "activation": "linear"},
             (Weight("fc/kernel", (width, 4), "kernel"), Weight("fc/bias", (4,), "bias"))),
    ]
    return Graph.build(tensors, nodes, ["x"], ["y"], "padded")


def _counting(monkeypatch) -> list[Graph]:
    lowered: list[Graph] = []
    real = lowering._lower

    def counted(graph: Graph):
        lowered.append(graph)
        return real(graph)

    monkeypatch.setattr(lowering, "_lower", counted)
    return lowered


def test_a_cost_evaluation_lowers_each_graph_once(monkeypatch):
    lowered = _counting(monkeypatch)
    graph = _padded_net()
    costs = cost_fn(load_profile("stm32h743"), "int8")
    first = costs(graph)
    folded = lowering.fold_same_padding(graph)
    assert folded is not graph and "pad" not in {n.name for n in folded.nodes}
    # before the cache: four lowerings per evaluation (size, arena, planned arena, latency)
    assert [id(g) for g in lowered] == [id(folded)]
    assert costs(graph) == first and len(lowered) == 1  # evaluated again: nothing lowered again
    assert lowering.fold_same_padding(graph) is folded


def test_each_new_graph_gets_its_own_lowering(monkeypatch):
    lowered = _counting(monkeypatch)
    costs = cost_fn(load_profile("stm32h743"), "int8")
    narrow, wide = costs(_padded_net(8)), costs(_padded_net(16))
    assert len(lowered) == 2 and lowered[0] is not lowered[1]
    # the cache is per graph, not per name: the wider net's arena and flash are predicted from its own ops
    assert wide["ram_bytes"] > narrow["ram_bytes"] and wide["flash_bytes"] > narrow["flash_bytes"]
    runtime = lowering.lower(lowered[1])
    assert runtime is lowering.lower(lowered[1]) and runtime.tensor_elements[runtime.outputs[0]] == 4
