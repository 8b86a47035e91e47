"""Rebuild a loaded Keras 3 model as the same graph of tf_keras layers, copy its weights, prove equality.

edgekit's pruning and sparsity tools run on the tf_keras (Keras 2) engine, which cannot read Keras 3
files. The bridge walks the Keras 3 graph node by node (Sequential, Functional, and models nested in
either), creates one tf_keras layer per Keras 3 layer (keras3_layers.translate_layer), calls it on the
mapped tensors, copies weights layer by layer, then runs both models on the same random inputs: a
difference above TOLERANCE is a BadInputError that names the first layer whose outputs differ.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np

from edgekit.errors import BadInputError
from edgekit.model_io.keras3_layers import TranslatedLayer, bridge_error, translate_layer, unique_name

TOLERANCE = 1e-5          # max abs difference, scaled up for outputs whose magnitude exceeds 1
_BATCH = 2
_FREE_DIM = 8             # stands in for unknown (None) non-batch dimensions in the check


@dataclass(frozen=True)
class BridgeResult:
    model: object            # tf_keras Model
    max_abs_error: float     # over all outputs, on the random-input check


def bridge_keras3_model(k3_model, label: str, seed: int = 0) -> BridgeResult:
    """tf_keras copy of the Keras 3 model `k3_model`, verified on random inputs (BadInputError if unequal)."""
    from edgekit._tf import tf_keras

    builder = _GraphBuilder(tf_keras(), label, _all_layer_names(k3_model))
    tk_model = builder.rebuild(k3_model)
    builder.copy_weights()
    inputs = random_inputs(k3_model, seed)
    error, tolerance = _output_error(k3_model, tk_model, inputs, label)
    if not error <= tolerance:
        failure = _diverging_layer_error(builder.pairs, label, error, tolerance, seed)
        if failure is not None:
            raise failure
    return BridgeResult(tk_model, error)


def _all_layer_names(model) -> set[str]:
    names = {model.name}
    for layer in getattr(model, "layers", ()):
        names |= _all_layer_names(layer)
    return names


def _is_sequential(model) -> bool:
    import keras

    return isinstance(model, keras.Sequential)


def _is_functional(model) -> bool:
    return hasattr(model, "_nodes_by_depth") and hasattr(model, "_inputs_struct")


# keras.ops element-wise arithmetic (what `x + y`, `x * 0.5` on Keras 3 tensors record) -> Python operator
# on tf_keras tensors, or the merge layer when both operands are tensors of the same shape.
_ELEMENTWISE_OPS = {
    "Add": (operator.add, "Add"), "Subtract": (operator.sub, "Subtract"),
    "Multiply": (operator.mul, "Multiply"), "TrueDivide": (operator.truediv, None),
    "Divide": (operator.truediv, None), "Negative": (operator.neg, None),
}


@dataclass(frozen=True)
class _ElementwiseOp:
    name: str
    function: object
    merge_layer: str | None

    def __call__(self, tk, args, taken_names: set[str]):
        tensors = [a for a in args if not isinstance(a, (int, float, np.number, np.ndarray))]
        if (self.merge_layer and len(args) == 2 and len(tensors) == 2
                and tensors[0].shape.as_list() == tensors[1].shape.as_list()):
            return getattr(tk.layers, self.merge_layer)(name=unique_name(self.name, taken_names))(list(args))
        return self.function(*args)


class _GraphBuilder:
    """Creates tf_keras layers for Keras 3 operations (once each, so shared layers stay shared)."""

    def __init__(self, tk, label: str, taken_names: set[str]):
        self.tk = tk
        self.label = label
        self.taken_names = taken_names
        self.pairs: list[tuple[object, TranslatedLayer]] = []   # leaf layers, in build order
        self._by_op: dict[int, object] = {}

    def rebuild(self, k3_model):
        if _is_sequential(k3_model):
            model = self._rebuild_sequential(k3_model)
        elif _is_functional(k3_model):
            model = self._rebuild_functional(k3_model)
        else:
            raise bridge_error(self.label, k3_model.name, type(k3_model).__name__,
                               "a subclassed model has no layer graph to rebuild")
        if not k3_model.trainable:   # a frozen nested backbone stays frozen
            model.trainable = False
        return model

    def _translate(self, op):
        import keras

        key = id(op)
        if key not in self._by_op:
            if isinstance(op, keras.Model):
                self._by_op[key] = self.rebuild(op)
            elif isinstance(op, keras.layers.Layer):
                translated = translate_layer(op, self.tk, self.label, self.taken_names)
                self.pairs.append((op, translated))
                self._by_op[key] = translated
            elif type(op).__name__ in _ELEMENTWISE_OPS and type(op).__module__.startswith("keras."):
                function, merge_layer = _ELEMENTWISE_OPS[type(op).__name__]
                self._by_op[key] = _ElementwiseOp(op.name, function, merge_layer)
            else:
                name = getattr(op, "name", type(op).__name__)
                raise bridge_error(self.label, name, type(op).__name__,
                                   "this keras.ops operation is not bridged (only + - * / and negation are); "
                                   "use layers")
        return self._by_op[key]

    def _input(self, k3_tensor, name: str):
        return self.tk.Input(batch_shape=tuple(k3_tensor.shape), dtype=k3_tensor.dtype,
                             sparse=bool(getattr(k3_tensor, "sparse", False)) or None, name=name)

    def _rebuild_sequential(self, k3_model):
        try:
            k3_input = k3_model.inputs[0]
        except (AttributeError, IndexError, TypeError, ValueError) as exc:
            raise bridge_error(self.label, k3_model.name, "Sequential",
                               "the model was never built (no input shape)") from exc
        model = self.tk.Sequential(name=k3_model.name)
        model.add(self._input(k3_input, k3_input._keras_history[0].name))
        for k3_layer in k3_model.layers:
            translated = self._translate(k3_layer)
            if isinstance(translated, TranslatedLayer) and translated.gate is not None:
                raise bridge_error(self.label, k3_layer.name, type(k3_layer).__name__,
                                   "an x * f(x) activation (hard_silu) in a Sequential model has no single-path "
                                   "tf_keras form; build the model with the functional API")
            if isinstance(translated, TranslatedLayer):
                model.add(translated.layer)
                for activation_layer in translated.activation_layers:
                    model.add(activation_layer)
            else:
                model.add(translated)
        return model

    def _rebuild_functional(self, k3_model):
        import keras

        tensors: dict[int, object] = {}
        for k3_input in k3_model.inputs:
            tensors[id(k3_input)] = self._input(k3_input, k3_input._keras_history[0].name)
        nodes_by_depth = k3_model._nodes_by_depth
        for depth in sorted(nodes_by_depth, reverse=True):
            for node in nodes_by_depth[depth]:
                if node.is_input:
                    continue
                if any(id(t) not in tensors for t in node.input_tensors):
                    raise bridge_error(self.label, node.operation.name, type(node.operation).__name__,
                                       "an input of this layer is not connected to the model inputs")
                args, kwargs = node.arguments.fill_in(tensors)
                kwargs = {k: v for k, v in kwargs.items() if v is not None}
                translated = self._translate(node.operation)
                if isinstance(translated, _ElementwiseOp):
                    outputs = translated(self.tk, args, self.taken_names)
                else:
                    outputs = self._call(translated, args, kwargs)
                for k3_tensor, tk_tensor in zip(node.outputs, keras.tree.flatten(outputs)):
                    tensors[id(k3_tensor)] = tk_tensor
        inputs = keras.tree.map_structure(lambda t: tensors[id(t)], k3_model._inputs_struct)
        outputs = keras.tree.map_structure(lambda t: tensors[id(t)], k3_model._outputs_struct)
        return self.tk.Model(inputs=inputs, outputs=outputs, name=k3_model.name)

    @staticmethod
    def _call(translated, args, kwargs):
        return translated(*args, **kwargs)   # a TranslatedLayer or a rebuilt nested model

    def copy_weights(self) -> None:
        """Copy each leaf layer's weights in order, checking count and shapes (orders verified per type)."""
        for k3_layer, translated in self.pairs:
            values = [np.asarray(w) for w in k3_layer.get_weights()]
            if translated.weight_transform is not None:
                values = translated.weight_transform(values)
            targets = translated.layer.weights
            name, class_name = k3_layer.name, type(k3_layer).__name__
            if len(values) != len(targets):
                raise bridge_error(self.label, name, class_name,
                                   f"{len(values)} weight arrays in Keras 3 but {len(targets)} in tf_keras")
            for value, target in zip(values, targets):
                if tuple(value.shape) != tuple(target.shape):
                    raise bridge_error(self.label, name, class_name,
                                       f"weight {target.name} has shape {tuple(target.shape)} in tf_keras "
                                       f"but {tuple(value.shape)} in Keras 3")
            translated.layer.set_weights(values)


def random_inputs(k3_model, seed: int = 0):
    """Random arrays shaped like the model inputs; integer-valued in [0, vocabulary) if it embeds tokens."""
    import keras

    rng = np.random.default_rng(seed)
    vocabulary = _smallest_vocabulary(k3_model)
    arrays = [_random_array(rng, t, vocabulary) for t in k3_model.inputs]
    if _is_functional(k3_model):
        return keras.tree.pack_sequence_as(k3_model._inputs_struct, arrays)
    return arrays[0]


def _random_array(rng, k3_tensor, vocabulary: int | None) -> np.ndarray:
    shape = [(_BATCH if i == 0 else _FREE_DIM) if d is None else d for i, d in enumerate(k3_tensor.shape)]
    try:
        dtype = np.dtype(k3_tensor.dtype)
    except TypeError:  # e.g. bfloat16, which NumPy does not know: feed float32 and let Keras cast
        dtype = np.dtype("float32")
    if vocabulary is not None or np.issubdtype(dtype, np.integer):
        return rng.integers(0, vocabulary or 2, size=shape).astype(dtype)
    if np.issubdtype(dtype, np.floating):
        return rng.standard_normal(shape).astype(dtype)
    return np.zeros(shape, dtype)


def _smallest_vocabulary(model) -> int | None:
    sizes = [layer.input_dim for layer in _leaf_layers(model) if type(layer).__name__ == "Embedding"]
    return min(sizes) if sizes else None


def _leaf_layers(model):
    for layer in getattr(model, "layers", ()):
        if getattr(layer, "layers", None):
            yield from _leaf_layers(layer)
        else:
            yield layer


def _flat_numpy(outputs) -> list[np.ndarray]:
    import keras

    return [np.asarray(o) for o in keras.tree.flatten(outputs)]


def _output_error(k3_model, tk_model, inputs, label: str) -> tuple[float, float]:
    """(max abs difference over all outputs, tolerance for those outputs)."""
    try:
        expected = _flat_numpy(k3_model(inputs, training=False))
    except Exception as exc:  # a model that cannot run on its own declared input shape
        raise BadInputError(f"{label}: Keras 3 bridge could not run the original model on random inputs "
                            f"({_first_line(exc)})") from exc
    try:
        actual = _flat_numpy(tk_model(inputs, training=False))
    except Exception as exc:
        raise BadInputError(f"{label}: Keras 3 bridge built a tf_keras model that does not run "
                            f"({_first_line(exc)})") from exc
    if len(expected) != len(actual):
        raise BadInputError(f"{label}: Keras 3 bridge produced {len(actual)} outputs instead of {len(expected)}")
    return _compare(expected, actual)


def _compare(expected: list[np.ndarray], actual: list[np.ndarray]) -> tuple[float, float]:
    """(max abs difference, tolerance); NaN/inf must appear in the same places in both or it is a mismatch."""
    error, scale = 0.0, 1.0
    for e, a in zip(expected, actual):
        if e.shape != a.shape:
            return float("inf"), TOLERANCE
        e, a = e.astype(np.float64), a.astype(np.float64)
        finite = np.isfinite(e)
        if not np.array_equal(finite, np.isfinite(a)) or not np.array_equal(e[~finite], a[~finite], equal_nan=True):
            return float("inf"), TOLERANCE
        if finite.any():
            error = max(error, float(np.max(np.abs(e[finite] - a[finite]))))
            scale = max(scale, float(np.max(np.abs(e[finite]))))
    return error, TOLERANCE * scale


def _diverging_layer_error(pairs, label: str, model_error: float, model_tolerance: float,
                           seed: int) -> BadInputError | None:
    """Re-check each translated layer alone on random inputs shaped like its own, to name the culprit.

    None when every layer matches on its own and the model's difference stays within the tolerance times
    its depth: float32 rounding differences between two engines compound layer after layer (a 100-layer
    MobileNetV3 differs by ~1e-3 at unit-scale outputs), which is not a translation error.
    """
    for k3_layer, translated in pairs:
        error, tolerance = _layer_error(k3_layer, translated, seed)
        if not error <= tolerance:
            return bridge_error(label, k3_layer.name, type(k3_layer).__name__,
                                f"its tf_keras copy differs by {error:.3g} (tolerance {tolerance:.1g})")
    depth_tolerance = model_tolerance * max(1, len(pairs))
    if model_error <= depth_tolerance:
        return None
    return BadInputError(f"{label}: Keras 3 bridge failed: the model outputs differ by {model_error:.3g} "
                         f"(tolerance {depth_tolerance:.3g} for {len(pairs)} layers) although every layer "
                         "matches on its own")


def _layer_error(k3_layer, translated: TranslatedLayer, seed: int) -> tuple[float, float]:
    nodes = getattr(k3_layer, "_inbound_nodes", [])
    if not nodes:
        return 0.0, TOLERANCE
    rng = np.random.default_rng(seed)
    vocabulary = getattr(k3_layer, "input_dim", None) if type(k3_layer).__name__ == "Embedding" else None
    values = {id(t): _random_array(rng, t, vocabulary) for t in nodes[0].input_tensors}
    args, kwargs = nodes[0].arguments.fill_in(values)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    try:
        expected = _flat_numpy(k3_layer(*args, **kwargs))
        actual = _flat_numpy(_GraphBuilder._call(translated, args, kwargs))
    except Exception:  # noqa: BLE001 - a layer that cannot run alone is not the one to blame here
        return 0.0, TOLERANCE
    return _compare(expected, actual)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
