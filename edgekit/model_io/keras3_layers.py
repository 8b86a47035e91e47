"""Translate one Keras 3 layer into the equivalent tf_keras layer (config only; weights are copied later).

Keras 3 and tf_keras configs differ in small ways: dtype policies are dicts, nested objects carry
"module"/"registered_name", a few keys are renamed (LeakyReLU negative_slope -> alpha), some keys are
new (quantization_config, rms_scaling, ...), and a few activations have no tf_keras name. Each
difference is handled here explicitly; a key tf_keras does not know is dropped only when its value is
neutral (None / False / channels_last), otherwise the layer is refused with its name.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from edgekit.errors import BadInputError

# Keras 3 layer classes the bridge rebuilds (class name is the same in tf_keras).
SUPPORTED_LAYERS = frozenset({
    "Dense", "EinsumDense",
    "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose",
    "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D",
    "BatchNormalization", "LayerNormalization", "GroupNormalization", "UnitNormalization",
    "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax",
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
    "ActivityRegularization", "Identity",
    "MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D",
    "Flatten", "Reshape", "Permute", "RepeatVector",
    "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot",
    "ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D", "UpSampling1D", "UpSampling2D",
    "Rescaling", "Normalization", "Embedding",
    "LSTM", "GRU", "SimpleRNN", "Bidirectional", "MultiHeadAttention", "Conv3DTranspose", "UpSampling3D",
})
_RNN_LAYERS = frozenset({"LSTM", "GRU", "SimpleRNN"})
_RNN_BASE_KWARGS = ("zero_output_for_mask",)  # read by tf_keras' RNN base from **kwargs
# Keras 3's hard_sigmoid is relu6(x + 3) / 6, tf_keras' is clip(0.2 x + 0.5): as an RNN's recurrent
# activation (a config name, not a layer) it has no tf_keras equivalent.
_RECURRENT_ACTIVATIONS = frozenset({"sigmoid", "tanh", "relu", "linear", "softsign"})

# Keras 3 activation names with the same function under the same name in tf_keras.
_SAME_ACTIVATIONS = frozenset({
    "linear", "relu", "sigmoid", "tanh", "softmax", "elu", "selu", "softplus", "softsign", "exponential",
    "gelu", "mish", "swish",
})
_RENAMED_ACTIVATIONS = {"silu": "swish"}
# Keras 3 activations tf_keras has only as layers: the bridge appends these layers after the op.
# hard_sigmoid is relu6(x + 3) / 6 in Keras 3 (tf_keras' hard_sigmoid is 0.2x + 0.5): x/6 + 0.5, clipped to [0, 1].
_ACTIVATION_LAYERS = {
    "relu6": (("ReLU", {"max_value": 6.0}),),
    "leaky_relu": (("LeakyReLU", {"alpha": 0.2}),),   # Keras 3's leaky_relu default negative_slope
    "hard_sigmoid": (("Rescaling", {"scale": 1.0 / 6.0, "offset": 0.5}), ("ReLU", {"max_value": 1.0})),
}
# Keras 3 activations of the form x * f(x): the bridge appends f's layers, then multiplies by x.
# hard_silu (alias hard_swish) is x * hard_sigmoid(x), MobileNetV3's activation.
_GATED_ACTIVATIONS = {"hard_silu": _ACTIVATION_LAYERS["hard_sigmoid"], "hard_swish": _ACTIVATION_LAYERS["hard_sigmoid"]}

_RENAMED_KEYS = {"LeakyReLU": {"negative_slope": "alpha"}}
_BASE_LAYER_KWARGS = frozenset({
    "name", "trainable", "dtype", "dynamic", "input_dim", "input_shape", "batch_input_shape",
    "batch_size", "weights", "activity_regularizer", "autocast", "implementation",
})
_DTYPE_POLICY_CLASSES = frozenset({"DTypePolicy", "FloatDTypePolicy", "Policy"})


@dataclass(frozen=True)
class TranslatedLayer:
    """The tf_keras layer for a Keras 3 layer, plus activation layers to apply after it, if split off.

    gate: a Multiply layer when the activation is x * f(x) (hard_silu): the output is
    gate([layer(x), f(layer(x))]) with f the activation layers.
    """

    layer: object
    activation_layers: tuple = ()
    gate: object | None = None
    weight_transform: object | None = None   # Keras 3 weight arrays -> the tf_keras layer's, when they differ

    def __call__(self, *args, **kwargs):
        outputs = self.layer(*args, **kwargs)
        activated = outputs
        for activation_layer in self.activation_layers:
            activated = activation_layer(activated)
        return self.gate([outputs, activated]) if self.gate is not None else activated


def bridge_error(label: str, layer_name: str, class_name: str, reason: str) -> BadInputError:
    return BadInputError(
        f"{label}: Keras 3 bridge failed for layer '{layer_name}' ({class_name}): {reason}; "
        "re-save the model with tf_keras (TF_USE_LEGACY_KERAS=1) or replace that layer")


def translate_layer(k3_layer, tk, label: str, taken_names: set[str]) -> TranslatedLayer:
    """Build the unbuilt tf_keras layer matching `k3_layer`'s config (Lambda only reaches here when trusted)."""
    class_name = type(k3_layer).__name__
    name = k3_layer.name
    if class_name == "Lambda":
        return TranslatedLayer(tk.layers.Lambda(k3_layer.function, arguments=dict(k3_layer.arguments), name=name))
    if class_name == "LayerScale" and type(k3_layer).__module__ == "keras.src.applications.convnext":
        return _layer_scale(k3_layer, tk, label)
    if class_name not in SUPPORTED_LAYERS or not type(k3_layer).__module__.startswith("keras."):
        raise bridge_error(label, name, class_name, "this layer type has no tf_keras translation")
    tk_class = getattr(tk.layers, class_name)
    if class_name == "Bidirectional":
        return _bidirectional(k3_layer, tk, label, taken_names)
    config = to_tf_keras_config(k3_layer.get_config(), tk, label, name, class_name)
    for old, new in _RENAMED_KEYS.get(class_name, {}).items():
        if old in config:
            config[new] = config.pop(old)
    _check_layer_specific(config, label, name, class_name)
    activation_layers: tuple = ()
    if config.get("activation") in _GATED_ACTIVATIONS:
        return _gated(tk, tk_class, config, label, name, class_name, taken_names)
    if "activation" in config:
        tk_name, split = _translate_activation(config.get("activation"), label, name, class_name)
        if split is not None and class_name == "Activation":
            first, *rest = _activation_layers(tk, split, name, taken_names, first_name=name)
            return TranslatedLayer(first, tuple(rest))
        config["activation"] = tk_name if split is None else "linear"
        if split is not None:
            activation_layers = _activation_layers(tk, split, name, taken_names)
    rnn_only = {k: config.pop(k) for k in _RNN_BASE_KWARGS if k in config and class_name in _RNN_LAYERS}
    config = {**_drop_unknown_keys(config, tk_class, label, name, class_name), **rnn_only}
    try:
        # tf_keras' MultiHeadAttention.from_config wants the input shapes; the call builds it instead.
        layer = tk_class(**config) if class_name == "MultiHeadAttention" else tk_class.from_config(config)
    except Exception as exc:  # any constructor complaint is a translation failure for this layer
        raise bridge_error(label, name, class_name, f"tf_keras rejected the config ({_first_line(exc)})") from exc
    return TranslatedLayer(layer, activation_layers)


def _gated(tk, tk_class, config: dict, label: str, name: str, class_name: str, taken_names: set[str]):
    """The layer with a linear activation, then x * f(x) from split-off layers and a Multiply."""
    split = _GATED_ACTIVATIONS[config["activation"]]
    config = _drop_unknown_keys({**config, "activation": "linear"}, tk_class, label, name, class_name)
    try:
        layer = tk_class.from_config(config)
    except Exception as exc:  # any constructor complaint is a translation failure for this layer
        raise bridge_error(label, name, class_name, f"tf_keras rejected the config ({_first_line(exc)})") from exc
    gate = tk.layers.Multiply(name=unique_name(f"{name}_gate", taken_names))
    return TranslatedLayer(layer, _activation_layers(tk, split, name, taken_names), gate)


def _activation_layers(tk, split, name: str, taken_names: set[str], first_name: str | None = None) -> tuple:
    layers = []
    for index, (layer_class, kwargs) in enumerate(split):
        layer_name = first_name if index == 0 and first_name else unique_name(f"{name}_{layer_class.lower()}",
                                                                              taken_names)
        layers.append(getattr(tk.layers, layer_class)(name=layer_name, **kwargs))
    return tuple(layers)


def unique_name(base: str, taken: set[str]) -> str:
    """`base`, or `base_2`, `base_3`, ... whichever is not in `taken`; the result is added to `taken`."""
    candidate, index = base, 1
    while candidate in taken:
        index += 1
        candidate = f"{base}_{index}"
    taken.add(candidate)
    return candidate


def to_tf_keras_config(value, tk, label: str, layer_name: str, class_name: str):
    """Keras 3 serialised values -> tf_keras ones: policies become dtype names, nested objects lose module keys."""
    if isinstance(value, list):
        return [to_tf_keras_config(v, tk, label, layer_name, class_name) for v in value]
    if not isinstance(value, dict):
        return value
    nested_class = value.get("class_name")
    if isinstance(nested_class, str) and "config" in value:
        if nested_class in _DTYPE_POLICY_CLASSES:
            return value["config"]["name"]
        if nested_class.endswith("DTypePolicy"):
            raise bridge_error(label, layer_name, class_name, f"dtype policy {nested_class} is not supported")
        inner = to_tf_keras_config(value["config"], tk, label, layer_name, class_name)
        if isinstance(inner, dict):
            inner = _fit_nested_object(nested_class, inner, tk, label, layer_name, class_name)
        return {"class_name": nested_class, "config": inner}
    return {k: to_tf_keras_config(v, tk, label, layer_name, class_name) for k, v in value.items()}


def _fit_nested_object(nested_class: str, config: dict, tk, label: str, layer_name: str, class_name: str) -> dict:
    """Drop neutral Keras 3-only keys of an initializer / regularizer / constraint (e.g. input_axes=None)."""
    for module in (tk.initializers, tk.regularizers, tk.constraints):
        target = getattr(module, nested_class, None)
        if isinstance(target, type):
            return _drop_unknown_keys(config, target, label, layer_name, class_name, what=nested_class)
    return config


def _translate_activation(activation, label: str, layer_name: str, class_name: str):
    """(tf_keras activation name, None) or (None, (layer class, kwargs)) for activations tf_keras lacks."""
    if activation is None:
        return "linear", None
    if not isinstance(activation, str):
        raise bridge_error(label, layer_name, class_name, f"activation {activation!r} is not a built-in name")
    if activation in _SAME_ACTIVATIONS:
        return activation, None
    if activation in _RENAMED_ACTIVATIONS:
        return _RENAMED_ACTIVATIONS[activation], None
    if activation in _ACTIVATION_LAYERS:
        return None, _ACTIVATION_LAYERS[activation]
    raise bridge_error(label, layer_name, class_name, f"activation '{activation}' has no tf_keras equivalent")


def _layer_scale(k3_layer, tk, label: str) -> TranslatedLayer:
    """ConvNeXt's LayerScale (x * gamma, per channel) as a bias-free 1x1 depthwise convolution: a builtin
    tf_keras layer, so the bridged model saves, loads and prunes without custom objects."""
    rank = len(k3_layer.input.shape) if getattr(k3_layer, "_inbound_nodes", None) else 0
    if rank not in (3, 4):
        raise bridge_error(label, k3_layer.name, "LayerScale", f"only 3D and 4D inputs are bridged, not rank {rank}")
    depthwise = tk.layers.DepthwiseConv2D if rank == 4 else tk.layers.DepthwiseConv1D
    layer = depthwise(1, use_bias=False, name=k3_layer.name)
    kernel_shape = (1, 1, -1, 1) if rank == 4 else (1, -1, 1)
    return TranslatedLayer(layer, weight_transform=lambda values: [values[0].reshape(kernel_shape)])


def _bidirectional(k3_layer, tk, label: str, taken_names: set[str]) -> TranslatedLayer:
    """tf_keras Bidirectional around the translations of the Keras 3 forward and backward layers."""
    forward = translate_layer(k3_layer.forward_layer, tk, label, taken_names)
    backward = translate_layer(k3_layer.backward_layer, tk, label, taken_names)
    if forward.activation_layers or backward.activation_layers or forward.gate or backward.gate:
        raise bridge_error(label, k3_layer.name, "Bidirectional", "the wrapped layer's activation has no tf_keras "
                           "name")
    try:
        layer = tk.layers.Bidirectional(forward.layer, backward_layer=backward.layer,
                                        merge_mode=k3_layer.merge_mode, name=k3_layer.name)
    except Exception as exc:  # any constructor complaint is a translation failure for this layer
        raise bridge_error(label, k3_layer.name, "Bidirectional",
                           f"tf_keras rejected the wrapped layers ({_first_line(exc)})") from exc
    return TranslatedLayer(layer)


def _check_layer_specific(config: dict, label: str, name: str, class_name: str) -> None:
    recurrent = config.get("recurrent_activation")
    if recurrent is not None and recurrent not in _RECURRENT_ACTIVATIONS:
        raise bridge_error(label, name, class_name, f"recurrent_activation '{recurrent}' differs between Keras 3 "
                           "and tf_keras (or has no tf_keras name)")
    if class_name == "LayerNormalization" and config.get("rms_scaling"):
        raise bridge_error(label, name, class_name, "rms_scaling=True has no tf_keras equivalent")
    if class_name == "BatchNormalization" and config.get("renorm"):
        raise bridge_error(label, name, class_name, "batch renormalization is not bridged")


def _accepted_kwargs(cls) -> frozenset[str]:
    """Keyword arguments `cls.__init__` accepts, following **kwargs up the class hierarchy."""
    accepted: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        accepted.update(p for p in params if p != "self")
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            break
    return frozenset(accepted)


def _is_neutral(key: str, value) -> bool:
    return value in (None, False, [], {}) or (key == "data_format" and value == "channels_last")


def _drop_unknown_keys(config: dict, cls, label: str, layer_name: str, class_name: str,
                       what: str | None = None) -> dict:
    accepted = _accepted_kwargs(cls)
    if issubclass_safe(cls, "Layer"):
        accepted = accepted | _BASE_LAYER_KWARGS
    kept = {}
    for key, value in config.items():
        if key in accepted:
            kept[key] = value
        elif not _is_neutral(key, value):
            subject = f"{what} option" if what else "option"
            raise bridge_error(label, layer_name, class_name,
                               f"{subject} '{key}'={value!r} has no tf_keras equivalent")
    return kept


def issubclass_safe(cls, base_name: str) -> bool:
    return any(k.__name__ == base_name for k in getattr(cls, "__mro__", ()))


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
