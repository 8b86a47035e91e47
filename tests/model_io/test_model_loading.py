"""load_model on real files written by tf_keras, Keras 3 and tf.saved_model, with the real loaders."""

from __future__ import annotations

import os

import numpy as np
import pytest

from edgekit.errors import BadInputError, UnsafeModelError, UnsupportedModelError
from edgekit.model_io import load_model, require_keras


def _tf_keras_cnn(tk):
    inputs = tk.Input((8, 8, 2))
    x = tk.layers.Conv2D(3, 3, padding="same", activation="relu")(inputs)
    x = tk.layers.BatchNormalization()(x)
    x = tk.layers.GlobalAveragePooling2D()(x)
    model = tk.Model(inputs, tk.layers.Dense(4)(x))
    bn = model.layers[2]
    rng = np.random.default_rng(1)
    bn.set_weights([rng.uniform(0.5, 2, 3), rng.normal(size=3), rng.normal(size=3), rng.uniform(0.5, 2, 3)])
    return model


def _keras3_mlp(k3):
    inputs = k3.Input((5,))
    x = k3.layers.Dense(6, activation="relu")(inputs)
    x = k3.layers.Dropout(0.3)(x)
    return k3.Model(inputs, k3.layers.Dense(2, activation="softmax")(x))


def _batch(shape, seed=7):
    return np.random.default_rng(seed).standard_normal((3, *shape)).astype("float32")


def _listing(directory):
    return sorted(os.listdir(directory))


def test_tf_keras_h5_loads_with_tf_keras_and_leaves_the_file_alone(tk, tmp_path, snapshot, diff):
    model = _tf_keras_cnn(tk)
    path = tmp_path / "cnn.h5"
    model.save(path, save_format="h5")
    before, listing = snapshot(path), _listing(tmp_path)

    loaded = load_model(path)

    assert (loaded.format, loaded.bridged, loaded.is_keras) == ("tf_keras_h5", False, True)
    assert isinstance(loaded.keras_model, tk.Model)
    x = _batch((8, 8, 2))
    assert diff(loaded.keras_model(x), model(x)) == 0.0
    assert snapshot(path) == before and _listing(tmp_path) == listing


@pytest.mark.parametrize("extension, expected_format", [(".keras", "keras3_keras"), (".h5", "keras3_h5")])
def test_keras3_files_are_bridged_into_tf_keras(k3, tk, tmp_path, snapshot, diff, extension, expected_format):
    model = _keras3_mlp(k3)
    path = tmp_path / f"mlp{extension}"
    model.save(path)
    before, listing = snapshot(path), _listing(tmp_path)

    loaded = load_model(str(path))

    assert loaded.format == expected_format and loaded.bridged
    assert isinstance(loaded.keras_model, tk.Model)
    assert 0.0 <= loaded.bridge_max_abs_error <= 1e-5
    x = _batch((5,))
    assert diff(loaded.keras_model(x, training=False), model(x, training=False)) <= 1e-5
    assert snapshot(path) == before and _listing(tmp_path) == listing


def test_tf_keras_keras_archive_loads_without_the_bridge(tk, tmp_path, snapshot, diff):
    model = _tf_keras_cnn(tk)
    path = tmp_path / "cnn.keras"
    model.save(path, save_format="keras")
    os.chmod(path, 0o444)   # tf_keras opens archives "r+b": the loader must not need write access
    before = snapshot(path)

    loaded = load_model(path)

    assert (loaded.format, loaded.bridged) == ("tf_keras_keras", False)
    x = _batch((8, 8, 2))
    assert diff(loaded.keras_model(x), model(x)) == 0.0
    assert snapshot(path) == before


def test_tf_keras_saved_model_with_keras_metadata_loads_as_keras(tk, tmp_path, snapshot, diff):
    model = _tf_keras_cnn(tk)
    path = tmp_path / "cnn_savedmodel"
    model.save(path, save_format="tf")
    assert (path / "keras_metadata.pb").exists()
    before = snapshot(path)

    loaded = load_model(path)

    assert loaded.format == "keras_saved_model" and loaded.saved_model_dir == str(path)
    x = _batch((8, 8, 2))
    assert diff(require_keras(loaded, "pruning")(x), model(x)) <= 1e-6
    assert snapshot(path) == before


def test_plain_tf_module_saved_model_is_not_keras(tmp_path, snapshot):
    from edgekit._tf import tensorflow

    tf = tensorflow()

    class Scale(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(tf.ones((3, 2)))

        @tf.function(input_signature=[tf.TensorSpec((None, 3), tf.float32)])
        def __call__(self, x):
            return tf.matmul(x, self.w)

    path = tmp_path / "module_savedmodel"
    tf.saved_model.save(Scale(), str(path))
    before = snapshot(path)

    loaded = load_model(path)

    assert loaded.format == "saved_model" and loaded.keras_model is None and not loaded.is_keras
    assert loaded.saved_model_dir == str(path)
    with pytest.raises(UnsupportedModelError) as info:
        require_keras(loaded, "pruning")
    assert str(info.value) == (
        f"{path}: is a SavedModel without Keras metadata: pruning needs a Keras model (.h5/.keras); "
        "save the original Keras model with model.save('model.h5') and use that")
    assert snapshot(path) == before


# --- code stored in models -----------------------------------------------------------------------

def _tf_keras_lambda_model(tk):
    inputs = tk.Input((3,))
    x = tk.layers.Dense(3, kernel_initializer="ones", name="dense")(inputs)
    x = tk.layers.Lambda(lambda t: t * 2.0 + 1.0, name="double_plus_one")(x)
    return tk.Model(inputs, x)


def test_lambda_in_tf_keras_h5_is_refused_then_loads_when_trusted(tk, tmp_path, snapshot, diff):
    path = tmp_path / "lambda.h5"
    _tf_keras_lambda_model(tk).save(path, save_format="h5")
    before = snapshot(path)

    with pytest.raises(UnsafeModelError) as info:
        load_model(path)
    assert str(info.value) == (
        f"{path}: layer 'double_plus_one' is a Lambda layer: loading it would run Python code stored in "
        "the file; re-run with --trust-model if you trust its source (API: trust=True)")

    loaded = load_model(path, trust=True)
    x = np.array([[1.0, 2.0, 3.0]], "float32")
    assert diff(loaded.keras_model(x), np.full((1, 3), 13.0)) <= 1e-6   # (1+2+3) * 2 + 1
    assert snapshot(path) == before


def test_lambda_in_keras3_archive_is_refused_then_bridged_when_trusted(k3, tmp_path, diff):
    inputs = k3.Input((4,))
    x = k3.layers.Dense(4, name="dense")(inputs)
    x = k3.layers.Lambda(lambda t: t * t - 1.0, name="square_minus_one")(x)
    model = k3.Model(inputs, k3.layers.Dense(2, name="head")(x))
    path = tmp_path / "lambda.keras"
    model.save(path)

    with pytest.raises(UnsafeModelError, match=r"lambda\.keras: layer 'square_minus_one' is a Lambda layer"):
        load_model(path)

    loaded = load_model(path, trust=True)
    assert loaded.bridged and "Lambda" in [type(layer).__name__ for layer in loaded.keras_model.layers]
    x = _batch((4,))
    assert diff(loaded.keras_model(x), model(x)) <= 1e-5


def test_lambda_nested_inside_a_keras3_sub_model_is_found(k3, tmp_path):
    inner = k3.Sequential([k3.Input((3,)), k3.layers.Lambda(lambda t: t + 1.0, name="hidden_lambda")],
                          name="inner")
    inputs = k3.Input((3,))
    model = k3.Model(inputs, k3.layers.Dense(1)(inner(inputs)))
    path = tmp_path / "nested.keras"
    model.save(path)
    with pytest.raises(UnsafeModelError, match="layer 'hidden_lambda' is a Lambda layer"):
        load_model(path)


def test_custom_layer_class_is_refused_and_unimportable_when_trusted(tk, tmp_path):
    class TimesThree(tk.layers.Layer):   # defined here, so no loader can find it by name
        def call(self, x):
            return x * 3.0

    inputs = tk.Input((2,))
    model = tk.Model(inputs, TimesThree(name="times_three")(tk.layers.Dense(2)(inputs)))
    path = tmp_path / "custom.h5"
    model.save(path, save_format="h5")

    with pytest.raises(UnsafeModelError) as info:
        load_model(path)
    message = str(info.value)
    assert "layer 'times_three' is the custom class 'TimesThree'" in message and "trust=True" in message

    with pytest.raises(BadInputError) as info:
        load_model(path, trust=True)
    assert not isinstance(info.value, UnsafeModelError)
    assert "class 'TimesThree'" in str(info.value) and "\n" not in str(info.value)


def test_registered_keras3_custom_class_is_refused(k3, tmp_path):
    @k3.saving.register_keras_serializable(package="edgekit_tests")
    class Shift(k3.layers.Layer):
        def call(self, x):
            return x + 1.0

    inputs = k3.Input((2,))
    path = tmp_path / "custom.keras"
    k3.Model(inputs, Shift(name="shift")(inputs)).save(path)
    with pytest.raises(UnsafeModelError, match="layer 'shift' is the custom class 'edgekit_tests>Shift'"):
        load_model(path)


def test_trusted_custom_class_from_a_module_that_is_not_installed(k3, tmp_path):
    class Gate(k3.layers.Layer):
        def call(self, x):
            return x * 0.5

    Gate.__module__ = "edgekit_tests_not_installed.layers"   # what Keras 3 records for the class
    inputs = k3.Input((2,))
    path = tmp_path / "foreign.keras"
    k3.Model(inputs, Gate(name="gate")(inputs)).save(path)

    with pytest.raises(UnsafeModelError, match="from module 'edgekit_tests_not_installed.layers'"):
        load_model(path)
    with pytest.raises(BadInputError) as info:
        load_model(path, trust=True)
    assert not isinstance(info.value, UnsafeModelError)
    assert "layer 'gate' uses class 'Gate' from module 'edgekit_tests_not_installed.layers', which cannot be " \
           "imported" in str(info.value)


def test_nested_model_built_on_its_own_input_loads_and_a_call_past_it_is_refused(tmp_path):
    """keras.applications ConvNeXt: a Sequential stem with its own Input is called as node 1 of the outer graph."""
    import json

    import h5py
    import numpy as np

    from edgekit._tf import tf_keras
    from edgekit.errors import BadInputError
    from edgekit.model_io.loading import load_model

    keras = tf_keras()
    stem = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 2, strides=2)], name="stem")
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(stem(inputs))))
    path = tmp_path / "nested.h5"
    model.save(path)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32)
    assert np.allclose(load_model(path).keras_model(x), model(x), atol=1e-6)

    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(path.read_bytes())
    with h5py.File(damaged, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        flatten = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "Flatten")
        assert flatten["inbound_nodes"][0][0][:2] == ["stem", 1]
        flatten["inbound_nodes"][0][0][1] = 2  # a call of the stem that never happens: would hang the loader
        f.attrs["model_config"] = json.dumps(config)
    with pytest.raises(BadInputError, match="call 2, output 0 of layer 'stem'"):
        load_model(damaged)


@pytest.mark.slow
def test_keras_applications_convnext_h5_loads_without_trust_and_its_own_layers_only(tmp_path):
    """ConvNeXt's LayerScale is keras.applications' own code: loaded as a built-in; a look-alike from another
    module is still refused."""
    import json

    import h5py

    from edgekit._tf import tf_keras
    from edgekit.errors import UnsafeModelError
    from edgekit.model_io.loading import load_model

    keras = tf_keras()
    model = keras.applications.ConvNeXtTiny(weights=None, input_shape=(32, 32, 3), classes=4,
                                            classifier_activation=None)
    path = tmp_path / "convnext.h5"
    model.save(path)
    x = np.random.default_rng(0).normal(size=(1, 32, 32, 3)).astype(np.float32)
    loaded = load_model(path).keras_model
    assert loaded.count_params() == model.count_params()
    assert np.allclose(loaded(x), model(x), atol=1e-5)

    foreign = tmp_path / "foreign.h5"
    foreign.write_bytes(path.read_bytes())
    with h5py.File(foreign, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        scale = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "LayerScale")
        scale["module"] = "evil.layers"
        f.attrs["model_config"] = json.dumps(config)
    with pytest.raises(UnsafeModelError):
        load_model(foreign)
