"""The analysis of one model: per-layer costs, peak memory, predicted TFLite ops and their support (pure).

    analysis = analyze_graph(graph)
    analysis.cost.macs, analysis.peak_activation_bytes["int8"], analysis.unsupported["tflm"]
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.costmodel.layer_costs import ModelCost, analyze
from edgekit.costmodel.memory import peak_activation_bytes
from edgekit.costmodel.size import ArenaEstimate, SizeEstimate, estimate_tflite_bytes, estimate_tflm_arena
from edgekit.ir.graph import Graph
from edgekit.ir.lowering import lower
from edgekit.ir.ops import builtin_ops, supported
from edgekit.precisions import PRECISIONS

RUNTIMES = ("litert", "tflm")


@dataclass(frozen=True)
class UnsupportedOp:
    layer: str
    op: str
    runtime: str


@dataclass(frozen=True)
class Analysis:
    graph: Graph
    cost: ModelCost
    #: TFLite builtin ops each Keras layer becomes (predicted, or read from a real conversion)
    layer_ops: dict[str, tuple[str, ...]]
    #: greedy-planned activation arena by activation precision ("int8", "float32")
    peak_activation_bytes: dict[str, int]
    tflite_bytes: dict[str, SizeEstimate]
    tflm_arena: ArenaEstimate
    unsupported: dict[str, tuple[UnsupportedOp, ...]]
    ops_source: str = "predicted"

    @property
    def params(self) -> int:
        return self.cost.params

    @property
    def macs(self) -> int:
        return self.cost.macs


def analyze_graph(graph: Graph, real_layer_ops: dict[str, tuple[str, ...]] | None = None) -> Analysis:
    """Analyse a graph. `real_layer_ops` (layer -> builtin ops of a real conversion) replaces the prediction."""
    runtime = lower(graph)
    layer_ops: dict[str, list[str]] = {n.name: [] for n in graph.nodes}
    for op in runtime.ops:
        layer_ops.setdefault(op.layer, []).extend(builtin_ops(op.kind))
    ops = {k: tuple(v) for k, v in layer_ops.items()}
    if real_layer_ops is not None:
        ops = {**{k: () for k in ops}, **real_layer_ops}
    unsupported = {
        rt: tuple(UnsupportedOp(layer, op, rt) for layer, names in ops.items() for op in dict.fromkeys(names)
                  if not supported(op, rt))
        for rt in RUNTIMES
    }
    return Analysis(
        graph=graph,
        cost=analyze(graph),
        layer_ops=ops,
        peak_activation_bytes={p: peak_activation_bytes(graph, p).peak_bytes for p in ("int8", "float32")},
        tflite_bytes={p: estimate_tflite_bytes(graph, p) for p in PRECISIONS},
        tflm_arena=estimate_tflm_arena(graph),
        unsupported=unsupported,
        ops_source="converted" if real_layer_ops is not None else "predicted",
    )
