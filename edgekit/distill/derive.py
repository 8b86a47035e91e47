"""Students derived from the teacher: drop identity residual blocks, or shrink every layer's width.

Both return new models (new layers, copied weights); the teacher is never changed.

`shrink_teacher` rebuilds the model with filters/units scaled by a width multiplier. For plain chains
(each layer feeds only the next: Sequential models and chain-shaped functional ones) the new layers inherit
the teacher's L1-largest channels; other graphs (residuals, concatenations) are rebuilt with fresh weights,
which distillation then trains. The pruning engine's channel groups will give branched graphs the same
weight inheritance; until then this is the limitation.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgekit._tf import tf_keras
from edgekit.errors import BadInputError, UnsupportedModelError


@dataclass(frozen=True)
class ResidualBlock:
    """An identity residual block: add_layer = input + branch(input), shapes equal, droppable."""

    add_layer: str
    branch_layers: tuple[str, ...]
    shortcut_position: int  # which input of the Add is the block input (0 or 1)
    branch_scale: float  # mean |weight| of the branch's last weighted layer (BN gamma when present)


def find_residual_blocks(model) -> list[ResidualBlock]:
    """Identity residual blocks in topological order: an Add of a tensor x and a branch computed from x only."""
    keras = tf_keras()
    if not getattr(model, "_is_graph_network", False):
        return []
    blocks, consumers = [], _consumers(model)
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Add) or len(layer._inbound_nodes) != 1:
            continue
        inputs = list(layer._inbound_nodes[0].keras_inputs)
        if len(inputs) != 2:
            continue
        for position in (0, 1):
            branch = _branch_layers(inputs[position], inputs[1 - position], layer, consumers)
            if branch and tuple(inputs[position].shape[1:]) == tuple(layer.output.shape[1:]):
                blocks.append(ResidualBlock(layer.name, tuple(b.name for b in branch), position,
                                            _branch_scale(branch)))
                break
    return blocks


def drop_residual_blocks(model, blocks: int | Sequence[str]):
    """A copy of `model` with identity residual blocks replaced by the identity, other weights copied.

    Args:
        blocks: how many to drop (those whose branch output scale is smallest, i.e. which change their
            input least; ties: the deepest), or names of the blocks' Add layers (or of any layer inside).
    """
    keras = tf_keras()
    found = find_residual_blocks(model)
    if not found:
        raise UnsupportedModelError(f"model {model.name}: no identity residual blocks (Add of a block input and "
                                    "a branch of the same shape) to drop")
    chosen = _choose_blocks(model, found, blocks)
    config = copy.deepcopy(model.get_config())
    by_name = {c["name"]: c for c in config["layers"]}
    for block in sorted(chosen, key=lambda b: [x.add_layer for x in found].index(b.add_layer)):
        shortcut_ref = list(by_name[block.add_layer]["inbound_nodes"][0][block.shortcut_position][:3])
        removed = set(block.branch_layers) | {block.add_layer}
        config["layers"] = [c for c in config["layers"] if c["name"] not in removed]
        for c in config["layers"]:
            c["inbound_nodes"] = _replace_refs(c["inbound_nodes"], block.add_layer, shortcut_ref)
        config["output_layers"] = _replace_refs(config["output_layers"], block.add_layer, shortcut_ref)
    new_model = keras.Model.from_config(config)
    for layer in new_model.layers:
        layer.set_weights(model.get_layer(layer.name).get_weights())
    return new_model


def shrink_teacher(teacher, width_multiplier: float, *, inherit_weights: bool = True):
    """A copy of the teacher with every conv's filters and dense layer's units scaled (the head kept).

    Args:
        width_multiplier: in (0, 1]; channels become max(1, round(c * width_multiplier)).
        inherit_weights: for plain chains, keep the teacher's L1-largest channels; branched graphs and
            False give freshly initialised weights.
    """
    keras = tf_keras()
    if not 0.0 < width_multiplier <= 1.0:
        raise BadInputError(f"width_multiplier must be in (0, 1], got {width_multiplier}")
    if not getattr(teacher, "_is_graph_network", False):
        raise UnsupportedModelError(f"teacher {teacher.name}: shrinking needs a Sequential or functional model")
    keep_width = _head_layers(teacher)

    def scaled(layer):
        config = layer.get_config()
        if layer.name not in keep_width:
            for key in ("filters", "units"):
                if config.get(key):
                    config[key] = max(1, round(config[key] * width_multiplier))
            target = config.get("target_shape") if type(layer).__name__ == "Reshape" else None
            if target and -1 not in target:  # e.g. squeeze-excite's (1, 1, C): the channels follow the input
                config["target_shape"] = (*target[:-1], -1)
        return layer.__class__.from_config(config)

    try:
        student = keras.models.clone_model(teacher, clone_function=scaled)
    except (ValueError, TypeError) as e:
        raise UnsupportedModelError(f"teacher {teacher.name}: cannot rebuild with width x{width_multiplier} "
                                    f"({str(e).splitlines()[0]})") from e
    student._name = f"{teacher.name}_x{width_multiplier:g}"
    if inherit_weights and _is_plain_chain(teacher):
        _inherit_l1_channels(teacher, student)
    return student


def _branch_layers(shortcut, branch_end, add_layer, consumers: dict) -> list:
    """Layers computing branch_end from shortcut alone (empty if anything else feeds them)."""
    target = _ref(shortcut)
    seen, stack, order = set(), [branch_end], []
    while stack:
        tensor = stack.pop()
        if _ref(tensor) == target:
            continue
        layer = tensor._keras_history.layer
        if layer is None or not layer._inbound_nodes or layer._inbound_nodes[0].is_input:
            return []  # reached a model input without passing through the block input
        if len(layer._inbound_nodes) != 1:
            return []
        if layer.name in seen:
            continue
        seen.add(layer.name)
        order.append(layer)
        stack.extend(layer._inbound_nodes[0].keras_inputs)
    # Interior outputs must not leave the block (else removing them would break another path).
    for layer in order:
        if any(c not in seen and c != add_layer.name for c in consumers.get(layer.name, ())):
            return []
    return order[::-1]


def _consumers(model) -> dict[str, list[str]]:
    """Producer layer name -> names of the model's layers that take its output (this model's graph only:
    a layer's own outbound-node list also holds calls made by other models built over it)."""
    consumers: dict[str, list[str]] = {}
    for layer in model.layers:
        for node in layer._inbound_nodes[:1]:
            if not node.is_input:
                for tensor in node.keras_inputs:
                    consumers.setdefault(tensor._keras_history.layer.name, []).append(layer.name)
    return consumers


def _ref(tensor) -> tuple:
    history = tensor._keras_history
    return (history.layer.name if history.layer is not None else None, history.node_index, history.tensor_index)


def _branch_scale(branch) -> float:
    for layer in reversed(branch):
        weights = layer.get_weights()
        if weights:
            return float(np.mean(np.abs(weights[0])))
    return 0.0


def _choose_blocks(model, found: list[ResidualBlock], blocks) -> list[ResidualBlock]:
    if isinstance(blocks, int):
        if not 1 <= blocks <= len(found):
            raise BadInputError(f"model {model.name}: asked to drop {blocks} residual blocks, it has {len(found)}")
        ranked = sorted(enumerate(found), key=lambda ib: (ib[1].branch_scale, -ib[0]))
        return [b for _, b in ranked[:blocks]]
    chosen = []
    for name in blocks:
        matches = [b for b in found if name == b.add_layer or name in b.branch_layers]
        if not matches:
            raise BadInputError(f"model {model.name}: {name!r} is not in a droppable residual block "
                                f"(blocks: {', '.join(b.add_layer for b in found)})")
        chosen.append(matches[-1])  # the innermost block containing the layer
    # Blocks nested in another chosen block vanish with it.
    return [b for b in dict.fromkeys(chosen)
            if not any(b.add_layer in o.branch_layers for o in chosen if o is not b)]


def _replace_refs(node_data, old_name: str, new_ref: list):
    """Rewrite every [old_name, node, tensor, ...] reference in serialized inbound nodes to new_ref."""
    if isinstance(node_data, list):
        if (len(node_data) >= 3 and node_data[0] == old_name and isinstance(node_data[1], int)
                and isinstance(node_data[2], int)):
            return list(new_ref) + node_data[3:]
        return [_replace_refs(item, old_name, new_ref) for item in node_data]
    if isinstance(node_data, dict):
        return {k: _replace_refs(v, old_name, new_ref) for k, v in node_data.items()}
    return node_data


def _head_layers(model) -> set[str]:
    """Layers whose filters/units set the model's output width: walk back from the output to them."""
    heads, stack, seen = set(), list(model.outputs), set()
    while stack:
        tensor = stack.pop()
        layer = tensor._keras_history.layer
        if layer is None or layer.name in seen:
            continue
        seen.add(layer.name)
        config = layer.get_config()
        if config.get("filters") or config.get("units"):
            heads.add(layer.name)
            continue
        if layer._inbound_nodes and not layer._inbound_nodes[0].is_input:
            stack.extend(layer._inbound_nodes[0].keras_inputs)
    return heads


def _is_plain_chain(model) -> bool:
    consumers = _consumers(model)
    for layer in model.layers:
        nodes = layer._inbound_nodes
        if len(nodes) != 1 or len(consumers.get(layer.name, ())) > 1:
            return False
        if not nodes[0].is_input and len(nodes[0].keras_inputs) != 1:
            return False
    return True


def _inherit_l1_channels(teacher, student) -> None:
    """Copy the teacher's weights for the kept channels: per layer the L1-largest output channels."""
    keras = tf_keras()
    layers = keras.layers
    keep = None  # kept indices of the current tensor's last axis (None: all)
    for old, new in zip(teacher.layers, student.layers):
        weights = old.get_weights()
        if isinstance(old, layers.InputLayer):
            continue
        if isinstance(old, layers.Flatten):
            if keep is not None:
                in_shape = old.get_input_shape_at(0)
                channels, positions = in_shape[-1], int(np.prod(in_shape[1:-1]))
                keep = np.array([p * channels + c for p in range(positions) for c in keep])
            continue
        if not weights:
            continue
        if isinstance(old, layers.SeparableConv1D | layers.SeparableConv2D):
            dw, pw, *bias = weights
            mult = old.depth_multiplier
            dw = dw if keep is None else dw[..., keep, :]
            mid = None if keep is None else np.array([c * mult + j for c in keep for j in range(mult)])
            pw = pw if mid is None else pw[..., mid, :]
            out = _top_l1(pw, new.filters)
            new.set_weights([dw, pw[..., out]] + [b[out] for b in bias])
            keep = out
        elif isinstance(old, layers.DepthwiseConv1D | layers.DepthwiseConv2D):
            kernel, *bias = weights
            mult = old.depth_multiplier
            if keep is not None:
                kernel = kernel[..., keep, :]
                keep = np.array([c * mult + j for c in keep for j in range(mult)])
            new.set_weights([kernel] + [b if keep is None else b[keep] for b in bias])
        elif isinstance(old, layers.Dense | layers.Conv1D | layers.Conv2D | layers.Conv3D) and not isinstance(
                old, layers.Conv1DTranspose | layers.Conv2DTranspose):
            kernel, *bias = weights
            kernel = kernel if keep is None else kernel[..., keep, :]
            out = _top_l1(kernel, new.get_weights()[0].shape[-1])
            new.set_weights([kernel[..., out]] + [b[out] for b in bias])
            keep = out
        elif isinstance(old, layers.BatchNormalization):
            new.set_weights([w if keep is None else w[keep] for w in weights])
        else:  # a weighted layer we cannot slice: leave the rest freshly initialised
            return


def _top_l1(kernel: np.ndarray, n_keep: int) -> np.ndarray:
    """Indices of the n_keep output channels (last axis) with the largest L1 norm, in original order."""
    norms = np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(axis=0)
    return np.sort(np.argsort(-norms, kind="stable")[:n_keep])
