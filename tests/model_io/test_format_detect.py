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


def _expect_bad(path, *fragments):
    with pytest.raises(BadInputError) as info:
        load_model(path)
    message = str(info.value)
    assert not isinstance(info.value, UnsafeModelError)
    assert message.startswith(f"{path}: ") and "\n" not in message
    for fragment in fragments:
        assert fragment in message
    return message


def test_missing_path(tmp_path):
    _expect_bad(tmp_path / "nowhere.h5", "no such file or directory")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.h5"
    path.write_bytes(b"")
    assert _expect_bad(path) == f"{path}: {NOT_A_MODEL}: file is empty"


def test_truncated_hdf5(tmp_path, tf_keras_h5_bytes):
    path = tmp_path / "truncated.h5"
    path.write_bytes(tf_keras_h5_bytes[: len(tf_keras_h5_bytes) // 2])
    _expect_bad(path, NOT_A_MODEL, "damaged or truncated")


def test_random_bytes(tmp_path):
    path = tmp_path / "garbage.h5"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    _expect_bad(path, NOT_A_MODEL, "HDF5 signature")


def test_text_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("these are not weights\n")
    _expect_bad(path, NOT_A_MODEL, "'.txt'")


def test_h5_that_is_really_a_zip(tmp_path, keras3_archive_bytes):
    path = tmp_path / "renamed.h5"
    path.write_bytes(keras3_archive_bytes)
    _expect_bad(path, "zip archive", "rename it to .keras")


def test_keras_that_is_really_hdf5(tmp_path, tf_keras_h5_bytes):
    path = tmp_path / "renamed.keras"
    path.write_bytes(tf_keras_h5_bytes)
    _expect_bad(path, "HDF5", "rename it to .h5")


def test_valid_model_with_a_foreign_extension(tmp_path, tf_keras_h5_bytes):
    path = tmp_path / "model.bin"
    path.write_bytes(tf_keras_h5_bytes)
    _expect_bad(path, "looks like an HDF5 model", "rename it to .h5")


def test_zip_without_keras_config(tmp_path):
    path = tmp_path / "other.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    _expect_bad(path, NOT_A_MODEL, "no config.json")


def test_truncated_keras_archive(tmp_path, keras3_archive_bytes):
    path = tmp_path / "truncated.keras"
    path.write_bytes(keras3_archive_bytes[: len(keras3_archive_bytes) // 2])
    _expect_bad(path, NOT_A_MODEL, "damaged or truncated")


@pytest.mark.parametrize("name", ["legacy_weights.h5", "only.weights.h5"])
def test_weights_only_hdf5(tk, tmp_path, name):
    inputs = tk.Input((3,))
    path = tmp_path / name
    tk.Model(inputs, tk.layers.Dense(2)(inputs)).save_weights(str(path))
    _expect_bad(path, NOT_A_MODEL, "no model config", "weights only")


def test_hdf5_without_any_keras_content(tmp_path):
    import h5py

    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as h5:
        h5["x"] = np.arange(3)
    _expect_bad(path, NOT_A_MODEL, "no model config")


def test_empty_directory(tmp_path):
    path = tmp_path / "empty_dir"
    path.mkdir()
    _expect_bad(path, NOT_A_MODEL, "no saved_model.pb")


def test_damaged_saved_model(tmp_path):
    path = tmp_path / "broken_savedmodel"
    path.mkdir()
    (path / "saved_model.pb").write_bytes(b"\xff\xff\xff\xff not a protobuf")
    _expect_bad(path, NOT_A_MODEL, "saved_model.pb")


def test_saved_model_pb_file_instead_of_its_directory(tmp_path):
    path = tmp_path / "saved_model.pb"
    path.write_bytes(b"\x08\x01")
    _expect_bad(path, "pass the SavedModel directory")


def test_invalid_model_config_json_is_reported(tmp_path):
    import h5py

    path = tmp_path / "bad_config.h5"
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = "{not json"
    _expect_bad(path, NOT_A_MODEL, "not valid JSON")


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
