"""`edgekit validate` end to end on a small Conv1D model: tables, JSON, HTML, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.cli.main import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from edgekit._tf import tf_keras
    from edgekit.export.tflite import convert

    keras = tf_keras()
    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 1))
    h = keras.layers.Conv1D(8, 3, activation="relu", name="conv")(inp)
    h = keras.layers.MaxPooling1D(name="pool")(h)
    h = keras.layers.Flatten(name="flat")(h)
    model = keras.Model(inp, keras.layers.Dense(4, name="logits")(h), name="small")
    d = tmp_path_factory.mktemp("validate")
    x = np.random.default_rng(0).standard_normal((64, 16, 1)).astype(np.float32)
    model.save(d / "m.h5")
    np.savez(d / "data.npz", x=x)
    (d / "m_int8.tflite").write_bytes(convert(model, "int8", x).tflite_bytes)
    (d / "m_f32.tflite").write_bytes(convert(model, "float32").tflite_bytes)
    return d


def test_json_ranks_layers_and_compares_tflm(files):
    result = CliRunner().invoke(main, ["validate", str(files / "m_int8.tflite"), "--reference", str(files / "m.h5"),
                                       "--data", str(files / "data.npz"), "--samples", "32", "--json",
                                       "--html", str(files / "v.html")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [r["runtime"] for r in report["runtimes"]] == ["litert", "tflm"]
    layers = report["runtimes"][0]["layers"]
    assert {entry["layer"] for entry in layers} == {"conv", "pool", "flat", "logits"}
    snrs = [entry["snr_db"] for entry in layers]
    assert snrs == sorted(snrs) and 10 < snrs[0] < 60   # int8: visible but small error, worst first
    assert report["runtimes"][0]["output"]["cosine"] > 0.99
    assert "<table>" in (files / "v.html").read_text()


def test_float_model_matches_exactly(files):
    result = CliRunner().invoke(main, ["validate", str(files / "m_f32.tflite"), "-r", str(files / "m.h5"),
                                       "--data", str(files / "data.npz"), "--samples", "16", "--json"])
    assert result.exit_code == 0, result.output
    assert all(e["snr_db"] > 80 for r in json.loads(result.output)["runtimes"] for e in r["layers"])


@pytest.mark.parametrize("case", ["not_tflite", "wrong_shape"])
def test_bad_input_is_one_line_exit_2(files, case):
    if case == "not_tflite":
        model, data = files / "m.h5", files / "data.npz"
    else:
        np.savez(files / "bad.npz", x=np.zeros((4, 7, 1), np.float32))
        model, data = files / "m_int8.tflite", files / "bad.npz"
    before = sorted(p.name for p in files.iterdir())
    result = CliRunner().invoke(main, ["validate", str(model), "-r", str(files / "m.h5"), "--data", str(data)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert sorted(p.name for p in files.iterdir()) == before
