"""Rebuild a smaller, dense tf_keras model with only the kept channels, weights copied.

Every layer is recreated from its config (filters / units / Reshape target resized where channels were
removed) and gets the kept slices of the original weights: kernels on both axes, biases,
BatchNormalization's four vectors, depthwise kernels, the pointwise kernel of separable convs and the
rows of a Dense after Flatten. Nested models are rebuilt nested. The input model is never modified.

    >>> from edgekit.ir.from_keras import from_keras
    >>> from edgekit.channels.groups import build_groups
    >>> groups = build_groups(from_keras(model))                        # doctest: +SKIP
    >>> smaller = apply_keep(model, groups, {1: frozenset(range(8))})   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edgekit.channels.axes import WIDTH_KEY, weight_axes
from edgekit.channels.groups import ChannelGroups, Keep
from edgekit.channels.keep import new_reshape_target, node_masks, shrink_graph
from edgekit.channels.sequence import query_rescale, resized_attrs
from edgekit.ir.graph import Graph, Node
from edgekit.ir.sequence import attention_part


def base_layer_name(node_name: str) -> str:
    """The layer path of an IR node: 'block/conv:1' (second call of a shared layer) -> 'block/conv'."""
    head, sep, tail = node_name.rpartition(":")
    return head if sep and tail.isdigit() else node_name


def layer_at(model, node_name: str):
    """The tf_keras layer behind an IR node name (nested models as 'outer/inner').

    Layer names may contain '/' themselves (MobileNetV3's 'expanded_conv/depthwise', DenseNet's
    'conv1/conv'), so a path is matched whole first, then split only where a nested model's name ends.
    """
    found = _find_layer(model, base_layer_name(node_name))
    if found is None:
        raise KeyError(f"no layer for IR node {node_name!r} in model {model.name!r}")
    return found


def _find_layer(model, path: str):
    by_name = {layer.name: layer for layer in getattr(model, "layers", ())}
    if path in by_name:
        return by_name[path]
    for name, layer in by_name.items():
        if path.startswith(name + "/") and getattr(layer, "_is_graph_network", False):
            found = _find_layer(layer, path[len(name) + 1:])
            if found is not None:
                return found
    return None


def node_weights(model, graph: Graph) -> dict[str, tuple[np.ndarray, ...]]:
    """{node: weight arrays in the order of node.weights} for every node with weights."""
    return {n.name: tuple(layer_at(model, n.name).get_weights()) for n in graph.nodes if n.weights}


def ir_tensor_names(model) -> dict[int, str]:
    """{id(keras tensor): IR tensor name} with keras_ir's own naming (nested inputs map to outer names)."""
    from edgekit.ir.from_keras import _Builder

    builder = _Builder()
    builder.add_model(model, "", None)
    return {int(k): v for k, v in builder.names.items()}


def slice_weight(array: np.ndarray, axes: Mapping[int, str], masks: Mapping[str, list[bool]]) -> np.ndarray:
    """`array` with only the kept slices along each channel axis."""
    for axis, kind in axes.items():
        kept = np.flatnonzero(np.asarray(masks[kind], dtype=bool))
        if len(kept) != array.shape[axis]:
            array = np.take(array, kept, axis=axis)
    return array


_ATTENTION_SHAPE_KEYS = {"query_shape": "in", "value_shape": "in_value", "key_shape": "in_key"}


def _resized_config(node: Node, config: dict, masks: Mapping[str, list[bool]], graph: Graph) -> dict:
    config = dict(config)
    if node.op in WIDTH_KEY and "out" in masks:
        config[WIDTH_KEY[node.op]] = int(sum(masks["out"]))
    config.update(resized_attrs(node, masks, config))
    for key, kind in _ATTENTION_SHAPE_KEYS.items():  # tf_keras MultiHeadAttention builds from these shapes
        if config.get(key) is not None and kind in masks:
            config[key] = [*list(config[key])[:-1], int(sum(masks[kind]))]
    if node.op == "Reshape" and "out" in masks:
        old = graph.tensors[node.outputs[0]].channels
        config["target_shape"] = new_reshape_target(config["target_shape"], old, int(sum(masks["out"])))
    if "in" in masks and not all(masks["in"]):
        config.pop("batch_input_shape", None)  # a first Sequential layer never loses input channels anyway
    return config


def apply_keep(model, groups: ChannelGroups, keep: Keep):
    """A new tf_keras model with only the kept units of each group, weights copied; `model` is untouched."""
    from edgekit._tf import tf_keras

    keras = tf_keras()
    graph = groups.graph
    masks = {t: groups.kept_mask(t, keep) for t in groups.slot_units}
    shrunk = shrink_graph(groups, keep)
    nodes = {}
    for node in graph.nodes:
        nodes.setdefault(base_layer_name(node.name), node)  # shared layers are frozen: one node stands for all
    by_kind = {name: node_masks(groups, node, masks) for name, node in nodes.items()}
    tensor_names = ir_tensor_names(model)

    def clone(sub_model, prefix: str, new_inputs=None):
        def clone_layer(layer):
            name = prefix + layer.name
            if getattr(layer, "_is_graph_network", False):
                inputs = [keras.Input(shape=shrunk.tensors[tensor_names[id(kt)]].shape, dtype=kt.dtype)
                          for kt in layer.inputs]
                return clone(layer, name + "/", inputs)
            config = layer.get_config()
            if name in nodes:
                config = _resized_config(nodes[name], config, by_kind[name], graph)
            return layer.__class__.from_config(config)

        return keras.models.clone_model(sub_model, input_tensors=new_inputs, clone_function=clone_layer)

    pruned = clone(model, "")
    for name, node in nodes.items():
        if not node.weights:
            continue
        old = layer_at(model, name).get_weights()
        new = [slice_weight(array, weight_axes(node, w), by_kind[name]) for array, w in zip(old, node.weights)]
        scale = query_rescale(node, by_kind[name])
        if scale != 1.0:
            new = [array * scale if attention_part(w) == "query" else array for array, w in zip(new, node.weights)]
        layer_at(pruned, name).set_weights(new)
    return pruned
