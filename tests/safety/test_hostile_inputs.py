"""Small hostile files are refused before anything large is allocated, never hang, never trace back (issue 11)."""

from __future__ import annotations

import os
import shutil
import zipfile

import numpy as np
import pytest
from hostile_files import (
    deep_nesting,
    huge_filters,
    huge_input,
    keras_zip_bomb,
    npy_lying_header,
    npz_bomb,
    png_bomb,
    rewrite_h5_config,
    tiny_h5,
    yaml_alias_bomb,
)

from edgekit.data import load_data
from edgekit.errors import BadInputError
from edgekit.model_io.config_limits import estimate_params
from edgekit.model_io.limits import MAX_ARRAY_BYTES, MAX_CONFIG_BYTES
from edgekit.model_io.loading import load_model
from edgekit.profiles import load_profile


@pytest.fixture(scope="module")
def h5_model(tmp_path_factory, keras):
    return tiny_h5(tmp_path_factory.mktemp("h5") / "m.h5", keras)


def _variant(h5_model, tmp_path, edit) -> str:
    path = tmp_path / "hostile.h5"
    shutil.copy(h5_model, path)
    return rewrite_h5_config(path, edit)


def test_the_real_model_still_loads_and_its_estimate_is_a_lower_bound(h5_model):
    loaded = load_model(h5_model)
    import json

    import h5py

    with h5py.File(h5_model) as h5:
        config = json.loads(h5.attrs["model_config"])
    # Conv2D 3x3x3x4 + 4 counted exactly; the Dense after Flatten only by its channels (a lower bound).
    assert estimate_params(config) == 112 + (4 * 3 + 3) <= loaded.keras_model.count_params()


@pytest.mark.parametrize("edit, match", [
    (huge_filters, r"about 1\d\d,\d{3},\d{3} parameters, over the limit"),
    (huge_input, r"layer 'image': batch_input_shape .* over the limit"),
    (deep_nesting, "nested too deeply"),
    (lambda c: deep_nesting(c, depth=300), "nested more than 64 levels"),
    (lambda c: {**c, "config": {**c["config"], "name": "n" * (2 << 20)}}, "a string of 2,097,152 characters"),
])
def test_hostile_h5_configs_are_refused_before_deserialising(h5_model, tmp_path, edit, match):
    with pytest.raises(BadInputError, match=match) as err:
        load_model(_variant(h5_model, tmp_path, edit))
    assert "hostile.h5" in str(err.value) and len(str(err.value)) < 300


def test_h5_with_a_huge_unwritten_weight_dataset_is_refused(h5_model, tmp_path):
    import h5py

    path = tmp_path / "weights_bomb.h5"
    shutil.copy(h5_model, path)
    with h5py.File(path, "r+") as h5:  # 4 GiB declared, nothing written: the file stays small
        h5.create_dataset("model_weights/conv/huge", shape=(1 << 30,), dtype="f4", chunks=(1 << 20,))
    assert os.path.getsize(path) < 1 << 20
    with pytest.raises(BadInputError, match="datasets declare more than 1,073,741,824 bytes"):
        load_model(path)


def test_keras_archive_whose_weights_declare_gigabytes_is_refused(tmp_path, keras):
    import h5py

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="d")])
    model.save(tmp_path / "m.keras")
    bomb = tmp_path / "bomb.keras"
    with zipfile.ZipFile(tmp_path / "m.keras") as src, zipfile.ZipFile(bomb, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "model.weights.h5":
                (tmp_path / "w.h5").write_bytes(data)
                with h5py.File(tmp_path / "w.h5", "r+") as h5:
                    h5.create_dataset("extra", shape=(1 << 30,), dtype="f4", chunks=(1 << 20,))
                data = (tmp_path / "w.h5").read_bytes()
            dst.writestr(info, data)
    with pytest.raises(BadInputError, match="bomb.keras: model.weights.h5: the HDF5 datasets declare more than"):
        load_model(bomb)


def test_keras_archive_bombs_and_escaping_names_are_refused(tmp_path):
    bomb = keras_zip_bomb(tmp_path / "bomb.keras", inflated_bytes=MAX_CONFIG_BYTES + (8 << 20))
    assert os.path.getsize(bomb) < 1 << 20
    with pytest.raises(BadInputError, match="config.json unpacks to 41,943,040 bytes, over the limit"):
        load_model(bomb)
    escaping = tmp_path / "escape.keras"
    with zipfile.ZipFile(escaping, "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("../../evil.py", "print('x')")
    with pytest.raises(BadInputError, match=r"'../../evil.py' points outside the archive"):
        load_model(escaping)


def test_npz_bomb_and_lying_npy_header_are_refused_from_their_headers(tmp_path):
    bomb = npz_bomb(tmp_path / "bomb.npz", rows=(MAX_ARRAY_BYTES // 8) + (16 << 20))
    assert os.path.getsize(bomb) < 8 << 20
    with pytest.raises(BadInputError, match=r"bomb.npz: x.npy: the array header declares shape \(150994944,\)"):
        load_data(bomb)
    with pytest.raises(BadInputError, match=r"shape \(1000000000000, 40\).*over the limit"):
        load_data(npy_lying_header(tmp_path / "lie.npy"))
    small_lie = npy_lying_header(tmp_path / "small_lie.npy", rows=1000)  # 160 KB claimed, 1 KB held
    with pytest.raises(BadInputError, match="truncated or damaged"):
        load_data(small_lie)
    escaping = tmp_path / "escape.npz"
    with zipfile.ZipFile(escaping, "w") as archive:
        archive.writestr("../x.npy", b"")
    with pytest.raises(BadInputError, match="escape.npz: the archive member name '../x.npy' points outside"):
        load_data(escaping)
    zeros = tmp_path / "zeros.npy"
    zeros.write_bytes(bytes(4096))
    with pytest.raises(BadInputError, match="starts with zero bytes"):
        load_data(zeros)


def test_decompression_bomb_png_is_refused(tmp_path):
    folder = tmp_path / "images" / "cat"
    folder.mkdir(parents=True)
    png_bomb(folder / "big.png")
    with pytest.raises(BadInputError, match="big.png: image is too large"):
        load_data(tmp_path / "images", model_input_shape=(None, 32, 32, 3))


def test_fifos_and_folders_are_refused_without_blocking(tmp_path, h5_model):
    fifo = tmp_path / "pipe.h5"
    os.mkfifo(fifo)
    with pytest.raises(BadInputError, match=r"pipe.h5: is a FIFO \(named pipe\), not a model file"):
        load_model(fifo)
    data_fifo = tmp_path / "pipe.npz"
    os.mkfifo(data_fifo)
    with pytest.raises(BadInputError, match="pipe.npz: is a FIFO"):
        load_data(data_fifo)
    images = tmp_path / "imgs" / "a"
    images.mkdir(parents=True)
    np.save(tmp_path / "unused.npy", np.zeros(2))
    os.mkfifo(images / "frame.png")
    with pytest.raises(BadInputError, match="frame.png: is a FIFO"):
        load_data(tmp_path / "imgs", model_input_shape=(None, 8, 8, 3))
    profile_fifo = tmp_path / "board.yaml"
    os.mkfifo(profile_fifo)
    with pytest.raises(BadInputError, match="board.yaml: is a FIFO"):
        load_profile(profile_fifo)
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(BadInputError, match="dir.yaml: is a folder"):
        load_profile(tmp_path / "dir.yaml")


@pytest.mark.parametrize("text, match", [
    (yaml_alias_bomb(), "expands to more than 100,000 values"),
    ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than 32 levels deep"),
    ("name: x\nram_bytes: " + "9" * 5000 + "\n", "a number with 5,000 digits at line 2"),
    ("name: '" + "x" * 20000 + "'\n", "a value of 20,000 characters"),
])
def test_hostile_yaml_profiles_are_refused_before_building(tmp_path, text, match):
    path = tmp_path / "board.yaml"
    path.write_text(text)
    with pytest.raises(BadInputError, match=match) as err:
        load_profile(path)
    assert str(err.value).startswith(str(path)) or "board.yaml" in str(err.value)


def test_a_bidirectional_backward_layer_counts_towards_the_limit():
    from edgekit.model_io.config_limits import check_model_configs

    def config(backward_units: int) -> dict:
        wrapper = {"name": "bi", "layer": {"class_name": "LSTM", "config": {"name": "f", "units": 4}},
                   "backward_layer": {"class_name": "LSTM", "config": {"name": "b", "units": backward_units,
                                                                        "go_backwards": True}}}
        return {"class_name": "Sequential", "config": {"name": "s", "layers": [
            {"class_name": "InputLayer", "config": {"name": "in", "batch_input_shape": [None, 5, 3]}},
            {"class_name": "Bidirectional", "config": wrapper}]}}

    # forward: 4 gates x 4 units x (4 + 3 inputs + 1); backward at 1 input channel (a lower bound)
    assert estimate_params(config(6)) == 4 * 4 * (4 + 3 + 1) + 4 * 6 * (6 + 1 + 1)
    with pytest.raises(BadInputError, match="over the limit"):
        check_model_configs("m.h5", [config(30_000)])  # 3.6e9 parameters in the backward layer alone
