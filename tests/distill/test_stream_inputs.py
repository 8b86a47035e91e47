"""Distillation from streamed data: the on-disk teacher-logit cache and `distill` over a .npz shard folder."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest

from edgekit.data.stream_sources import open_stream
from edgekit.errors import BadInputError


def _data(n=1200, dim=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x, np.argmax(x[:, :4], axis=1).astype(np.int64)   # a rule, so accuracy means something


def _shards(folder, x, y, n_shards=3):
    os.makedirs(folder, exist_ok=True)
    for i, part in enumerate(np.array_split(np.arange(len(x)), n_shards)):
        np.savez(os.path.join(folder, f"s{i}.npz"), x=x[part], y=y[part])
    return str(folder)


def _model(width, dim=12, seed=0):
    from edgekit._tf import tf_keras

    keras = tf_keras()
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.layers.Input((dim,)), keras.layers.Dense(width, activation="relu"),
                             keras.layers.Dense(4)])


@pytest.fixture(scope="module")
def teacher():
    from edgekit._tf import tf_keras

    keras = tf_keras()
    x, y = _data(seed=1)
    model = _model(32)
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=15, batch_size=64, verbose=0)
    return model


def test_disk_cache_holds_the_teachers_outputs_and_is_keyed_by_teacher_and_data(tmp_path, teacher):
    from edgekit.distill.teacher_cache import disk_teacher_outputs

    x, y = _data()
    folder = _shards(tmp_path / "shards", x, y)
    source = open_stream(folder, teacher.input_shape)
    train, _ = source.split(seed=0)                      # any part: the cache covers the whole source
    predict = lambda batch: teacher(batch, training=False).numpy()
    cache = tmp_path / "cache"
    first = disk_teacher_outputs(teacher, train, str(cache), predict)
    assert not first.reused and first.rows.shape == (1200, 4)
    np.testing.assert_allclose(first.rows, teacher.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    index = np.array([5, 1199, 0, 640])
    np.testing.assert_allclose(first.lookup(index), teacher.predict(x[index], verbose=0), rtol=1e-5, atol=1e-5)
    assert disk_teacher_outputs(teacher, train, str(cache), predict).reused
    other = _model(32, seed=5)                            # another teacher: not reused
    assert not disk_teacher_outputs(other, train, str(cache), lambda b: other(b).numpy()).reused
    np.savez(os.path.join(folder, "s2.npz"), x=x[800:] * 2, y=y[800:])   # the data changed: not reused
    changed = disk_teacher_outputs(teacher, open_stream(folder, teacher.input_shape), str(cache), predict)
    assert not changed.reused
    np.testing.assert_allclose(changed.rows[800:], teacher.predict(x[800:] * 2, verbose=0), rtol=1e-5, atol=1e-5)
    assert os.listdir(cache) == [os.path.basename(changed.path)]   # the stale files are gone
    temporary = disk_teacher_outputs(teacher, train, None, predict)
    assert temporary.path is None and temporary.rows.shape == (1200, 4)


def test_out_of_range_label_is_refused_in_the_teacher_pass(tmp_path, teacher, monkeypatch):
    from edgekit.distill import inputs
    from edgekit.distill.trainer import distill_models

    monkeypatch.setattr(inputs, "PROBE_BYTES", 4 * 12 * 60)   # the in-memory probe: 60 samples, not sample 250
    x, y = _data(n=300)
    y[250] = 7
    source = open_stream(_shards(tmp_path / "s", x, y), teacher.input_shape)
    with pytest.raises(BadInputError, match=r"sample 250 has label outside 0\.\.3") as err:
        distill_models(teacher, _model(8), source, epochs=1, verbose=0)
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_distill_from_a_shard_folder_learns_like_from_arrays(tmp_path, teacher):
    from edgekit.distill.trainer import distill_models
    from edgekit.workflows.distill import distill_model

    x, y = _data()
    folder = _shards(tmp_path / "shards", x, y)
    source = open_stream(folder, teacher.input_shape).with_cache_dir(tmp_path / "cache")
    streamed = distill_models(teacher, _model(8), source, epochs=10, learning_rate=1e-2, verbose=0, seed=0)
    in_memory = distill_models(teacher, _model(8), x, y, epochs=10, learning_rate=1e-2, verbose=0, seed=0)
    teacher_agreement = np.mean(np.argmax(teacher.predict(x, verbose=0), 1) == y)
    assert teacher_agreement > 0.9
    assert streamed.val_metrics["accuracy"] > 0.6 and streamed.val_metrics["agreement"] > 0.6   # chance: 0.25
    assert abs(streamed.val_metrics["accuracy"] - in_memory.val_metrics["accuracy"]) < 0.12
    assert len(os.listdir(tmp_path / "cache")) == 1
    n_val = int(streamed.notices[0].split("held out ")[1].split(" of")[0])
    assert 60 <= n_val <= 180                                          # about 10 % of 1200, by the stream's mask
    # the workflow behind `edgekit distill --data <shard folder>`: a temporary cache, nothing left behind
    before = {n for n in os.listdir(tempfile.gettempdir()) if n.startswith("edgekit-logits-")}
    outcome = distill_model(teacher, folder, width=0.25, epochs=3, out=tmp_path / "student.h5")
    assert {n for n in os.listdir(tempfile.gettempdir()) if n.startswith("edgekit-logits-")} <= before
    assert outcome.n_train + outcome.n_val == 1200 and os.path.isfile(tmp_path / "student.h5")
    assert outcome.student_accuracy is not None and outcome.student_accuracy > 0.5


def test_cli_distill_names_a_bad_shard_in_one_line(tmp_path, teacher):
    from click.testing import CliRunner

    from edgekit.cli.main import main
    from edgekit.model_io import save_model

    x, y = _data(n=200)
    folder = _shards(tmp_path / "shards", x, y, n_shards=2)
    np.savez(os.path.join(folder, "s1.npz"), x=np.zeros((100, 13), np.float32), y=y[100:])
    save_model(teacher, tmp_path / "teacher.h5")
    result = CliRunner().invoke(main, ["distill", str(tmp_path / "teacher.h5"), "--data", folder, "--width", "0.5",
                                       "--out", str(tmp_path / "student.h5")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line]
    assert len(lines) == 1 and "s1.npz" in lines[0] and "same sample shape" in lines[0], result.output
    assert "Traceback" not in result.output
