"""Taps into teacher and student: logits before a softmax/sigmoid head, hint layers, 1x1 adapters.

A tap is a tf_keras Model over the same layers (weights shared, nothing copied) whose outputs are
`[logits, *feature maps]`. Heads ending in a softmax or sigmoid are tapped before it: a Softmax /
Activation layer's input is used as is; a Dense or Conv layer with activation='softmax' is called again
with its activation switched off (same variables, so training the tap trains the model).

This module imports TensorFlow at load time; `edgekit.distill` imports it only when distilling.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekit._tf import tensorflow, tf_keras
from edgekit.errors import BadInputError, UnsupportedModelError

tf = tensorflow()
keras = tf_keras()

HEAD_KINDS = ("softmax", "sigmoid", "linear")
_SOFTMAX_SYMBOLS = ("nn.softmax", "math.softmax")
_SIGMOID_SYMBOLS = ("math.sigmoid", "nn.sigmoid", "sigmoid")


@dataclass(frozen=True)
class HintPair:
    """One FitNets hint / attention-transfer pair: student layer -> teacher layer, with both output shapes."""

    student_layer: str
    teacher_layer: str
    student_shape: tuple
    teacher_shape: tuple


class LinearCall(keras.layers.Layer):
    """Calls a Dense/Conv layer with its activation switched off: its pre-activation output, same weights."""

    def __init__(self, layer, **kwargs):
        super().__init__(name=kwargs.pop("name", f"{layer.name}_logits"), **kwargs)
        self.inner = layer

    def call(self, inputs):
        saved = self.inner.activation
        self.inner.activation = keras.activations.linear
        try:
            return self.inner.call(inputs)
        finally:
            self.inner.activation = saved


class LogOfProbabilities(keras.layers.Layer):
    """log(p) of a probability output: softmax(log p / T) == softmax(logits / T) up to float rounding.

    The fallback for models whose graph cannot be tapped (subclassed models).
    """

    def __init__(self, model, **kwargs):
        super().__init__(name=kwargs.pop("name", "log_probabilities"), **kwargs)
        self.model = model

    def call(self, inputs, training=None):
        return tf.math.log(tf.maximum(self.model(inputs, training=training), 1e-12))


def is_graph_model(model) -> bool:
    """True for functional and (built) Sequential models, whose layers' tensors can be tapped."""
    return bool(getattr(model, "_is_graph_network", False)) and bool(model.outputs)


def head_kind(model) -> str:
    """'softmax', 'sigmoid' or 'linear': what the model's (single) output layer ends with."""
    if not is_graph_model(model):
        return "linear"
    return _head(model)[0]


def logits_tensor(model):
    """The model's pre-softmax/sigmoid output tensor (the output itself for linear heads)."""
    kind, layer, logits_input = _head(model)
    if kind == "linear":
        return model.outputs[0]
    if logits_input is not None:
        return logits_input
    return LinearCall(layer)(layer.input)


def tap_model(model, feature_layers=(), name: str = "tap"):
    """A Model over `model`'s layers returning [logits, *outputs of feature_layers] (weights shared)."""
    _check_single_io(model)
    if not is_graph_model(model):
        if feature_layers:
            raise UnsupportedModelError(f"model {model.name}: hint and attention losses need a functional or "
                                        "Sequential model (layer outputs cannot be tapped in a subclassed one)")
        return None
    outputs = [logits_tensor(model)] + [_layer(model, n).output for n in feature_layers]
    return keras.Model(model.inputs, outputs, name=f"{model.name}_{name}")


def feature_candidates(model) -> list:
    """Per spatial size, the deepest layer whose output is a feature map: (name, output shape) pairs.

    These are the 'block outputs' of a conv network (the last tensor before each downsampling).
    """
    if not is_graph_model(model):
        return []
    deepest = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer) or len(layer._inbound_nodes) != 1:
            continue
        shape = tuple(layer.output_shape) if not isinstance(layer.output_shape, list) else None
        if shape is None or len(shape) not in (3, 4, 5) or any(d is None for d in shape[1:]):
            continue
        if layer.output is model.outputs[0]:
            continue
        deepest[shape[1:-1]] = (layer.name, shape)  # later (deeper) layers overwrite earlier ones
    return list(deepest.values())


def auto_hint_pairs(student, teacher) -> list[HintPair]:
    """Pair student and teacher block outputs of the same spatial size, deepest first, one-to-one."""
    teacher_by_size = {shape[1:-1]: (name, shape) for name, shape in feature_candidates(teacher)}
    pairs = []
    for s_name, s_shape in reversed(feature_candidates(student)):
        if s_shape[1:-1] in teacher_by_size:
            t_name, t_shape = teacher_by_size[s_shape[1:-1]]
            pairs.append(HintPair(s_name, t_name, s_shape, t_shape))
    return pairs


def named_hint_pairs(student, teacher, names) -> list[HintPair]:
    """HintPairs from (student_layer, teacher_layer) names, checked to exist and be compatible."""
    pairs = []
    for item in names:
        if isinstance(item, HintPair):
            pairs.append(item)
            continue
        try:
            s_name, t_name = item
        except (TypeError, ValueError):
            raise BadInputError(f"hint_pairs: {item!r} is not a (student_layer, teacher_layer) pair") from None
        s_shape, t_shape = _output_shape(student, s_name, "student"), _output_shape(teacher, t_name, "teacher")
        if len(s_shape) != len(t_shape):
            raise BadInputError(f"hint pair ({s_name}, {t_name}): outputs {s_shape} and {t_shape} have "
                                "different ranks; pair layers of the same kind")
        pairs.append(HintPair(s_name, t_name, s_shape, t_shape))
    return pairs


def make_adapter(student_shape: tuple, teacher_shape: tuple, name: str):
    """A learned 1x1 map from the student's channels to the teacher's (Dense for vectors), built."""
    rank = len(student_shape)
    channels = int(teacher_shape[-1])
    if rank == 2:
        layer = keras.layers.Dense(channels, name=name)
    elif rank == 3:
        layer = keras.layers.Conv1D(channels, 1, name=name)
    elif rank == 4:
        layer = keras.layers.Conv2D(channels, 1, name=name)
    elif rank == 5:
        layer = keras.layers.Conv3D(channels, 1, name=name)
    else:
        raise BadInputError(f"hint adapter {name}: cannot adapt features of shape {student_shape}")
    layer.build((None,) + tuple(student_shape[1:]))
    return layer


def _head(model):
    """(kind, layer, logits tensor or None): None means 'call LinearCall(layer)'."""
    output = model.outputs[0]
    layer = output._keras_history.layer
    if isinstance(layer, keras.layers.Softmax):
        return "softmax", layer, layer.input
    if isinstance(layer, keras.layers.Activation):
        kind = _activation_kind(layer.activation)
        return (kind, layer, layer.input) if kind != "linear" else ("linear", layer, None)
    symbol = getattr(layer, "symbol", None)  # tf.nn.softmax(x) in a functional model: a TFOpLambda
    if symbol in _SOFTMAX_SYMBOLS or symbol in _SIGMOID_SYMBOLS:
        node = layer._inbound_nodes[output._keras_history.node_index]
        first = node.call_args[0] if node.call_args else next(iter(node.call_kwargs.values()))
        return ("softmax" if symbol in _SOFTMAX_SYMBOLS else "sigmoid"), layer, first
    kind = _activation_kind(getattr(layer, "activation", None))
    if kind != "linear":
        if not hasattr(layer, "kernel") or len(layer._inbound_nodes) != 1:
            raise UnsupportedModelError(f"model {model.name}: output layer {layer.name} applies {kind} inside a "
                                        f"{type(layer).__name__}; cannot tap its logits")
        return kind, layer, None
    return "linear", layer, None


def _activation_kind(activation) -> str:
    if activation is None:
        return "linear"
    name = getattr(activation, "__name__", "")
    if activation is keras.activations.softmax or name == "softmax":
        return "softmax"
    if activation is keras.activations.sigmoid or name == "sigmoid":
        return "sigmoid"
    return "linear"


def _check_single_io(model) -> None:
    inputs = model.inputs if is_graph_model(model) else None
    if inputs is not None and (len(inputs) != 1 or len(model.outputs) != 1):
        raise UnsupportedModelError(f"model {model.name}: distillation supports one input and one output, "
                                    f"this model has {len(inputs)} and {len(model.outputs)}")


def _layer(model, name: str):
    try:
        return model.get_layer(name)
    except ValueError:
        names = [layer.name for layer in model.layers]
        raise BadInputError(f"model {model.name}: no layer named {name!r} (layers: {', '.join(names)})") from None


def _output_shape(model, name: str, role: str) -> tuple:
    if not is_graph_model(model):
        raise UnsupportedModelError(f"{role} {model.name}: hint layers need a functional or Sequential model")
    layer = _layer(model, name)
    if len(layer._inbound_nodes) != 1 or isinstance(layer.output_shape, list):
        raise BadInputError(f"{role} layer {name}: used more than once or has several outputs; pick another")
    return tuple(layer.output_shape)
