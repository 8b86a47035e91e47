"""Bad inputs are one-line BadInputErrors naming the file; detection goes by contents, not the name."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from edgekit.errors import BadInputError, UnsafeModelError
from edgekit.model_io import load_model
from edgekit.model_io.detect import NOT_A_MODEL, detect_model


@pytest.fixture(scope="module")
def tf_keras_h5_bytes(tk, tmp_path_factory):
    inputs = tk.Input((3,))
    path = tmp_path_factory.mktemp("src") / "small.h5"
    tk.Model(inputs, tk.layers.Dense(2)(inputs)).save(path, save_format="h5")
    return path.read_bytes()


@pytest.fixture(scope="module")
def keras3_archive_bytes(k3, tmp_path_factory):
    inputs = k3.Input((3,))
    path = tmp_path_factory.mktemp("src") / "small.keras"
    k3.Model(inputs, k3.layers.Dense(2)(inputs)).save(path)
    return path.read_bytes()


def _bad_input_message(path) -> str:
    """The one-line BadInputError load_model raises for `path` (it must start with the path)."""
    with pytest.raises(BadInputError) as info:
        load_model(path)
    message = str(info.value)
    assert not isinstance(info.value, UnsafeModelError)
    assert message.startswith(f"{path}: ") and "\n" not in message
    return message


def test_missing_path(tmp_path):
    message = _bad_input_message(tmp_path / "nowhere.h5")
    assert "no such file or directory" in message


def test_empty_file(tmp_path):
    path = tmp_path / "empty.h5"
    path.write_bytes(b"")
    assert _bad_input_message(path) == f"{path}: {NOT_A_MODEL}: file is empty"


def test_truncated_hdf5(tmp_path, tf_keras_h5_bytes):
    path = tmp_path / "truncated.h5"
    path.write_bytes(tf_keras_h5_bytes[: len(tf_keras_h5_bytes) // 2])
    message = _bad_input_message(path)
    assert NOT_A_MODEL in message and "damaged or truncated" in message


def test_random_bytes(tmp_path):
    path = tmp_path / "garbage.h5"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    message = _bad_input_message(path)
    assert NOT_A_MODEL in message and "HDF5 signature" in message


def test_text_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("these are not weights\n")
    message = _bad_input_message(path)
    assert NOT_A_MODEL in message and "'.txt'" in message


def test_h5_that_is_really_a_zip(tmp_path, keras3_archive_bytes):
    path = tmp_path / "renamed.h5"
    path.write_bytes(keras3_archive_bytes)
    message = _bad_input_message(path)
    assert "zip archive" in message and "rename it to .keras" in message


def test_keras_that_is_really_hdf5(tmp_path, tf_keras_h5_bytes):
    path = tmp_path / "renamed.keras"
    path.write_bytes(tf_keras_h5_bytes)
    message = _bad_input_message(path)
    assert "HDF5" in message and "rename it to .h5" in message


def test_valid_model_with_a_foreign_extension(tmp_path, tf_keras_h5_bytes):
    path = tmp_path / "model.bin"
    path.write_bytes(tf_keras_h5_bytes)
    message = _bad_input_message(path)
    assert "looks like an HDF5 model" in message and "rename it to .h5" in message


def test_zip_without_keras_config(tmp_path):
    path = tmp_path / "other.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    message = _bad_input_message(path)
    assert NOT_A_MODEL in message and "no config.json" in message


def test_truncated_keras_archive(tmp_path, keras3_archive_bytes):
    path = tmp_path / "truncated.keras"
    path.write_bytes(keras3_archive_bytes[: len(keras3_archive_bytes) // 2])
    message = _bad_input_message(path)
    assert NOT_A_MODEL in message and "damaged or truncated" in message


@pytest.mark.parametrize("name", ["legacy_weights.h5", "only.weights.h5"])
def test_weights_only_hdf5(tk, tmp_path, name):
    inputs = tk.Input((3,))
    path = tmp_path / name
    tk.Model(inputs, tk.layers.Dense(2)(inputs)).save_weights(str(path))
    message = _bad_input_message(path)
    assert NOT_A_MODEL in message and "no model config" in message and "weights only" in message


def test_hdf5_without_any_keras_content(tmp_path):
    import h5py

    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as h5:
        h5["x"] = np.arange(3)
    message = _bad_input_message(path)
    assert NOT_A_MODEL in message and "no model config" in message


def test_empty_directory(tmp_path):
    path = tmp_path / "empty_dir"
    path.mkdir()
    message = _bad_input_message(path)
    assert NOT_A_MODEL in message and "no saved_model.pb" in message


def test_damaged_saved_model(tmp_path):
    path = tmp_path / "broken_savedmodel"
    path.mkdir()
    (path / "saved_model.pb").write_bytes(b"\xff\xff\xff\xff not a protobuf")
    message = _bad_input_message(path)
    assert NOT_A_MODEL in message and "saved_model.pb" in message


def test_saved_model_pb_file_instead_of_its_directory(tmp_path):
    path = tmp_path / "saved_model.pb"
    path.write_bytes(b"\x08\x01")
    message = _bad_input_message(path)
    assert "pass the SavedModel directory" in message


def test_invalid_model_config_json_is_reported(tmp_path):
    import h5py

    path = tmp_path / "bad_config.h5"
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = "{not json"
    message = _bad_input_message(path)
    assert NOT_A_MODEL in message and "not valid JSON" in message


def test_engine_is_told_from_root_attributes(tmp_path, tf_keras_h5_bytes, k3):
    tf_keras_path = tmp_path / "a.h5"
    tf_keras_path.write_bytes(tf_keras_h5_bytes)
    keras3_path = tmp_path / "b.h5"
    inputs = k3.Input((3,))
    k3.Model(inputs, k3.layers.Dense(2)(inputs)).save(keras3_path)

    tf_keras_detected, keras3_detected = detect_model(tf_keras_path), detect_model(keras3_path)

    assert (tf_keras_detected.format, tf_keras_detected.keras_version[0]) == ("tf_keras_h5", "2")
    assert (keras3_detected.format, keras3_detected.keras_version[0]) == ("keras3_h5", "3")
    assert keras3_detected.configs[0]["class_name"] == "Functional"
