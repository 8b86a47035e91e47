"""Refuse models whose config would make a loader run code: Lambda layers and classes from outside Keras.

Works on the parsed architecture JSON only (pure Python): the check runs before any loader sees the file.
Keras 3 and tf_keras configs both nest objects as {"class_name": ..., "config": {...}}, Keras 3 adds
"module" and "registered_name"; every such object, at any depth (nested models, initializers,
regularizers, activations), is checked.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from edgekit.errors import UnsafeModelError

TRUST_HINT = "re-run with --trust-model if you trust its source (API: trust=True)"

# Built-in Keras classes whose deserialisation runs Python code (or unpickles objects) stored in the file.
_CODE_CARRYING_CLASSES = {
    "Lambda": "is a Lambda layer: loading it would run Python code stored in the file",
    "TorchModuleWrapper": "wraps a pickled PyTorch module: loading it would run code stored in the file",
    "JaxLayer": "wraps a JAX function: loading it would run code stored in the file",
    "FlaxLayer": "wraps a Flax module: loading it would run code stored in the file",
}

# Serialisation markers for plain values (tuples, tensors, shapes), not classes.
_VALUE_MARKERS = frozenset({
    "__tuple__", "__keras_tensor__", "__numpy__", "__tensor__", "__bytes__", "__slice__",
    "__ellipsis__", "__typespec__", "__passive_serialization__", "TensorShape", "TypeSpec",
})

# Training state: not deserialised when loading with compile=False, which edgekit always does.
_SKIPPED_KEYS = frozenset({"compile_config", "training_config", "optimizer_config"})

# tf_keras TFOpLambda layers call `tf.<function>` by name: only numeric op namespaces are accepted.
_TF_OP_NAMESPACES = frozenset({
    "__operators__", "math", "nn", "linalg", "image", "signal", "bitwise", "dtypes", "random", "sparse",
    "ragged", "strings", "sets", "quantization",
})
_TF_TOP_LEVEL_DENIED = frozenset({
    "print", "py_function", "numpy_function", "py_func", "eager_py_func", "load_op_library",
    "load_library", "load_pluggable_device_library", "function", "Variable", "init_scope",
})
_KERAS_PACKAGES = ("keras", "tf_keras")
# TensorFlow's own initializer classes (tf.constant_initializer ... as keras.applications' EfficientNetV2 uses):
# accepted under this module only when Keras resolves the class by its name (builtin_names), not from the module.
_TF_INITIALIZER_MODULES = ("tensorflow.python.ops.init_ops_v2", "tensorflow.python.ops.init_ops")


@dataclass(frozen=True)
class UnsafeObject:
    """One object in a model config whose loading would run code from the file or from outside Keras."""

    layer_name: str | None
    class_name: str
    reason: str
    module: str | None = None
    is_custom_class: bool = False   # True: a class from outside Keras (it may be importable when trusted)


def find_unsafe_objects(configs: Iterable[dict], builtin_names: Collection[str]) -> list[UnsafeObject]:
    """Every object in `configs` that loading would turn into code not shipped with Keras, in config order.

    builtin_names: class and function names that Keras itself resolves (layers, initializers,
    activations, ...); consulted only for objects that carry no "module" (tf_keras files).
    """
    found: list[UnsafeObject] = []
    seen: set[tuple[str | None, str]] = set()
    for config in configs:
        for item in _walk(config, None, builtin_names):
            key = (item.layer_name, item.class_name)
            if key not in seen:
                seen.add(key)
                found.append(item)
    return found


def refuse_unsafe(label: str, configs: Iterable[dict], builtin_names: Collection[str]) -> None:
    """Raise UnsafeModelError naming the first unsafe object of the model at `label`, if any."""
    found = find_unsafe_objects(configs, builtin_names)
    if found:
        raise UnsafeModelError(unsafe_message(label, found[0]))


def unsafe_message(label: str, item: UnsafeObject) -> str:
    where = f"layer '{item.layer_name}'" if item.layer_name else "the model"
    return f"{label}: {where} {item.reason}; {TRUST_HINT}"


def _is_layer_like(obj: dict) -> bool:
    # Layers carry a name plus other settings; dtype policies ({"name": "float32"}) carry only a name.
    inner = obj.get("config")
    return (isinstance(inner, dict) and isinstance(inner.get("name"), str) and len(inner) > 1
            and not str(obj.get("class_name", "")).endswith("Policy"))


def _walk(obj, layer_name: str | None, builtin_names: Collection[str]):
    if isinstance(obj, list):
        for value in obj:
            yield from _walk(value, layer_name, builtin_names)
        return
    if not isinstance(obj, dict):
        return
    class_name = obj.get("class_name")
    if isinstance(class_name, str) and class_name not in _VALUE_MARKERS:
        if _is_layer_like(obj):
            layer_name = obj["config"]["name"]
        problem = _check_object(obj, class_name, layer_name, builtin_names)
        if problem is not None:
            yield problem
            return  # its inner config belongs to the refused object
    for key, value in obj.items():
        if key not in _SKIPPED_KEYS:
            yield from _walk(value, layer_name, builtin_names)


def _check_object(obj: dict, class_name: str, layer_name: str | None,
                  builtin_names: Collection[str]) -> UnsafeObject | None:
    module = obj.get("module")
    registered_name = obj.get("registered_name")
    if class_name == "__lambda__":
        return UnsafeObject(layer_name, class_name,
                            "holds a Python lambda: loading it would run Python code stored in the file")
    if class_name in _CODE_CARRYING_CLASSES and (module is None or _is_keras_module(module)):
        return UnsafeObject(layer_name, class_name, _CODE_CARRYING_CLASSES[class_name], module)
    if class_name == "function":
        return _check_function(obj, layer_name, builtin_names)
    if class_name in ("TFOpLambda", "SlicingOpLambda"):
        return _check_tf_op(obj, class_name, layer_name)
    if module in _TF_INITIALIZER_MODULES and class_name in builtin_names:
        return None
    custom = (
        (module is not None and not _is_keras_module(module))
        or (isinstance(registered_name, str) and ">" in registered_name)
        or (module is None and class_name not in builtin_names)
    )
    if not custom:
        return None
    shown = registered_name if isinstance(registered_name, str) and ">" in registered_name else class_name
    origin = f" from module '{module}'" if module else ""
    what = "is" if _is_layer_like(obj) and obj["config"].get("name") == layer_name else "uses"
    reason = (f"{what} the custom class '{shown}'{origin}, which is not built into Keras: "
              "loading it would run code from outside Keras")
    return UnsafeObject(layer_name, class_name, reason, module, is_custom_class=True)


def _is_keras_module(module: str) -> bool:
    return any(module == pkg or module.startswith(pkg + ".") for pkg in _KERAS_PACKAGES)


def _check_function(obj: dict, layer_name: str | None, builtin_names: Collection[str]) -> UnsafeObject | None:
    """Keras 3 writes functions as {"class_name": "function", "config": name, "module": ...}."""
    module = obj.get("module")
    name = obj.get("config")
    if isinstance(module, str) and _is_keras_module(module):
        return None
    if module == "builtins" and isinstance(name, str) and name in builtin_names:
        return None  # Keras 3 resolves bare built-in names (activations) inside Keras only
    reason = (f"uses the custom function '{name}'{f' from module {module!r}' if module else ''}: "
              "loading it would run code from outside Keras")
    return UnsafeObject(layer_name, str(name), reason, module if module != "builtins" else None,
                        is_custom_class=True)


def _check_tf_op(obj: dict, class_name: str, layer_name: str | None) -> UnsafeObject | None:
    function = obj.get("config", {}).get("function")
    if not isinstance(function, str):
        return UnsafeObject(layer_name, class_name, f"is a {class_name} layer without a TensorFlow op name")
    namespace, _, rest = function.partition(".")
    allowed = namespace in _TF_OP_NAMESPACES if rest else function not in _TF_TOP_LEVEL_DENIED
    if allowed:
        return None
    return UnsafeObject(layer_name, class_name,
                        f"calls tf.{function}, which is not a numeric TensorFlow op: running the model "
                        "could act outside the model")
