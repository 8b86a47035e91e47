"""Build the framework-free graph IR (`edgekit.ir.graph`) from a tf_keras model.

Reads the model's functional node structure and each layer's config and weight shapes; it never
imports TensorFlow itself (the model object brings it). Nested functional models are flattened, their
layers named `outer/inner`, so analysis sees the real layers.
"""

from __future__ import annotations

import json
from typing import Any

from edgekit.errors import UnsupportedModelError
from edgekit.ir.graph import Graph, Node, Tensor, Weight

_ROLE_BY_SUFFIX = (
    ("depthwise_kernel", "depthwise_kernel"), ("pointwise_kernel", "pointwise_kernel"),
    ("recurrent_kernel", "recurrent_kernel"), ("kernel", "kernel"), ("bias", "bias"), ("gamma", "gamma"), ("beta",
                                                                                                           "beta"),
    ("moving_mean", "moving_mean"), ("moving_variance", "moving_variance"), ("embeddings", "embeddings"),
)


def _role(weight_name: str) -> str:
    base = weight_name.split("/")[-1].split(":")[0]
    for suffix, role in _ROLE_BY_SUFFIX:
        if base.endswith(suffix):
            return role
    return "other"


def _shape(keras_tensor) -> tuple[int, ...]:
    dims = list(keras_tensor.shape)[1:]  # drop the batch axis
    return tuple(int(d) if d is not None else -1 for d in dims)


def _dtype(keras_tensor) -> str:
    dtype = getattr(keras_tensor, "dtype", "float32")
    return getattr(dtype, "name", str(dtype))


def _plain_config(layer) -> dict[str, Any]:
    """The layer config reduced to JSON values (activations as names, nested objects dropped)."""
    try:
        cfg = layer.get_config()
    except (NotImplementedError, TypeError):
        return {}
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        if key == "activation" and not isinstance(value, str):
            value = getattr(value, "__name__", str(value))
        try:
            json.dumps(value)
        except TypeError:
            continue
        out[key] = value
    if type(layer).__name__ == "TFOpLambda":
        out["function"] = cfg.get("function")
    return out


def _scalar_operands(node) -> bool:
    """Whether every non-tensor argument of a TFOpLambda call is a Python scalar (x + 3.0, x * 0.5)."""
    args = list(getattr(node, "call_args", ()) or ())
    kwargs = {k: v for k, v in (getattr(node, "call_kwargs", None) or {}).items() if k != "name"}
    others = [a for a in (*args, *kwargs.values()) if not hasattr(a, "shape")]
    return all(isinstance(a, (int, float, bool)) or a is None for a in others)


def _flat(outputs) -> list:
    if isinstance(outputs, (list, tuple)):
        return [t for o in outputs for t in _flat(o)]
    if isinstance(outputs, dict):
        return [t for o in outputs.values() for t in _flat(o)]
    return [outputs]


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.tensors: dict[str, Tensor] = {}
        self.names: dict[str, str] = {}  # id(keras tensor) -> IR tensor name

    def tensor_name(self, kt, proposed: str) -> str:
        key = str(id(kt))
        if key not in self.names:
            name = proposed
            i = 1
            while name in self.tensors:
                name = f"{proposed}_{i}"
                i += 1
            self.names[key] = name
            self.tensors[name] = Tensor(name, _shape(kt), _dtype(kt))
        return self.names[key]

    def add_model(self, model, prefix: str, input_names: list[str] | None) -> list[str]:
        """Add `model`'s layers; returns the IR names of its outputs."""
        if not getattr(model, "_is_graph_network", False):
            raise UnsupportedModelError(
                f"model {model.name!r} is a subclassed or unbuilt model: edgekit needs a functional or "
                "Sequential model with a known input shape (build it with an Input layer)")
        for i, kt in enumerate(model.inputs):
            name = f"{prefix}{model.input_names[i]}" if hasattr(model, "input_names") else f"{prefix}input_{i}"
            if input_names is not None:
                self.names[str(id(kt))] = input_names[i]
            else:
                self.tensor_name(kt, name)
        for depth in sorted(model._nodes_by_depth, reverse=True):
            for node in model._nodes_by_depth[depth]:
                if node.is_input:
                    continue
                layer = node.layer
                ins = [self.names[str(id(t))] for t in node.keras_inputs]
                if getattr(layer, "_is_graph_network", False):
                    outs = self.add_model(layer, f"{prefix}{layer.name}/", ins)
                    for kt, inner in zip(_flat(node.outputs), outs):
                        self.names[str(id(kt))] = inner
                    continue
                node_index = layer._inbound_nodes.index(node)
                base = f"{prefix}{layer.name}" + (f":{node_index}" if node_index else "")
                outs = [self.tensor_name(kt, base if i == 0 else f"{base}:{i}")
                        for i, kt in enumerate(_flat(node.outputs))]
                weights = tuple(
                    Weight(w.name, tuple(int(d) for d in w.shape), _role(w.name), bool(w.trainable))
                    for w in layer.weights)
                attrs = _plain_config(layer)
                if type(layer).__name__ == "TFOpLambda":
                    attrs["scalar_operands"] = _scalar_operands(node)
                self.nodes.append(Node(base, type(layer).__name__, tuple(ins), tuple(outs), attrs, weights))
        return [self.names[str(id(kt))] for kt in model.outputs]


def from_keras(model) -> Graph:
    """The IR of a tf_keras functional or Sequential model (nested models flattened).

    Raises UnsupportedModelError for subclassed models or Sequential models without an input shape.
    """
    builder = _Builder()
    outputs = builder.add_model(model, "", None)
    inputs = [builder.names[str(id(kt))] for kt in model.inputs]
    # Execution order: Keras depth order already is topological; keep it.
    return Graph.build(builder.tensors.values(), builder.nodes, inputs, outputs, name=model.name)
