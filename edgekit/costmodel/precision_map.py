"""Runtime ops of a model whose layers run at different precisions, with the conversions between them (pure).

A per-layer precision map ({layer: int8 | int16x8 | float32}, every other layer at the model's precision) runs
as the lowered graph (`edgekit.ir.lowering.lower`) plus one conversion op wherever a tensor is stored at one
activation type and read at another, as ai-edge-quantizer writes mixed models (edgekit.export.aeq_recipes):

- QUANTIZE into an integer type: float32 -> int8 / int16 at a float layer's output or a float model input,
  and int8 <-> int16 requantisation between an int8 and an int16x8 layer;
- DEQUANTIZE into float32: before a float layer that reads an integer tensor, and after an integer model
  output when the model keeps float I/O.

One conversion per (tensor, type read): two readers of a tensor at the same other type share it. Layers
without weights (RESHAPE, pooling) run at the model's precision unless named. Each tensor is stored at its
writer's type (1 B per int8 element, 2 B per int16, 4 B per float), which is what the arena holds.

    >>> from edgekit.ir.graph import Graph, Node, Tensor, Weight
    >>> dense = lambda n, i, o, u: Node(n, "Dense", (i,), (o,), {"units": u}, (Weight(n + "/k", (8, u), "kernel"),))
    >>> g = Graph.build([Tensor("x", (8,)), Tensor("h", (8,)), Tensor("y", (1,))],
    ...                 [dense("a", "x", "h", 8), dense("b", "h", "y", 1)], ["x"], ["y"])
    >>> [op.kind for op in precision_graph(g, "int8", {"a": "int16x8"}).ops]
    ['QUANTIZE', 'FULLY_CONNECTED', 'QUANTIZE', 'FULLY_CONNECTED', 'DEQUANTIZE']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from edgekit.costmodel.memory import Buffer, plan_greedy, tensor_lifetimes
from edgekit.ir.graph import Graph
from edgekit.ir.lowering import RuntimeOp, fold_same_padding, lower

#: Precisions whose activations are integers (every other one computes on float32 activations).
INTEGER_ACTIVATIONS = {"int8": 1, "int16x8": 2}   # -> bytes per activation element
CONVERSION_KINDS = ("QUANTIZE", "DEQUANTIZE")


def activation_bytes(precision: str) -> int:
    """Bytes per activation element at a precision: int8 1, int16x8 2, everything float 4."""
    return INTEGER_ACTIVATIONS.get(precision, 4)


def storage(precision: str) -> str:
    """The activation type a precision stores: int8, int16x8 (int16) or float32 (float16, dynamic_int8 too)."""
    return precision if precision in INTEGER_ACTIVATIONS else "float32"


def conversion_precision(have: str, need: str) -> str:
    """The precision a conversion runs at: float32 when either side is float (an affine float multiply per
    element), else int16x8 (int8 <-> int16 requantisation in integer arithmetic)."""
    return "float32" if "float32" in (storage(have), storage(need)) else "int16x8"


@dataclass(frozen=True)
class PrecisionGraph:
    """The runtime ops of a precision map in execution order, each with the precision it runs at."""

    graph: Graph                        # the graph the ops were lowered from (ZeroPadding folded)
    ops: tuple[RuntimeOp, ...]          # conversions carry layer "" (they belong to no Keras layer)
    precisions: tuple[str, ...]         # per op
    tensor_elements: dict[str, int]
    tensor_storage: dict[str, str]      # per tensor: int8 | int16x8 | float32
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    def tensor_bytes(self, tensor: str) -> int:
        return self.tensor_elements.get(tensor, 0) * activation_bytes(self.tensor_storage.get(tensor, "float32"))

    @property
    def conversions(self) -> tuple[RuntimeOp, ...]:
        return tuple(op for op in self.ops if op.kind in CONVERSION_KINDS and not op.layer)


def precision_graph(graph: Graph, precision: str, layer_precisions: Mapping[str, str] | None = None,
                    float_io: bool = True) -> PrecisionGraph:
    """The ops of `graph` with every layer at `precision` except those `layer_precisions` names, plus the
    QUANTIZE / DEQUANTIZE conversions between them.

    float_io: the model takes and returns float32 (edgekit's default conversion; int8 models then start
    with a QUANTIZE and end with a DEQUANTIZE). Without it the inputs and outputs are stored at the type
    of the layers that read and write them, so they need no conversion.
    """
    graph = fold_same_padding(graph)
    runtime = lower(graph)
    chosen = dict(layer_precisions or {})
    op_precision = [chosen.get(op.layer, precision) for op in runtime.ops]
    elements = dict(runtime.tensor_elements)
    stored: dict[str, str] = {}
    for t in runtime.inputs:
        readers = [storage(p) for op, p in zip(runtime.ops, op_precision) if t in op.inputs]
        stored[t] = "float32" if float_io or not readers else readers[0]
    ops: list[RuntimeOp] = []
    precisions: list[str] = []
    converted: dict[tuple[str, str], str] = {}

    def convert(t: str, need: str) -> str:
        """`t` as the reader at `need` reads it, converted (once) when it is stored at another type."""
        have = stored.get(t, need)
        if storage(need) == have:
            return t
        key = (t, storage(need))
        if key not in converted:
            out = f"{t}@{storage(need)}"
            kind = "DEQUANTIZE" if storage(need) == "float32" else "QUANTIZE"
            ops.append(RuntimeOp(kind, "", (t,), (out,)))
            precisions.append(conversion_precision(have, need))
            elements[out], stored[out] = elements.get(t, 0), storage(need)
            converted[key] = out
        return converted[key]

    for op, p in zip(runtime.ops, op_precision):
        inputs = tuple(convert(t, p) for t in op.inputs)
        ops.append(RuntimeOp(op.kind, op.layer, inputs, op.outputs))
        precisions.append(p)
        for t in op.outputs:
            stored[t] = storage(p)
    outputs = tuple(convert(t, "float32") if float_io else t for t in runtime.outputs)
    return PrecisionGraph(graph, tuple(ops), tuple(precisions), elements, stored, runtime.inputs, outputs)


def activation_peak_bytes(pgraph: PrecisionGraph) -> int:
    """Greedy-planned (TFLM-style) peak of the activation buffers, each at its stored type's size, the
    conversions' outputs included."""
    spans = tensor_lifetimes([(op.inputs, op.outputs) for op in pgraph.ops], pgraph.inputs, pgraph.outputs)
    buffers = [Buffer(t, pgraph.tensor_bytes(t), first, last) for t, (first, last) in spans.items()
               if t in pgraph.tensor_elements]
    return plan_greedy(buffers).peak_bytes
