"""`edgekit export` as users meet it: files written all-or-nothing, the check, the CLI's JSON."""

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

import edgekit.workflows.export as ek
from edgekit.cli.main import main
from edgekit.errors import BadInputError, UnsupportedModelError
from edgekit.model_io.atomic import write_atomically


@pytest.fixture(scope="module")
def saved(tiny_conv1d_model, mnist1d_sample, tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    model_path = folder / "tiny.h5"
    tiny_conv1d_model.save(model_path)
    data = folder / "train.npz"
    np.savez(data, x=mnist1d_sample.x_train, y=mnist1d_sample.y_train)
    return model_path, data


def test_cli_export_json_reports_sizes_and_the_check(saved, tmp_path):
    model_path, data = saved
    before = model_path.read_bytes()
    out = tmp_path / "tiny_int8.tflite"
    result = CliRunner().invoke(main, ["export", str(model_path), "--precision", "int8", "--out", str(out),
                                       "--data", str(data), "--min-agreement", "0.9", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["size_bytes"] == out.stat().st_size and 0 < report["gzip_bytes"] < report["size_bytes"]
    assert report["check"]["on"] == "data" and report["check"]["samples"] == 144  # 20 % of 720 held out
    assert report["check"]["passed"] and report["check"]["top1_agreement"] >= 0.9
    assert report["check"]["threshold"] == "top-1 agreement >= 90%"
    assert report["calibrated_on"] == "data" and report["runtime"] == "litert"
    assert model_path.read_bytes() == before  # the input model is never touched
    assert sorted(os.listdir(tmp_path)) == ["tiny_int8.tflite"]  # no temporaries left


def test_without_data_the_check_is_synthetic_and_says_accuracy_is_unverified(tiny_conv1d_model, tmp_path):
    result = ek.export(tiny_conv1d_model, tmp_path / "m.tflite", precision="int8")
    assert result.calibrated_on == "synthetic" and result.check.on == "synthetic"
    assert any("unverified" in w for w in result.warnings)
    assert any("accuracy on real data is unverified" in n for n in result.notes)


def test_strict_check_failure_writes_nothing(tiny_conv1d_model, mnist1d_sample, tmp_path):
    with pytest.raises(UnsupportedModelError, match="conversion check failed: top-1 agreement"):
        ek.export(tiny_conv1d_model, tmp_path / "m.tflite", precision="int8",
                  data=(mnist1d_sample.x_train, mnist1d_sample.y_train), strict=True, min_top1=1.01)
    assert list(tmp_path.iterdir()) == []
    relaxed = ek.export(tiny_conv1d_model, tmp_path / "m.tflite", precision="int8",
                        data=(mnist1d_sample.x_train, mnist1d_sample.y_train), min_top1=1.01)
    assert not relaxed.check.passed and any(n.startswith("WARNING conversion check failed") for n in relaxed.notes)


def test_the_input_model_is_refused_as_output(saved):
    model_path, _ = saved
    with pytest.raises(BadInputError, match="never overwrites its input"):
        ek.export(str(model_path), model_path)


def test_a_failure_while_writing_leaves_neither_files_nor_temporaries(tmp_path, monkeypatch):
    (tmp_path / "old.tflite").write_bytes(b"previous")
    calls = []

    def failing_fsync(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(BadInputError, match="no space left on the device"):
        write_atomically({tmp_path / "old.tflite": b"new", tmp_path / "m_data.h": "// header"})
    assert sorted(os.listdir(tmp_path)) == ["old.tflite"]
    assert (tmp_path / "old.tflite").read_bytes() == b"previous"


def test_tflm_devices_refuse_float16_before_converting(tiny_conv1d_model, tmp_path):
    with pytest.raises(BadInputError, match="needs precision int8 or float32, not float16"):
        ek.export(tiny_conv1d_model, tmp_path / "m.tflite", precision="float16", device="nrf52840")
    assert list(tmp_path.iterdir()) == []


def test_sparsity_option_prunes_and_reports_who_uses_the_zeros(tiny_conv1d_model, tmp_path):
    result = ek.export(tiny_conv1d_model, tmp_path / "sparse.tflite", precision="float32", sparsity=0.75)
    assert any(n.startswith("sparsity: 75.0%") for n in result.notes)
    verdict = result.sparsity
    assert verdict is not None and len(verdict.weights) >= 2
    assert "XNNPACK sparse inference" in " ".join(verdict.notes)  # not eligible: no 3x3 stride-2 stem
    dense = ek.export(tiny_conv1d_model, tmp_path / "dense.tflite", precision="float32")
    assert result.size_bytes < 0.5 * dense.size_bytes
