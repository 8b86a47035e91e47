"""Model configs checked before any loader builds them: size, nesting, parameters, graph references.

    >>> check_model_configs("m.h5", [config])                  # doctest: +SKIP
    >>> estimate_params(config)                                 # doctest: +SKIP

Works on the parsed architecture JSON only (pure Python); the ceilings live in edgekit.model_io.limits.
The parameter estimate is a lower bound (channels are followed through the layer list, spatial sizes are
not), enough to refuse a config that asks for gigabytes while every real model passes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from edgekit.errors import BadInputError
from edgekit.model_io.limits import (
    MAX_DIM,
    MAX_INPUT_ELEMENTS,
    MAX_LAYERS,
    MAX_NESTING_DEPTH,
    MAX_PARAMS,
    MAX_STRING_CHARS,
)
from edgekit.model_io.limits import short as _short

_SIZE_FIELDS = ("units", "filters", "input_dim", "output_dim", "depth_multiplier", "num_heads", "key_dim")
_SHAPE_FIELDS = ("batch_input_shape", "batch_shape", "input_shape", "target_shape")


def check_model_configs(label: str, configs: Iterable[dict], max_params: int = MAX_PARAMS) -> None:
    """Refuse architecture configs whose loading would allocate more than the documented ceilings."""
    for config in configs:
        _check_shape_of_json(label, config)
        for model in _model_configs(config):
            _check_graph_references(label, model)
        params = estimate_params(config)
        if params > max_params:
            raise BadInputError(f"{label}: the model config asks for about {params:,} parameters, over the limit of "
                                f"{max_params:,}; this is not a model edgekit can fit to a device")


def _check_shape_of_json(label: str, config) -> None:
    """Depth, string length, layer count and size fields, walked without recursion."""
    stack = [(config, 1, "")]
    layers = 0
    while stack:
        obj, depth, where = stack.pop()
        if depth > MAX_NESTING_DEPTH:
            raise BadInputError(f"{label}: the model config is nested more than {MAX_NESTING_DEPTH} levels deep "
                                f"(at {_short(where)}); not a model edgekit can load")
        if isinstance(obj, dict):
            if "class_name" in obj and isinstance(obj.get("config"), dict):
                layers += 1
                if layers > MAX_LAYERS:
                    raise BadInputError(f"{label}: the model config holds more than {MAX_LAYERS:,} objects")
                _check_fields(label, obj)
            stack.extend((v, depth + 1, f"{where}.{_short(str(k))}") for k, v in obj.items())
        elif isinstance(obj, list):
            stack.extend((v, depth + 1, where) for v in obj)
        elif isinstance(obj, str) and len(obj) > MAX_STRING_CHARS:
            raise BadInputError(f"{label}: a string of {len(obj):,} characters at {_short(where)} in the model "
                                f"config (limit {MAX_STRING_CHARS:,})")


def _check_fields(label: str, obj: dict) -> None:
    inner = obj["config"]
    name = _short(str(inner.get("name", obj.get("class_name"))))
    for field in _SIZE_FIELDS:
        value = inner.get(field)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not 0 <= value <= MAX_DIM:
            raise BadInputError(f"{label}: layer '{name}': {field} = {_short(str(value))} is outside 0..{MAX_DIM:,}")
    for field in _SHAPE_FIELDS:
        shape = inner.get(field)
        if not isinstance(shape, list):
            continue
        per_sample = shape[1:] if field.startswith("batch") else shape
        dims = [d for d in per_sample if d is not None]
        if not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= MAX_DIM for d in dims):
            raise BadInputError(f"{label}: layer '{name}': {field} {_short(str(shape))} has a dimension that is not "
                                f"an integer in 0..{MAX_DIM:,}")
        elements = math.prod(dims)
        if elements > MAX_INPUT_ELEMENTS:
            raise BadInputError(f"{label}: layer '{name}': {field} {_short(str(shape))} is {elements:,} values per "
                                f"sample, over the limit of {MAX_INPUT_ELEMENTS:,}")


def _model_configs(config) -> list[dict]:
    """Every (nested) model config that lists layers: {"layers": [...], "input_layers": ..., ...}."""
    found, stack = [], [config]
    while stack:
        obj = stack.pop()
        if isinstance(obj, dict):
            if isinstance(obj.get("layers"), list):
                found.append(obj)
            stack.extend(obj.values())
        elif isinstance(obj, list):
            stack.extend(obj)
    return found


def _check_graph_references(label: str, model: dict) -> None:
    """Every tensor reference names a layer of this model, an existing call of it and a small tensor index.

    tf_keras rebuilds a functional model by retrying layers whose inputs are not built yet: a reference
    to a call that never happens makes it retry forever, so such a file would hang the loader.
    """
    calls: dict[str, int] = {}
    for layer in model["layers"]:
        if isinstance(layer, dict):
            name = layer.get("name", (layer.get("config") or {}).get("name") if isinstance(layer.get("config"),
                                                                                           dict) else None)
            nodes = layer.get("inbound_nodes")
            if isinstance(name, str):
                calls[name] = max(1, len(nodes) if isinstance(nodes, list) else 0) + _own_input_call(layer)
    if not any(isinstance(layer, dict) and "inbound_nodes" in layer for layer in model["layers"]):
        return  # a Sequential model: layers are chained in order, no references
    refs = []
    for layer in model["layers"]:
        if isinstance(layer, dict):
            refs += _references(layer.get("inbound_nodes"), tf_keras_nodes=True)
    for key in ("input_layers", "output_layers"):
        value = model.get(key)
        if isinstance(value, list) and value and isinstance(value[0], str):
            value = [value]
        refs += [r for r in (value or []) if isinstance(r, list)]
    for ref in refs:
        name = ref[0] if ref else None
        node, tensor = (ref[1], ref[2]) if len(ref) >= 3 else (None, None)
        if not isinstance(name, str) or name not in calls:
            raise BadInputError(f"{label}: the model config refers to a layer {_short(repr(name))} it does not "
                                "define; the file is damaged")
        if not (isinstance(node, int) and not isinstance(node, bool) and 0 <= node < calls[name]
                and isinstance(tensor, int) and not isinstance(tensor, bool) and 0 <= tensor < MAX_LAYERS):
            raise BadInputError(f"{label}: the model config refers to call {_short(repr(node))}, output "
                                f"{_short(repr(tensor))} of layer '{_short(name)}', which does not exist; the file "
                                "is damaged")


def _own_input_call(layer: dict) -> int:
    """1 for a nested model built on its own Input (keras.applications' ConvNeXt stem): Keras counts that
    construction as the model's call 0, so the outer graph's calls of it start at 1; else 0."""
    config = layer.get("config")
    inner = config.get("layers") if isinstance(config, dict) else None
    if not isinstance(inner, list):
        return 0
    return int(any(isinstance(x, dict) and x.get("class_name") == "InputLayer" for x in inner))


def _references(nodes, tf_keras_nodes: bool) -> list[list]:
    """[layer, node, tensor] references in inbound_nodes (tf_keras lists or Keras 3 keras_history)."""
    refs, stack = [], [(nodes, 0)]
    while stack:
        obj, level = stack.pop()
        if isinstance(obj, dict):
            history = obj.get("keras_history")
            if isinstance(history, list):
                refs.append(history)
                continue
            stack.extend((v, level + 1) for v in obj.values())
        elif isinstance(obj, list):
            if tf_keras_nodes and level == 2 and obj and isinstance(obj[0], str):
                refs.append(obj)  # tf_keras: nodes -> node -> [layer, node, tensor, kwargs]
                continue
            stack.extend((v, level + 1) for v in obj)
    return refs


def estimate_params(config: dict) -> int:
    """A lower bound of the parameters a config builds (channels followed through the layer list)."""
    total = 0
    channels: dict[str, int] = {}
    for layer in _layers(config):
        inner = layer.get("config") if isinstance(layer.get("config"), dict) else {}
        cls = str(layer.get("class_name", ""))
        if layer.get(_BACKWARD):  # reads the wrapper's input, like the forward layer: counted at 1 input channel
            total += _layer_params(cls, inner, 1)[0]
            continue
        c_in = _input_channels(layer, inner, channels)
        params, c_out = _layer_params(cls, inner, c_in)
        total += params
        if isinstance(inner.get("name"), str):
            channels[inner["name"]] = c_out
        channels["__previous__"] = c_out
    return total


_BACKWARD = "__edgekit_backward_layer__"  # marks a Bidirectional's explicit backward_layer in _layers' output


def _layers(config) -> list[dict]:
    out, stack = [], [config]
    while stack:
        obj = stack.pop()
        if isinstance(obj, dict):
            inner = obj.get("config")
            if isinstance(inner, dict) and isinstance(inner.get("layers"), list):
                stack.extend(reversed(inner["layers"]))
                continue
            if isinstance(inner, dict) and isinstance(inner.get("backward_layer"), dict):  # Bidirectional's own
                stack.append({**inner["backward_layer"], _BACKWARD: True})
            if isinstance(inner, dict) and isinstance(inner.get("layer"), dict):  # wrappers (Bidirectional, ...)
                stack.append(inner["layer"])
            if "class_name" in obj:
                out.append(obj)
        elif isinstance(obj, list):
            stack.extend(reversed(obj))
    return out


def _input_channels(layer: dict, inner: dict, channels: dict[str, int]) -> int:
    build = layer.get("build_config")
    shape = build.get("input_shape") if isinstance(build, dict) else None
    if isinstance(shape, list) and shape and isinstance(shape[-1], int) and not isinstance(shape[-1], bool):
        return shape[-1]
    for field in ("batch_input_shape", "batch_shape"):
        shape = inner.get(field)
        if isinstance(shape, list) and shape and isinstance(shape[-1], int):
            return shape[-1]
    source = _first_inbound(layer.get("inbound_nodes"))
    if source is not None and source in channels:
        return channels[source]
    return channels.get("__previous__", 1)


def _first_inbound(nodes) -> str | None:
    stack = [nodes]
    while stack:
        obj = stack.pop(0)
        if isinstance(obj, dict):
            history = obj.get("keras_history")
            if isinstance(history, list) and history and isinstance(history[0], str):
                return history[0]
            stack.extend(obj.values())
        elif isinstance(obj, list):
            if len(obj) >= 3 and isinstance(obj[0], str) and isinstance(obj[1], int):
                return obj[0]
            stack.extend(obj)
    return None


def _int(value, default: int = 1) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default


def _kernel(inner: dict) -> int:
    k = inner.get("kernel_size", 1)
    return math.prod(_int(d) for d in k) if isinstance(k, list) else _int(k)


def _layer_params(cls: str, inner: dict, c_in: int) -> tuple[int, int]:
    """(parameters, output channels) of one layer, from its config and its input channels."""
    c_in = _int(c_in)
    if cls in ("Dense", "EinsumDense"):
        units = _int(inner.get("units"))
        return units * c_in + units, units
    if "Conv" in cls and "filters" in inner and "Depthwise" not in cls:
        filters = _int(inner.get("filters"))
        groups = _int(inner.get("groups"))
        depthwise = c_in * _int(inner.get("depth_multiplier")) * _kernel(inner) if "Separable" in cls else 0
        spatial = 1 if "Separable" in cls else _kernel(inner)
        return depthwise + spatial * (c_in // groups or 1) * filters + filters, filters
    if "Depthwise" in cls:
        multiplier = _int(inner.get("depth_multiplier"))
        return _kernel(inner) * c_in * multiplier, c_in * multiplier
    if cls == "Embedding":
        return _int(inner.get("input_dim")) * _int(inner.get("output_dim")), _int(inner.get("output_dim"))
    if cls in ("LSTM", "GRU", "SimpleRNN", "ConvLSTM2D"):
        units = _int(inner.get("units", inner.get("filters")))
        gates = {"LSTM": 4, "GRU": 3}.get(cls, 1)
        return gates * units * (units + c_in + 1), units
    if cls in ("BatchNormalization", "LayerNormalization"):
        return 4 * c_in, c_in
    return 0, c_in
