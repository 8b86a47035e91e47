"""Load and save models: tf_keras .h5/.keras, Keras 3 files (bridged into tf_keras), SavedModels.

    >>> from edgekit.model_io import load_model, require_keras, save_model
    >>> loaded = load_model("teacher.keras")                      # doctest: +SKIP
    >>> model = require_keras(loaded, "pruning")                   # doctest: +SKIP
    >>> save_model(model, "build/teacher_tf_keras.h5")             # doctest: +SKIP

Modules: detect (format from file contents), safety (refuse code in configs), loading (load_model),
keras3_layers + keras3_bridge (Keras 3 -> tf_keras), saving (atomic save_model).
Importing this package does not import TensorFlow.
"""

from edgekit.model_io.detect import FORMATS
from edgekit.model_io.loading import LoadedModel, load_keras, load_model, require_keras
from edgekit.model_io.saving import save_model

__all__ = ["FORMATS", "LoadedModel", "load_keras", "load_model", "require_keras", "save_model"]
