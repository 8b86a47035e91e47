"""A tf_keras model as plain data (architecture JSON + weights) to rebuild in the conversion worker,
and the conversion-time copy with GRU / SimpleRNN layers unrolled.

Why unroll: a GRU or SimpleRNN converts to a TFLite WHILE loop, whose int8 calibration segfaults
TensorFlow 2.21's calibrator (Conv1D + GRU(48): SIGSEGV in calibrator._feed_tensors) and which TFLite
Micro cannot run well. With a static number of time steps the unrolled cell is plain
FULLY_CONNECTED / LOGISTIC / TANH / MUL / ADD ops, which every runtime has, with the same outputs.
LSTM is left alone: the converter fuses it into UNIDIRECTIONAL_SEQUENCE_LSTM, which TFLM and
LiteRT run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UNROLLED_RNNS = ("GRU", "SimpleRNN")
MAX_UNROLLED_STEPS = 512  # beyond this the unrolled graph is larger than the loop is worth
_BUILTIN_MODULES = ("tf_keras.", "keras.", "tensorflow_model_optimization.")


@dataclass(frozen=True, eq=False)
class PortableModel:
    """What the worker process needs to rebuild a model: its JSON, weights and whether it is QAT."""

    name: str
    architecture_json: str
    weights: list[np.ndarray]
    quantization_aware: bool


def portable(model, quantization_aware: bool) -> PortableModel | None:
    """The model as plain data, or None when it holds layers the worker could not rebuild by name alone
    (custom classes, Lambda: those were accepted in this process only, with --trust-model)."""
    for layer in _all_layers(model):
        cls = type(layer)
        if not cls.__module__.startswith(_BUILTIN_MODULES) or cls.__name__ == "Lambda":
            return None
    try:
        return PortableModel(model.name, model.to_json(), model.get_weights(), quantization_aware)
    except (TypeError, ValueError, NotImplementedError, AttributeError):  # subclassed models have no JSON
        return None


def rebuild(spec: PortableModel):
    """The tf_keras model back from `portable`; raises NotPortable when this version cannot rebuild it."""
    import contextlib

    from edgekit._tf import tf_keras
    from edgekit.runners.isolated import NotPortable

    keras = tf_keras()
    scope = contextlib.nullcontext()
    if spec.quantization_aware:
        import tensorflow_model_optimization as tfmot

        scope = tfmot.quantization.keras.quantize_scope()
    try:
        with scope:
            model = keras.models.model_from_json(spec.architecture_json)
        model.set_weights(spec.weights)
    except Exception as exc:  # any failure: the caller converts in its own process instead
        raise NotPortable(str(exc)) from exc
    return model


def with_rnns_unrolled(model):
    """A copy of a functional / sequential model with every GRU / SimpleRNN unrolled (same weights), or
    the model itself when there is nothing to unroll or it cannot be rebuilt from its config."""
    if not any(_rnn_to_unroll(layer) for layer in _all_layers(model)):
        return model
    from edgekit._tf import tf_keras

    keras = tf_keras()
    config = model.get_config()
    for layer_config in config.get("layers", []):
        _set_unroll(layer_config)
    try:
        copy = model.__class__.from_config(config) if type(model).__name__ == "Sequential" else \
            keras.Model.from_config(config)
        copy.set_weights(model.get_weights())
    except Exception:  # noqa: BLE001 - keep the loop; the isolated converter reports what it does with it
        return model
    return copy


def _rnn_to_unroll(layer) -> bool:
    cell_layer = getattr(layer, "forward_layer", layer)  # Bidirectional
    if type(cell_layer).__name__ not in UNROLLED_RNNS or getattr(cell_layer, "unroll", True):
        return False
    shape = getattr(layer, "input_shape", None)
    steps = shape[1] if isinstance(shape, tuple) and len(shape) > 2 else None
    return steps is not None and steps <= MAX_UNROLLED_STEPS


def _set_unroll(layer_config: dict) -> None:
    inner = layer_config.get("config", {})
    if layer_config.get("class_name") in UNROLLED_RNNS:
        inner["unroll"] = True
    elif layer_config.get("class_name") == "Bidirectional":
        for key in ("layer", "backward_layer"):
            if isinstance(inner.get(key), dict) and inner[key].get("class_name") in UNROLLED_RNNS:
                inner[key]["config"]["unroll"] = True


def _all_layers(model):
    for layer in getattr(model, "layers", ()):
        yield layer
        if hasattr(layer, "layers") and layer is not model:
            yield from _all_layers(layer)
        for attr in ("layer", "forward_layer", "backward_layer"):  # wrappers
            inner = getattr(layer, attr, None)
            if inner is not None and hasattr(inner, "get_config"):
                yield inner
