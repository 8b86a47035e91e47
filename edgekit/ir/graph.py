"""A small framework-free graph IR: nodes, tensors, shapes, weights.

Everything after loading (analysis, costs, channel groups, planning) works on this IR, so it can be
tested without TensorFlow. `edgekit.ir.from_keras.from_keras` builds it from a tf_keras model.

Shapes are per sample: the batch axis is dropped (a Conv1D output of Keras shape (None, 40, 64) is
`(40, 64)` here); channels are last, as TFLite lays tensors out.

    >>> g = Graph.build(
    ...     tensors=[Tensor("x", (4,)), Tensor("y", (2,))],
    ...     nodes=[Node("dense", "Dense", ("x",), ("y",), weights=(Weight("kernel", (4, 2), "kernel"),))],
    ...     inputs=("x",), outputs=("y",))
    >>> g.node("dense").params
    8
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

#: Weight roles the pruner and the cost model understand.
WEIGHT_ROLES = (
    "kernel", "recurrent_kernel", "bias", "depthwise_kernel", "pointwise_kernel", "gamma", "beta", "moving_mean",
    "moving_variance", "embeddings", "other",
)

_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1, "uint8": 1, "int16": 2, "int32": 4,
                "int64": 8, "float64": 8, "bool": 1}


def dtype_bytes(dtype: str) -> int:
    """Bytes per element of a dtype name (unknown dtypes count as 4)."""
    return _DTYPE_BYTES.get(dtype, 4)


@dataclass(frozen=True)
class Tensor:
    """An activation tensor, per sample (no batch axis)."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    @property
    def elements(self) -> int:
        return math.prod(self.shape) if self.shape else 1

    @property
    def channels(self) -> int:
        return self.shape[-1] if self.shape else 1

    def nbytes(self, dtype: str | None = None) -> int:
        return self.elements * dtype_bytes(dtype or self.dtype)


@dataclass(frozen=True)
class Weight:
    """One weight variable of a layer, with its role (kernel, bias, gamma ...)."""

    name: str
    shape: tuple[int, ...]
    role: str = "other"
    trainable: bool = True

    @property
    def size(self) -> int:
        return math.prod(self.shape) if self.shape else 1


@dataclass(frozen=True)
class Node:
    """One layer application: op is the Keras class name (Conv2D, Add, ...)."""

    name: str
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any] = field(default_factory=dict)
    weights: tuple[Weight, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "attrs", MappingProxyType(dict(self.attrs)))

    @property
    def params(self) -> int:
        return sum(w.size for w in self.weights)

    def weight(self, role: str) -> Weight | None:
        """The first weight with this role, or None."""
        return next((w for w in self.weights if w.role == role), None)

    @property
    def activation(self) -> str | None:
        act = self.attrs.get("activation")
        return act if isinstance(act, str) else None


@dataclass(frozen=True)
class Graph:
    """Nodes in a topological (execution) order, their tensors, graph inputs and outputs."""

    nodes: tuple[Node, ...]
    tensors: Mapping[str, Tensor]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    name: str = "model"

    @classmethod
    def build(cls, tensors: Iterable[Tensor], nodes: Iterable[Node], inputs: Iterable[str],
              outputs: Iterable[str], name: str = "model") -> Graph:
        """Validate and assemble a graph: every referenced tensor exists, names are unique, order is topological."""
        tensor_map = {}
        for t in tensors:
            if t.name in tensor_map:
                raise ValueError(f"graph {name!r}: tensor {t.name!r} defined twice")
            tensor_map[t.name] = t
        graph = cls(tuple(nodes), MappingProxyType(tensor_map), tuple(inputs), tuple(outputs), name)
        graph._validate()
        return graph

    def _validate(self) -> None:
        available = set(self.inputs)
        seen_nodes = set()
        for t in (*self.inputs, *self.outputs):
            if t not in self.tensors:
                raise ValueError(f"graph {self.name!r}: tensor {t!r} is not defined")
        for n in self.nodes:
            if n.name in seen_nodes:
                raise ValueError(f"graph {self.name!r}: node {n.name!r} appears twice")
            seen_nodes.add(n.name)
            for t in n.inputs:
                if t not in available:
                    raise ValueError(f"graph {self.name!r}: node {n.name!r} reads {t!r} before it is produced")
            for t in n.outputs:
                if t not in self.tensors:
                    raise ValueError(f"graph {self.name!r}: node {n.name!r} writes undefined tensor {t!r}")
                available.add(t)

    # -- lookups ---------------------------------------------------------------------------------
    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node named {name!r} in graph {self.name!r}")

    def producer(self, tensor: str) -> Node | None:
        """The node writing `tensor`, None for a graph input."""
        return self._producers().get(tensor)

    def consumers(self, tensor: str) -> list[Node]:
        """Nodes reading `tensor`, in execution order."""
        return list(self._consumers().get(tensor, ()))

    def _producers(self) -> dict[str, Node]:
        cache = self.__dict__.get("_producer_cache")
        if cache is None:
            cache = {t: n for n in self.nodes for t in n.outputs}
            object.__setattr__(self, "_producer_cache", cache)
        return cache

    def _consumers(self) -> dict[str, tuple[Node, ...]]:
        cache = self.__dict__.get("_consumer_cache")
        if cache is None:
            acc: dict[str, list[Node]] = {}
            for n in self.nodes:
                for t in dict.fromkeys(n.inputs):
                    acc.setdefault(t, []).append(n)
            cache = {k: tuple(v) for k, v in acc.items()}
            object.__setattr__(self, "_consumer_cache", cache)
        return cache

    def input_tensors(self, node: Node) -> list[Tensor]:
        return [self.tensors[t] for t in node.inputs]

    def output_tensors(self, node: Node) -> list[Tensor]:
        return [self.tensors[t] for t in node.outputs]

    @property
    def params(self) -> int:
        return sum(n.params for n in self.nodes)
