import numpy as np
import pytest

from edgekit.examples.datasets import load_mnist1d
from edgekit.examples.mnist1d_teacher import build_teacher, main, train_teacher


def test_build_teacher_has_the_promised_layers_and_shapes():
    model = build_teacher()
    assert model.input_shape == (None, 40, 1)
    assert model.output_shape == (None, 10)
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv1D"]
    assert [c.filters for c in convs] == [64, 64, 64]
    assert [c.output_shape[1] for c in convs] == [40, 20, 10]  # stride 1, 2, 2
    assert sum(type(layer).__name__ == "BatchNormalization" for layer in model.layers) == 3
    head = model.layers[-1]
    assert head.name == "logits" and head.get_config()["activation"] == "linear"  # logits, no softmax
    # 5*64 + 3*64*64*2 conv weights, 3 BN layers of 4*64, Dense 640*10+10
    assert model.count_params() == 5 * 64 + 2 * 3 * 64 * 64 + 3 * 4 * 64 + 640 * 10 + 10


def test_build_teacher_width_and_depth():
    model = build_teacher(width=16, depth=4)
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv1D"]
    assert [c.filters for c in convs] == [16] * 4
    assert [c.output_shape[1] for c in convs] == [40, 20, 10, 5]
    assert model.layers[-1].input_shape == (None, 5 * 16)
    with pytest.raises(ValueError, match="width=0"):
        build_teacher(width=0)


def test_train_teacher_learns_and_writes_what_it_reports(tmp_path):
    from edgekit._tf import tf_keras

    run = train_teacher(tmp_path / "out", epochs=8, n_samples=3000, seed=1, verbose=False)
    assert run.test_accuracy >= 0.75  # chance is 0.10; a full run (10k samples, 20 epochs) gives ~0.98
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["teacher.h5", "test.npz", "train.npz", "val.npz"]  # no temporary files left

    split = load_mnist1d(n_samples=3000, seed=1)
    with np.load(run.data_paths[2]) as test:
        np.testing.assert_array_equal(test["x"], split.x_test)
        np.testing.assert_array_equal(test["y"], split.y_test)
    with np.load(run.data_paths[0]) as train:
        assert train["x"].shape == (2160, 40, 1) and train["y"].shape == (2160,)

    reloaded = tf_keras().models.load_model(run.model_path, compile=False)
    logits = reloaded.predict(split.x_test, verbose=0)
    assert float(np.mean(logits.argmax(axis=1) == split.y_test)) == pytest.approx(run.test_accuracy, abs=1e-6)


def test_cli_rejects_bad_epochs(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", "unused", "--epochs", "0"])
    assert exit_info.value.code == 2
    assert "--epochs must be >= 1" in capsys.readouterr().err


def test_same_seed_gives_the_same_weights(tmp_path):
    from edgekit._tf import tf_keras

    keras = tf_keras()
    weights = []
    for name in ("a", "b"):
        run = train_teacher(tmp_path / name, epochs=1, n_samples=600, width=8, seed=5, verbose=False)
        weights.append(keras.models.load_model(run.model_path, compile=False).get_weights())
    assert all(np.array_equal(w1, w2) for w1, w2 in zip(*weights))
