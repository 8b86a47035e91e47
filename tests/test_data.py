"""edgekit.data: loading .npz / .npy / image folders, shape checks against the model, stratified split."""

import numpy as np
import pytest
from PIL import Image

from edgekit.data import Dataset, conform_to_input_shape, load_data, split
from edgekit.errors import BadInputError


def _npz(tmp_path, name="d.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_npz_with_labels_loads_as_float32(tmp_path):
    x = np.arange(30, dtype=np.int16).reshape(10, 3)
    path = _npz(tmp_path, x=x, y=np.arange(10) % 2)
    ds = load_data(path, model_input_shape=(None, 3))
    assert ds.x.dtype == np.float32 and ds.x.shape == (10, 3)
    np.testing.assert_array_equal(ds.x, x.astype(np.float32))
    np.testing.assert_array_equal(ds.y, np.arange(10) % 2)
    assert ds.source == str(path) and ds.notices == () and len(ds) == 10


def test_npy_is_unlabelled(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.ones((4, 5), np.float64))
    ds = load_data(path)
    assert ds.y is None and ds.x.shape == (4, 5) and ds.x.dtype == np.float32


def test_missing_channel_axis_is_added_with_a_notice(tmp_path):
    path = _npz(tmp_path, x=np.zeros((6, 40)))
    ds = load_data(path, model_input_shape=(None, 40, 1))
    assert ds.x.shape == (6, 40, 1)
    assert len(ds.notices) == 1 and "added a trailing channel axis" in ds.notices[0]
    assert "(6, 40) -> (6, 40, 1)" in ds.notices[0]


@pytest.mark.parametrize("x_shape, model_shape, fix", [
    ((6, 40), (None, 40, 3), "add one of size 3"),
    ((6, 40, 1, 1), (None, 40, 1), "drop the trailing axis"),
    ((6, 32), (None, 40, 1), "give each sample the model's input shape"),
    ((6, 28), (None, 40), "resize or crop"),
    ((6, 784), (None, 28, 28, 1), "reshape x to (N, 28, 28, 1)"),
    ((6, 3, 8, 8), (None, 8, 8, 3), "channels-first"),
])
def test_shape_mismatch_names_both_shapes_and_the_fix(tmp_path, x_shape, model_shape, fix):
    path = _npz(tmp_path, x=np.zeros(x_shape))
    with pytest.raises(BadInputError) as err:
        load_data(path, model_input_shape=model_shape)
    message = str(err.value)
    assert "d.npz" in message and fix in message
    assert str(tuple(x_shape)) in message and str(model_shape) in message
    assert "\n" not in message


def test_variable_length_model_axis_accepts_any_size():
    x, notice = conform_to_input_shape(np.zeros((2, 17, 4), np.float32), (None, None, 4))
    assert x.shape == (2, 17, 4) and notice is None


@pytest.mark.parametrize("arrays, fault", [
    ({"features": np.zeros((3, 2))}, "no array named 'x'"),
    ({"x": np.zeros((3, 2)), "y": np.zeros(4)}, "x has 3 samples but y has 4 entries"),
    ({"x": np.array([["a", "b"]])}, "not numbers"),
    ({"x": np.zeros((0, 5))}, "is empty"),
    ({"x": np.array([[1.0, np.nan]])}, "NaN"),
    ({"x": np.zeros((3, 2)), "y": np.array(["a", "b", "c"])}, "y has dtype"),
])
def test_bad_npz_contents(tmp_path, arrays, fault):
    path = _npz(tmp_path, **arrays)
    with pytest.raises(BadInputError, match=fault) as err:
        load_data(path)
    assert "d.npz" in str(err.value)


def test_unreadable_and_unknown_files(tmp_path):
    with pytest.raises(BadInputError, match="no such file"):
        load_data(tmp_path / "missing.npz")
    (tmp_path / "data.csv").write_text("1,2\n")
    with pytest.raises(BadInputError, match="unknown data format"):
        load_data(tmp_path / "data.csv")
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(BadInputError, match="broken.npz"):
        load_data(tmp_path / "broken.npz")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(BadInputError, match="without pickle"):
        load_data(tmp_path / "objects.npy")


def test_image_folder_resized_scaled_and_labelled(tmp_path):
    root = tmp_path / "images"
    for label, value in (("cat", 255), ("dog", 0)):
        (root / label).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (20, 10), (value, value // 2, 0)).save(root / label / f"{i}.png")
    ds = load_data(root, model_input_shape=(None, 8, 16, 3))
    assert ds.x.shape == (6, 8, 16, 3) and ds.class_names == ("cat", "dog")
    np.testing.assert_array_equal(ds.y, [0, 0, 0, 1, 1, 1])
    np.testing.assert_allclose(ds.x[0, 0, 0], [1.0, 127 / 255, 0.0], atol=1e-6)
    assert ds.x.max() <= 1.0 and ds.x.min() >= 0.0
    gray = load_data(root, model_input_shape=(None, 4, 4, 1))
    assert gray.x.shape == (6, 4, 4, 1)


def test_image_folder_faults(tmp_path):
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(BadInputError, match="no images found"):
        load_data(tmp_path / "empty")
    bad = tmp_path / "bad" / "a"
    bad.mkdir(parents=True)
    (bad / "x.png").write_bytes(b"garbage")
    with pytest.raises(BadInputError, match="x.png: not a readable image"):
        load_data(tmp_path / "bad", model_input_shape=(None, 4, 4, 1))
    with pytest.raises(BadInputError, match=r"needs a model with an image input"):
        load_data(tmp_path / "bad", model_input_shape=(None, 40, 1))
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.new("L", (4, 4)).save(mixed / "a.png")
    Image.new("L", (5, 4)).save(mixed / "b.png")
    with pytest.raises(BadInputError, match="b.png: image is 5x4 but the first image is 4x4"):
        load_data(mixed)


def test_split_is_stratified_and_reproducible():
    y = np.array([0] * 50 + [1] * 30 + [2] * 20)
    ds = Dataset(x=np.arange(100, dtype=np.float32)[:, None], y=y)
    train, val = split(ds, val_fraction=0.1, seed=3)
    assert len(train) + len(val) == 100
    assert np.bincount(val.y).tolist() == [5, 3, 2]
    assert set(train.x[:, 0]).isdisjoint(val.x[:, 0])
    np.testing.assert_array_equal(val.x, split(ds, val_fraction=0.1, seed=3)[1].x)
    assert not np.array_equal(val.x, split(ds, val_fraction=0.1, seed=4)[1].x)


def test_split_one_hot_unlabelled_and_tiny():
    y = np.eye(2)[[0] * 8 + [1] * 12]
    _, val = split(Dataset(x=np.zeros((20, 1), np.float32), y=y), val_fraction=0.25)
    assert val.y.sum(axis=0).tolist() == [2.0, 3.0]
    train, val = split(Dataset(x=np.zeros((7, 2), np.float32)), val_fraction=0.3)
    assert (len(train), len(val), val.y) == (5, 2, None)
    train, val = split(Dataset(x=np.zeros((3, 1), np.float32), y=np.array([0, 1, 2])), val_fraction=0.1)
    assert (len(train), len(val)) == (2, 1)
    with pytest.raises(BadInputError, match="cannot be split"):
        split(Dataset(x=np.zeros((1, 1), np.float32)))


def test_as_dataset_checks_every_accepted_form_alike(tmp_path):
    from edgekit.data import as_dataset

    x = np.random.default_rng(0).random((12, 40)).astype(np.float32)  # missing the channel axis
    y = np.arange(12) % 3
    np.savez(tmp_path / "d.npz", x=x, y=y)
    forms = [str(tmp_path / "d.npz"), (x, y), load_data(tmp_path / "d.npz")]
    for value in forms:
        dataset = as_dataset(value, (None, 40, 1))
        assert dataset.x.shape == (12, 40, 1) and list(dataset.y) == list(y)
    assert as_dataset(x, (None, 40, 1)).y is None and as_dataset(None, (None, 40, 1)) is None
    with pytest.raises(BadInputError, match="val"):
        as_dataset((x, y[:5]), (None, 40, 1), "val")
