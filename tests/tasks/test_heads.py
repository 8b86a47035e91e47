"""Heads read from real tf_keras models, and bad --task / --metric input refused with exit 2 before any work."""

import numpy as np
from click.testing import CliRunner

from edgekit.cli.main import main
from edgekit.tasks import detect_task, heads_of


def test_heads_of_a_two_head_model_and_a_softmax_layer(keras):
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Flatten()(inputs)
    cls = keras.layers.Activation("softmax", name="cls")(keras.layers.Dense(3)(h))
    box = keras.layers.Dense(4, name="box")(h)
    heads = heads_of(keras.Model(inputs, [cls, box]))
    assert [(h.name, h.shape, h.activation) for h in heads] == [("cls", (3,), "softmax"), ("box", (4,), "linear")]
    assert detect_task(heads, (8, 8, 1)).head_kinds == ("class", "box")
    seq = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2, activation="sigmoid", name="tags")])
    assert heads_of(seq)[0].activation == "sigmoid" and detect_task(heads_of(seq), (5,)).name == "multilabel"


def test_a_task_that_does_not_suit_the_model_and_a_missing_metric_exit_2(tmp_path, tiny_conv1d_model, mnist1d_sample):
    tiny_conv1d_model.save(tmp_path / "m.h5")
    np.savez(tmp_path / "d.npz", x=mnist1d_sample.x_train[:200], y=mnist1d_sample.y_train[:200])
    base = ["fit", str(tmp_path / "m.h5"), "--device", "stm32l4r5", "--data", str(tmp_path / "d.npz"), "--quiet"]
    wrong = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "a"), "--task", "anomaly"])
    assert wrong.exit_code == 2 and "--task anomaly" in wrong.output and "Traceback" not in wrong.output
    missing = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "b"), "--metric", f"{tmp_path}/none.py:f"])
    assert missing.exit_code == 2 and "no such file" in missing.output
    negative = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "c"), "--max-accuracy-drop", "-0.1"])
    assert negative.exit_code == 2 and "--max-accuracy-drop" in negative.output
    for name in ("a", "b", "c"):
        assert not (tmp_path / name / "model.tflite").exists()
