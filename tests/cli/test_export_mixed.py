"""`edgekit export --precision mixed` through the real CLI, on a regression model int8 breaks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.cli.main import main

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "export"))
from test_mixed import wide_range_regressor


def _relative_rms(found, ref) -> float:
    return float(np.sqrt(np.mean((np.ravel(found) - np.ravel(ref)) ** 2) / np.mean(np.ravel(ref) ** 2)))


@pytest.fixture(scope="module")
def regressor(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mixed")
    model = wide_range_regressor()
    model.save(folder / "reg.h5")
    np.savez(folder / "data.npz", x=np.random.default_rng(0).standard_normal((500, 8)).astype(np.float32))
    return model, folder


def _one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert all(f in lines[0] for f in fragments), lines[0]


def test_bad_values_are_one_line_errors(regressor):
    _, folder = regressor
    base = ["export", str(folder / "reg.h5"), "-o", str(folder / "bad.tflite")]
    data = ["--data", str(folder / "data.npz")]
    for value in ("0", "1.5", "abc", "-0.1"):
        _one_line_error(CliRunner().invoke(main, [*base, "--precision", "mixed", *data, "--max-error", value]),
                        "--max-error", value)
    _one_line_error(CliRunner().invoke(main, [*base, "--precision", "mixed"]), "--data")
    _one_line_error(CliRunner().invoke(main, [*base, "--precision", "int8", *data, "--max-error", "0.1"]),
                    "--precision mixed")
    _one_line_error(CliRunner().invoke(main, [*base, "--precision", "mixed", *data, "--qat"]), "--qat")
    assert not (folder / "bad.tflite").exists()


@pytest.mark.slow
def test_mixed_export_beats_int8_on_tflm_and_reports_every_layer(regressor):
    from edgekit.export.tflite import convert
    from edgekit.model_io.flatbuffer import tflite_op_list
    from edgekit.runners import tflm

    model, folder = regressor
    out = folder / "out"
    out.mkdir()
    args = ["export", str(folder / "reg.h5"), "-o", str(out / "reg.tflite"), "--precision", "mixed", "--data",
            str(folder / "data.npz"), "--device", "stm32h743", "--max-error", "0.05"]
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    mixed = report["mixed"]
    assert report["precision"] == "mixed" and report["runtime"] == "tflm"
    assert [row["layer"] for row in mixed["layers"]] == ["wide", "hidden", "head"]
    assert {row["precision"] for row in mixed["layers"]} <= {"int8", "int16x8", "float32"}
    assert next(row for row in mixed["layers"] if row["layer"] == "wide")["precision"] != "int8"
    assert mixed["int8_relative_rms"] > 0.1 and mixed["relative_rms"] <= 0.05 and mixed["passed"]
    assert mixed["latency_ms"] > mixed["int8_latency_ms"] and "CMSIS-NN" in mixed["latency_basis"]
    assert mixed["input_type"] == "int16"   # integer I/O at the raised first layer's type (TFLM default)

    # the delivered (stripped) file on TFLite Micro, on samples the export never saw, against plain int8
    delivered = (out / "reg.tflite").read_bytes()
    x_new = np.random.default_rng(7).standard_normal((200, 8)).astype(np.float32)
    reference = model.predict(x_new, verbose=0)
    x_train = np.load(folder / "data.npz")["x"][:300]
    int8 = convert(model, "int8", representative_data=x_train, int8_io=True).tflite_bytes
    mixed_error, int8_error = (_relative_rms(tflm.predict(blob, x_new), reference) for blob in (delivered, int8))
    assert mixed_error < min(0.05, int8_error / 5)
    # every conversion the cost model priced is in the file, and no other
    assert sorted(mixed["conversions"]) == sorted(op for op in tflite_op_list(delivered)
                                                  if op in ("QUANTIZE", "DEQUANTIZE"))

    text = CliRunner().invoke(main, [*args[:3], str(out / "reg_text.tflite"), *args[4:]])
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("per-layer precision"))
    assert "-> ok" in lines[header] and lines[header + 1].split()[:2] == ["layer", "precision"]
    table = {line.split()[0]: line.split()[1] for line in lines[header + 2:header + 5]}
    assert table == {row["layer"]: row["precision"] for row in mixed["layers"]}
    assert any(line.startswith("  conversions between precisions:") for line in lines)

    # --strict with a target no choice reaches: exit 2, one line, nothing written
    strict = CliRunner().invoke(main, ["export", str(folder / "reg.h5"), "-o", str(out / "strict.tflite"),
                                       "--precision", "mixed", "--data", str(folder / "data.npz"), "--max-error",
                                       "0.0001", "--strict"])
    _one_line_error(strict, "above --max-error 0.0001")
    assert not (out / "strict.tflite").exists()
