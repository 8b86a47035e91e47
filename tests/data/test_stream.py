"""edgekit.data.stream: TFRecord files, .npz shard folders and image folders streamed with tf.data."""

from __future__ import annotations

import os

import numpy as np
import pytest

import edgekit.data.load as load_mod
from edgekit.data import Dataset, load_data, open_data
from edgekit.data.stream import StreamSource
from edgekit.data.stream_sources import open_stream
from edgekit.errors import BadInputError


def _arrays(n=600, dim=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, dim)).astype(np.float32), rng.integers(0, 4, n).astype(np.int64)


def _write_shards(folder, x, y, sizes=(250, 250, 100), compressed=(1,)):
    os.makedirs(folder, exist_ok=True)
    start = 0
    for i, size in enumerate(sizes):
        save = np.savez_compressed if i in compressed else np.savez
        save(os.path.join(folder, f"part-{i}.npz"), x=x[start:start + size], y=y[start:start + size])
        start += size
    return str(folder)


def _write_tfrecords(folder, x, y, files=2, floats=False):
    import tensorflow as tf

    from edgekit.data.tfrecord import example_bytes

    os.makedirs(folder, exist_ok=True)
    for f, part in enumerate(np.array_split(np.arange(len(x)), files)):
        with tf.io.TFRecordWriter(os.path.join(folder, f"part-{f}.tfrecord")) as writer:
            for i in part:
                if floats:
                    feature = {"x": tf.train.Feature(float_list=tf.train.FloatList(value=x[i].ravel().tolist())),
                               "shape": tf.train.Feature(int64_list=tf.train.Int64List(value=list(x.shape[1:]))),
                               "y": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(y[i])]))}
                    writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
                else:
                    writer.write(example_bytes(x[i], y[i]))
    return str(folder)


def _collect(source: StreamSource, seed=None):
    elements = list(source.elements(shuffle_seed=seed).as_numpy_iterator())
    index = np.array([e["index"] for e in elements])
    x = np.stack([e["x"] for e in elements])
    y = np.array([e["y"] for e in elements]) if source.has_labels else None
    return index, x, y


def test_shard_folder_streams_every_sample_once_with_its_label(tmp_path):
    x, y = _arrays()
    source = open_stream(_write_shards(tmp_path / "shards", x, y), (None, 10, 1))
    assert (source.num_samples, source.element_shape, source.label_shape) == (600, (10, 1), ())
    assert [layout.offset >= 0 for layout in source.x_layouts] == [True, False, True]  # compressed: whole shard
    index, xs, ys = _collect(source, seed=3)
    assert sorted(index.tolist()) == list(range(600))
    assert not np.array_equal(index, np.arange(600))          # shuffled
    np.testing.assert_array_equal(xs[..., 0], x[index])
    np.testing.assert_array_equal(ys, y[index])
    in_order, _, _ = _collect(source)                          # no seed: file order
    np.testing.assert_array_equal(in_order, np.arange(600))


@pytest.mark.parametrize("floats", [False, True])
def test_tfrecords_stream_like_the_arrays(tmp_path, floats):
    x, y = _arrays(n=300)
    source = open_stream(_write_tfrecords(tmp_path / "tfr", x, y, floats=floats), (None, 10))
    assert (source.num_samples, source.file_samples) == (300, (150, 150))
    index, xs, ys = _collect(source, seed=1)
    assert sorted(index.tolist()) == list(range(300))
    np.testing.assert_array_equal(xs, x[index])
    np.testing.assert_array_equal(ys, y[index])


def test_image_folder_streams_like_load_data(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        os.makedirs(tmp_path / "img" / c)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (8, 6), dtype=np.uint8), "L").save(tmp_path / "img" / c / f"{i}.png")
    in_memory = load_data(tmp_path / "img", (None, 8, 6, 1))
    source = open_stream(tmp_path / "img", (None, 8, 6, 1))
    assert source.class_names == ("cat", "dog")
    index, xs, ys = _collect(source, seed=0)
    assert sorted(index.tolist()) == list(range(12))
    np.testing.assert_allclose(xs, in_memory.x[index], atol=1e-6)
    np.testing.assert_array_equal(ys, in_memory.y[index])


def test_split_is_disjoint_and_deterministic(tmp_path):
    x, y = _arrays(n=5000, dim=3)
    source = open_stream(_write_shards(tmp_path / "s", x, y, sizes=(2500, 2500), compressed=()))
    train, val = source.split(0.1, seed=7)
    _, val_again = source.split(0.1, seed=7)
    assert len(train) + len(val) == 5000 and abs(len(val) / 5000 - 0.1) < 0.02
    train_index = _collect(train)[0]
    val_index = _collect(val)[0]
    assert len(train_index) == len(train) and len(val_index) == len(val)
    assert not set(train_index) & set(val_index)
    np.testing.assert_array_equal(val_index, _collect(val_again)[0])
    other_val = _collect(source.split(0.1, seed=8)[1])[0]
    assert set(other_val) != set(val_index)
    sample = val.sample(max_bytes=4 * 3 * 100)                # bounded, and only validation samples
    assert len(sample) <= 100
    assert {tuple(r) for r in sample.x} <= {tuple(r) for r in x[val_index]}


def test_sample_of_a_class_sorted_source_spans_the_classes(tmp_path):
    x = np.repeat(np.arange(4, dtype=np.float32), 3000)[:, None]
    y = np.repeat(np.arange(4), 3000)
    source = open_stream(_write_shards(tmp_path / "s", x, y, sizes=(6000, 6000), compressed=()))
    sample = source.sample(max_bytes=4 * 400)
    assert len(sample) == 400 and set(sample.y.tolist()) == {0, 1, 2, 3}


def test_open_data_streams_large_single_files_only(tmp_path, monkeypatch):
    x, y = _arrays(n=200)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    assert isinstance(open_data(tmp_path / "d.npz", (None, 10)), Dataset)
    monkeypatch.setattr(load_mod, "STREAM_ABOVE_BYTES", 4 * 10 * 100)   # 200 samples are now "large"
    streamed = open_data(tmp_path / "d.npz", (None, 10))
    assert isinstance(streamed, StreamSource)
    index, xs, ys = _collect(streamed, seed=0)
    np.testing.assert_array_equal(xs, x[index])
    np.testing.assert_array_equal(ys, y[index])
    assert isinstance(open_data(_write_shards(tmp_path / "s", x, y, sizes=(200,)), (None, 10)), StreamSource)


def assert_one_line_error(call, *names):
    with pytest.raises(BadInputError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message and all(name in message for name in names), message
    return message


def test_bad_shards_are_named_in_one_line(tmp_path):
    x, y = _arrays(n=100)
    folder = _write_shards(tmp_path / "s", x, y, sizes=(50, 50), compressed=())
    np.savez(os.path.join(folder, "part-2.npz"), x=np.zeros((5, 11), np.float32), y=np.zeros(5, np.int64))
    assert_one_line_error(lambda: open_stream(folder), "part-2.npz", "same sample shape")
    np.savez(os.path.join(folder, "part-2.npz"), samples=np.zeros((5, 10), np.float32))
    assert_one_line_error(lambda: open_stream(folder), "part-2.npz", "no array named 'x'")
    with open(os.path.join(folder, "part-2.npz"), "wb") as f:
        f.write(b"PK\x03\x04 not really a zip")
    assert_one_line_error(lambda: open_stream(folder), "part-2.npz")
    os.remove(os.path.join(folder, "part-2.npz"))
    assert_one_line_error(lambda: load_data(folder), folder, "streamed")   # whole-array commands refuse it


def test_bad_tfrecords_are_named_in_one_line(tmp_path):
    import tensorflow as tf

    x, y = _arrays(n=40)
    folder = _write_tfrecords(tmp_path / "t", x, y, files=2)
    path = os.path.join(folder, "part-1.tfrecord")
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:          # a flipped byte in a record: its CRC fails
        f.write(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    assert_one_line_error(lambda: open_stream(folder, (None, 10)), "part-1.tfrecord")
    ints = tf.train.Example(features=tf.train.Features(feature={
        "x": tf.train.Feature(int64_list=tf.train.Int64List(value=[1, 2]))}))
    with tf.io.TFRecordWriter(str(tmp_path / "ints.tfrecord")) as writer:
        writer.write(ints.SerializeToString())
    assert_one_line_error(lambda: open_stream(tmp_path / "ints.tfrecord", (None, 2)), "ints.tfrecord", "'x'")


def test_bad_image_is_named_in_one_line(tmp_path):
    from PIL import Image

    os.makedirs(tmp_path / "img" / "a")
    Image.fromarray(np.zeros((4, 4), np.uint8), "L").save(tmp_path / "img" / "a" / "ok.png")
    (tmp_path / "img" / "a" / "broken.png").write_bytes(b"\x89PNG not an image")
    assert_one_line_error(lambda: open_stream(tmp_path / "img", (None, 4, 4, 1)), "broken.png")
