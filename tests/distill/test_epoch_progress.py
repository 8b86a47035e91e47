"""Epoch lines with an ETA for people following a long distillation; nothing at verbose 0."""

import re

from edgekit.distill import distill
from edgekit.distill.epoch_progress import EPOCH_LINES, eta_text


def test_eta_text_rounds_for_people():
    assert eta_text(2.0, 3) == "about 6 s left"
    assert eta_text(30.0, 5) == "about 2 min 30 s left"
    assert eta_text(5.0, 0) == "done"


def test_distill_prints_one_line_per_epoch_with_eta_on_stderr(tiny_conv1d_model, keras, mnist1d_sample, capfd):
    s = mnist1d_sample
    keras.utils.set_random_seed(0)
    inputs = keras.Input((40, 1))
    student = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs)))
    distill(tiny_conv1d_model, student, s.x_train[:200], s.y_train[:200], s.x_val, s.y_val, epochs=3,
            verbose=EPOCH_LINES, patience=3)
    out, err = capfd.readouterr()
    lines = [line for line in err.splitlines() if line.strip().startswith("epoch ")]
    assert [re.match(r"\s*epoch (\d)/3", line).group(1) for line in lines] == ["1", "2", "3"]
    assert "val_accuracy" in lines[0] and "s/epoch" in lines[0]
    assert re.search(r"about \d+ s left", lines[0]) and lines[-1].endswith("done")
    assert "epoch" not in out.lower()  # stdout stays clean for results and --json

    distill(tiny_conv1d_model, student, s.x_train[:200], s.y_train[:200], s.x_val, s.y_val, epochs=1, verbose=0)
    out, err = capfd.readouterr()
    assert "epoch" not in (out + err).lower()
