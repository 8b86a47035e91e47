"""load_model: detect the format, refuse code-carrying configs, load with the right loader, bridge Keras 3.

Every library exception becomes a one-line BadInputError naming the file; the input is only read.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import shutil
import tempfile
from dataclasses import dataclass

from edgekit.errors import BadInputError, UnsupportedModelError
from edgekit.model_io.atomic import loaded_input_paths
from edgekit.model_io.config_limits import check_model_configs
from edgekit.model_io.detect import DetectedModel, detect_model
from edgekit.model_io.safety import UnsafeObject, find_unsafe_objects, refuse_unsafe

_DESCRIPTIONS = {
    "tf_keras_h5": "tf_keras HDF5 model",
    "keras3_h5": "Keras 3 HDF5 model",
    "tf_keras_keras": "tf_keras .keras archive",
    "keras3_keras": "Keras 3 .keras archive",
    "keras_saved_model": "Keras SavedModel",
    "saved_model": "SavedModel",
}


@dataclass(frozen=True)
class LoadedModel:
    """A model as loaded from disk.

    format: "tf_keras_h5" | "keras3_keras" | "keras3_h5" | "tf_keras_keras" | "keras_saved_model" |
    "saved_model". keras_model is a tf_keras Model, or None for a SavedModel without Keras metadata
    (then saved_model_dir is set). bridged: rebuilt from Keras 3 into tf_keras, with the largest output
    difference seen on the random-input check in bridge_max_abs_error.
    """

    path: str
    format: str
    keras_model: object | None
    saved_model_dir: str | None = None
    bridged: bool = False
    bridge_max_abs_error: float | None = None

    @property
    def is_keras(self) -> bool:
        return self.keras_model is not None


def load_model(path: str | os.PathLike, trust: bool = False) -> LoadedModel:
    """Load a Keras model file or SavedModel without running code stored in it (unless trust=True).

        >>> loaded = load_model("teacher.h5")                  # doctest: +SKIP
        >>> loaded.format, loaded.keras_model.count_params()   # doctest: +SKIP
        ('tf_keras_h5', 12345)

    Raises BadInputError for unreadable or non-model inputs, UnsafeModelError for Lambda layers or
    non-Keras classes when trust is False.
    """
    detected = detect_model(path)
    label = detected.path
    unsafe: list[UnsafeObject] = []
    check_model_configs(label, detected.configs)  # before any loader allocates what a config asks for
    if detected.configs:
        names = builtin_names()
        if not trust:
            refuse_unsafe(label, detected.configs, names)
        unsafe = find_unsafe_objects(detected.configs, names)
    loaded_input_paths.add(os.path.realpath(label))
    if detected.format == "saved_model":
        return LoadedModel(label, detected.format, None, saved_model_dir=label)
    custom_objects = _import_custom_objects(label, unsafe) if trust else {}
    return _load_keras(detected, trust, custom_objects, unsafe)


def require_keras(loaded: LoadedModel, purpose: str):
    """The tf_keras model of `loaded`; UnsupportedModelError if it is a SavedModel without Keras metadata."""
    if loaded.keras_model is None:
        raise UnsupportedModelError(
            f"{loaded.path}: is a SavedModel without Keras metadata: {purpose} needs a Keras model "
            "(.h5/.keras); save the original Keras model with model.save('model.h5') and use that")
    return loaded.keras_model


@functools.lru_cache(maxsize=1)
def builtin_names() -> frozenset[str]:
    """Class and function names Keras resolves by itself (tf_keras and Keras 3 public namespaces)."""
    from edgekit._tf import tf_keras

    tk = tf_keras()
    import keras

    modules = [tk.layers, tk.initializers, tk.regularizers, tk.constraints, tk.activations,
               tk.mixed_precision, tk.losses, tk.metrics,
               keras.layers, keras.initializers, keras.regularizers, keras.constraints, keras.activations,
               keras.dtype_policies, keras.losses, keras.metrics]
    names = {name for module in modules for name in dir(module) if not name.startswith("_")}
    names |= {"Functional", "Sequential", "Model", "TFOpLambda", "SlicingOpLambda", "Policy"}
    return frozenset(names | set(APPLICATION_LAYERS))


# Layers that keras.applications defines in its own modules (library code, not the model's) and that
# tf_keras cannot resolve from a file's config by itself: ConvNeXt's and Inception-ResNet's blocks.
APPLICATION_LAYERS = {"LayerScale": "tf_keras.src.applications.convnext",
                      "StochasticDepth": "tf_keras.src.applications.convnext",
                      "CustomScaleLayer": "tf_keras.src.applications.inception_resnet_v2"}


def _application_layers() -> dict[str, object]:
    from edgekit._tf import tf_keras

    tf_keras()  # TF's import settings first
    return {name: getattr(importlib.import_module(module), name) for name, module in APPLICATION_LAYERS.items()}


def _import_custom_objects(label: str, unsafe: list[UnsafeObject]) -> dict[str, object]:
    """Trusted load: import the modules that custom classes name, so the loaders can find them."""
    found: dict[str, object] = {}
    for item in unsafe:
        if not item.is_custom_class or not item.module or item.module == "__main__":
            continue
        try:
            module = importlib.import_module(item.module)
        except Exception as exc:  # ImportError or anything the module's own import raises
            raise BadInputError(
                f"{label}: layer '{item.layer_name}' uses class '{item.class_name}' from module "
                f"'{item.module}', which cannot be imported ({_first_line(exc)}): install that code "
                "or load the model where it is importable") from exc
        obj = getattr(module, item.class_name, None)
        if obj is not None:
            found[item.class_name] = obj
    return found


def _load_keras(detected: DetectedModel, trust: bool, custom_objects: dict, unsafe: list[UnsafeObject]):
    label, fmt = detected.path, detected.format
    try:
        if fmt == "tf_keras_h5":
            return _with_fallback(detected, trust, custom_objects, _load_tf_keras_file, _load_keras3)
        if fmt == "keras3_h5":
            return _with_fallback(detected, trust, custom_objects, _load_keras3, _load_tf_keras_file)
        if fmt == "keras3_keras":
            return _load_keras3(detected, trust, custom_objects)
        if fmt == "tf_keras_keras":
            return _load_tf_keras_archive(detected, trust, custom_objects)
        return _load_tf_keras_file(detected, trust, custom_objects)
    except BadInputError:
        raise
    except Exception as exc:  # every loader failure is reported as one line about this file
        raise _load_error(label, fmt, exc, unsafe) from exc


def _with_fallback(detected, trust, custom_objects, first, second):
    """Try the loader the file was written by; if it fails, the other engine sometimes reads it."""
    try:
        return first(detected, trust, custom_objects)
    except BadInputError:
        raise
    except Exception:
        with contextlib.suppress(Exception):
            return second(detected, trust, custom_objects)
        raise  # the first loader's error describes the file best


def _load_tf_keras_file(detected: DetectedModel, trust: bool, custom_objects: dict) -> LoadedModel:
    from edgekit._tf import tf_keras

    tk = tf_keras()
    # The h5 and SavedModel paths of tf_keras have no safe mode: the config check above stands in for it.
    model = tk.models.load_model(detected.path, custom_objects={**_application_layers(), **custom_objects},
                                 compile=False)
    saved_model_dir = detected.path if detected.format == "keras_saved_model" else None
    return LoadedModel(detected.path, detected.format, model, saved_model_dir=saved_model_dir)


def _load_tf_keras_archive(detected: DetectedModel, trust: bool, custom_objects: dict) -> LoadedModel:
    from edgekit._tf import tf_keras

    tk = tf_keras()
    # tf_keras opens .keras archives read-write ("r+b"): load from a private copy so the input is never opened so.
    with tempfile.TemporaryDirectory(prefix="edgekit-load-") as scratch:
        copy = os.path.join(scratch, "model.keras")
        shutil.copyfile(detected.path, copy)
        model = tk.models.load_model(copy, custom_objects={**_application_layers(), **custom_objects},
                                     compile=False, safe_mode=not trust)
    return LoadedModel(detected.path, detected.format, model)


def _load_keras3(detected: DetectedModel, trust: bool, custom_objects: dict) -> LoadedModel:
    from edgekit._tf import tf_keras

    tf_keras()  # environment and logging set up before Keras 3 imports TensorFlow
    import keras

    from edgekit.model_io.keras3_bridge import bridge_keras3_model

    k3_model = keras.saving.load_model(detected.path, custom_objects=custom_objects or None, compile=False,
                                       safe_mode=not trust)
    result = bridge_keras3_model(k3_model, detected.path)
    return LoadedModel(detected.path, detected.format, result.model, bridged=True,
                       bridge_max_abs_error=result.max_abs_error)


def _load_error(label: str, fmt: str, exc: Exception, unsafe: list[UnsafeObject]) -> BadInputError:
    message = str(exc)
    custom = [item for item in unsafe if item.is_custom_class]
    named = [item for item in custom if item.class_name in message] or custom
    if named:
        item = named[0]
        return BadInputError(
            f"{label}: layer '{item.layer_name}' uses class '{item.class_name}', which is not built into "
            "Keras and could not be found: import the code that defines it (registered with "
            "keras.saving.register_keras_serializable) before loading")
    return BadInputError(f"{label}: could not load the {_DESCRIPTIONS.get(fmt, 'model')}: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def load_keras(model_or_path, trust: bool = False, purpose: str = "analysis"):
    """A tf_keras model and its LoadedModel record (None for an in-memory model).

    purpose names what needs Keras layers ("pruning", "distillation") in the error for a non-Keras file.
    """
    if isinstance(model_or_path, (str, os.PathLike)):
        loaded = load_model(model_or_path, trust=trust)
        return require_keras(loaded, purpose), loaded
    return model_or_path, None
