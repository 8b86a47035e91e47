"""The CLI as a user meets it: exit codes, one-line errors, JSON shape, fast start."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from edgekit._tf import tf_keras
from edgekit.cli.main import main


@pytest.fixture(scope="module")
def small_h5(tmp_path_factory):
    keras = tf_keras()
    L = keras.layers
    x = inp = keras.Input((40, 1))
    x = L.Conv1D(8, 5, padding="same", activation="relu", name="conv")(x)
    x = L.Flatten(name="flat")(x)
    out = L.Dense(4, name="fc")(x)
    path = tmp_path_factory.mktemp("cli") / "small.h5"
    keras.Model(inp, out).save(path)
    return str(path)


def test_help_and_devices_do_not_import_tensorflow():
    code = ("import sys; from click.testing import CliRunner; from edgekit.cli.main import main; "
            "r1 = CliRunner().invoke(main, ['--help']); r2 = CliRunner().invoke(main, ['devices', '--json']); "
            "assert r1.exit_code == 0 and r2.exit_code == 0, (r1.output, r2.output); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_devices_json_lists_every_profile():
    result = CliRunner().invoke(main, ["devices", "--json"])
    names = {d["name"] for d in json.loads(result.output)}
    assert {"pixel7", "pixel4a", "raspberry-pi-4", "stm32h743", "stm32l4r5", "nrf52840", "esp32-s3", "rp2040",
            "host"} <= names


def test_inspect_json_matches_the_model(small_h5):
    result = CliRunner().invoke(main, ["inspect", small_h5, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["params"] == (5 * 1 * 8 + 8) + (40 * 8 * 4 + 4)
    assert report["macs"] == 40 * 8 * 5 + 320 * 4
    assert [layer["name"] for layer in report["layers"]] == ["conv", "flat", "fc"]
    assert report["layers"][0]["macs"] == 40 * 8 * 5
    # int8 peak: the conv output (320 B) and its RESHAPE copy are alive together
    assert report["peak_activation_bytes"] == 640
    assert "budgets" not in report


def test_inspect_with_device_reports_each_budget(small_h5):
    result = CliRunner().invoke(main, ["inspect", small_h5, "--device", "stm32h743", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report["predicted"]) == {"flash_bytes", "ram_bytes", "latency_ms", "energy_mj"}
    assert report["budgets"]["ram_bytes"]["limit"] == 512 * 1024
    assert report["fits"] is True


def test_inspect_over_budget_exits_3(small_h5):
    result = CliRunner().invoke(main, ["inspect", small_h5, "--device", "stm32h743", "--max-flash", "1KB"])
    assert result.exit_code == 3
    assert "does not fit stm32h743" in result.output and "flash" in result.output


@pytest.mark.parametrize("content", [b"", b"\x89HDF\r\n\x1a\n" + b"\0" * 20, b"not a model at all"])
def test_bad_model_file_is_one_line_exit_2(tmp_path, content):
    bad = tmp_path / "broken.h5"
    bad.write_bytes(content)
    result = CliRunner().invoke(main, ["inspect", str(bad)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "broken.h5" in lines[0] and "Traceback" not in result.output


def test_lambda_model_is_refused_unless_trusted(tmp_path):
    keras = tf_keras()
    inp = keras.Input((4,))
    out = keras.layers.Lambda(lambda t: t * 2.0, name="double")(inp)
    path = tmp_path / "lambda.h5"
    keras.Model(inp, out).save(path)
    refused = CliRunner().invoke(main, ["inspect", str(path)])
    assert refused.exit_code == 2 and "'double'" in refused.output and "--trust-model" in refused.output
    trusted = CliRunner().invoke(main, ["inspect", str(path), "--trust-model", "--json"])
    assert trusted.exit_code == 0, trusted.output


def test_bad_budget_unit_names_the_option(small_h5):
    result = CliRunner().invoke(main, ["inspect", small_h5, "--device", "stm32h743", "--max-ram", "12XB"])
    assert result.exit_code == 2 and "--max-ram" in result.output


def test_unknown_device_lists_known_ones(small_h5):
    result = CliRunner().invoke(main, ["inspect", small_h5, "--device", "pixel99"])
    assert result.exit_code == 2 and "pixel7" in result.output
