"""save_model writes whole files or nothing, and never over the model it loaded."""

from __future__ import annotations

import os

import numpy as np
import pytest

from edgekit.errors import BadInputError
from edgekit.model_io import load_model, save_model


@pytest.fixture
def model(tk):
    inputs = tk.Input((4,))
    x = tk.layers.Dense(3, activation="relu")(inputs)
    return tk.Model(inputs, tk.layers.Dense(2)(x))


def _x():
    return np.random.default_rng(5).standard_normal((3, 4)).astype("float32")


@pytest.mark.parametrize("name, expected_format", [("out.h5", "tf_keras_h5"), ("out.keras", "tf_keras_keras")])
def test_saved_file_loads_back_identically(model, tmp_path, diff, name, expected_format):
    path = tmp_path / name
    save_model(model, path)
    assert sorted(os.listdir(tmp_path)) == [name]   # no temp file left behind
    loaded = load_model(path)
    assert loaded.format == expected_format
    assert diff(loaded.keras_model(_x()), model(_x())) == 0.0


def test_failed_save_leaves_no_file_and_keeps_the_old_one(model, tk, tmp_path, monkeypatch):
    path = tmp_path / "out.h5"
    path.write_bytes(b"previous contents")

    def half_written_then_crash(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"\x89HDF\r\n\x1a\n partial")
        raise OSError("disk full")

    monkeypatch.setattr(tk.Model, "save", half_written_then_crash)
    with pytest.raises(BadInputError, match=r"out\.h5: could not save the model: disk full"):
        save_model(model, path)
    assert os.listdir(tmp_path) == ["out.h5"]
    assert path.read_bytes() == b"previous contents"


def test_failed_save_of_a_new_file_leaves_nothing(model, tk, tmp_path, monkeypatch):
    def crash(self, filepath, *args, **kwargs):
        open(filepath, "wb").close()
        raise RuntimeError("boom")

    monkeypatch.setattr(tk.Model, "save", crash)
    with pytest.raises(BadInputError):
        save_model(model, tmp_path / "new.keras")
    assert os.listdir(tmp_path) == []


def test_refuses_to_overwrite_the_loaded_input(model, tmp_path, snapshot):
    path = tmp_path / "input.h5"
    save_model(model, path)
    loaded = load_model(path)
    before = snapshot(path)
    with pytest.raises(BadInputError, match="is the input model"):
        save_model(loaded, path)
    with pytest.raises(BadInputError, match="is the input model"):
        save_model(loaded.keras_model, str(path), overwrite=True)
    assert snapshot(path) == before


def test_existing_output_needs_overwrite(model, tmp_path):
    path = tmp_path / "existing.h5"
    path.write_bytes(b"keep me")
    with pytest.raises(BadInputError, match="already exists"):
        save_model(model, path, overwrite=False)
    assert path.read_bytes() == b"keep me"
    save_model(model, path)
    assert path.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"


def test_bad_targets(model, k3, tmp_path):
    with pytest.raises(BadInputError, match="extension '.pb'"):
        save_model(model, tmp_path / "model.pb")
    with pytest.raises(BadInputError, match="does not exist"):
        save_model(model, tmp_path / "missing_dir" / "model.h5")
    k3_inputs = k3.Input((2,))
    with pytest.raises(BadInputError, match="needs a tf_keras model"):
        save_model(k3.Model(k3_inputs, k3.layers.Dense(1)(k3_inputs)), tmp_path / "k3.h5")
    assert os.listdir(tmp_path) == []
