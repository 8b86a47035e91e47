"""`edgekit check`, the CI gate: exit codes, the over-budget lines, baselines, JUnit files a CI accepts."""

import json
from pathlib import Path

import numpy as np
import pytest
import xmlschema
from click.testing import CliRunner

from edgekit.cli.main import main
from edgekit.export.tflite import convert
from edgekit.profiles import load_profile
from edgekit.runners.tflm import measure_arena

XSD = Path(__file__).parent / "data" / "junit-ant.xsd"  # our own schema of the Ant JUnit format


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_conv1d_model, mnist1d_sample):
    """The trained tiny Conv1D as int8 .tflite (int8 I/O, as MCU builds ship it) and as .h5, plus a wider one."""
    from edgekit._tf import tf_keras

    keras = tf_keras()
    root = tmp_path_factory.mktemp("check")
    calibration = mnist1d_sample.x_train[:100]
    (root / "model.tflite").write_bytes(
        convert(tiny_conv1d_model, "int8", representative_data=calibration, int8_io=True).tflite_bytes)
    tiny_conv1d_model.save(root / "model.h5")
    inputs = keras.Input((40, 1))
    x = keras.layers.Conv1D(32, 5, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv1D(64, 3, strides=2, padding="same", activation="relu")(x)
    wider = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(x)))
    (root / "wider.tflite").write_bytes(
        convert(wider, "int8", representative_data=calibration, int8_io=True).tflite_bytes)
    return root


def _check(*args):
    return CliRunner().invoke(main, ["check", *map(str, args)])


def _validate_junit(path) -> dict:
    """Validate against the Ant JUnit schema (a real XSD validator), return its content as a dict."""
    schema = xmlschema.XMLSchema(str(XSD))
    schema.validate(str(path))  # raises XMLSchemaValidationError on any departure from the schema
    return _cases(path)


def _cases(path) -> dict:
    import xml.etree.ElementTree as ET

    suite = ET.parse(path).getroot().find("testsuite")
    out = {}
    for case in suite.findall("testcase"):
        verdict = "passed"
        for child in ("failure", "skipped", "error"):
            if case.find(child) is not None:
                verdict = (child, case.find(child).get("message"))
        out[case.get("name")] = verdict
    return {"suite": dict(suite.attrib), "cases": out}


def test_tflite_that_fits_exits_0_and_a_flash_budget_1kb_below_its_size_exits_3(models, tmp_path):
    model = models / "model.tflite"
    size = model.stat().st_size
    before = model.read_bytes()
    ok = _check(model, "--device", "nrf52840", "--json", "--junit", tmp_path / "ok.xml")
    assert ok.exit_code == 0, ok.output
    report = json.loads(ok.stdout)
    assert report["budgets"]["flash_bytes"]["measured"] == size
    # RAM is measured on TFLM: the bisected arena plus the profile's runtime overhead
    overhead = load_profile("nrf52840").cost_model.runtime_overhead_ram_bytes
    assert report["budgets"]["ram_bytes"]["measured"] == measure_arena(before).arena_bytes + overhead
    assert report["unsupported_ops"] == [] and "CONV_2D" in report["ops"]
    junit = _validate_junit(tmp_path / "ok.xml")
    assert junit["suite"]["failures"] == "0" and all(v == "passed" for v in junit["cases"].values())

    over = _check(model, "--device", "nrf52840", "--max-flash", size - 1024, "--junit", tmp_path / "over.xml")
    assert over.exit_code == 3, over.output
    lines = [line for line in over.stderr.splitlines() if line.startswith("edgekit: check failed")]
    assert len(lines) == 1 and "flash" in lines[0] and "by 1.0 KiB" in lines[0], over.stderr
    junit = _validate_junit(tmp_path / "over.xml")
    assert junit["suite"]["failures"] == "1"
    verdict = junit["cases"]["flash budget"]
    assert verdict[0] == "failure" and "by 1.0 KiB" in verdict[1]
    assert junit["cases"]["RAM budget"] == "passed"
    assert model.read_bytes() == before  # never modifies the input


def test_each_budget_over_gets_its_own_line(models):
    result = _check(models / "model.tflite", "--device", "nrf52840", "--max-flash", "1KB", "--max-ram", "1KB",
                    "--max-latency-ms", "0.001")
    assert result.exit_code == 3
    failed = [line for line in result.stderr.splitlines() if "check failed" in line]
    assert [line.split(": ")[2] for line in failed] == ["flash", "RAM", "latency"]


def test_baseline_fails_a_regression_under_budget_and_tolerance_allows_it(models, tmp_path):
    baseline = tmp_path / "baseline.json"
    first = _check(models / "model.tflite", "--device", "pixel7", "--json")
    assert first.exit_code == 0
    baseline.write_text(first.stdout)
    same = _check(models / "model.tflite", "--device", "pixel7", "--baseline", baseline, "--json")
    assert same.exit_code == 0, same.output
    comparisons = json.loads(same.stdout)["baseline"]["comparisons"]
    assert set(comparisons) == {"flash_bytes", "ram_bytes", "latency_ms", "energy_mj"}
    assert all(c["change"] == 0 and not c["regressed"] for c in comparisons.values())

    wider = models / "wider.tflite"
    grown = wider.stat().st_size / (models / "model.tflite").stat().st_size - 1
    assert grown > 0.5  # the wider model is far larger, yet well within the pixel7's budgets
    regressed = _check(wider, "--device", "pixel7", "--baseline", baseline, "--junit", tmp_path / "r.xml")
    assert regressed.exit_code == 3, regressed.output
    assert "regression: flash" in regressed.stderr and "OVER" not in regressed.stdout
    junit = _validate_junit(tmp_path / "r.xml")
    assert junit["cases"]["flash budget"] == "passed"
    assert junit["cases"]["flash vs baseline"][0] == "failure"
    assert len(junit["cases"]) == 5 + 4  # four budgets + op support, four comparisons
    allowed = _check(wider, "--device", "pixel7", "--baseline", baseline, "--tolerance", f"{100 * grown + 400:.0f}%")
    assert allowed.exit_code == 0, allowed.output


def test_fit_report_json_is_a_baseline_too(models, tmp_path):
    report = {"device": "nrf52840", "budgets": {"flash_bytes": {"predicted": 1.0, "measured": 1000, "limit": None},
                                                "ram_bytes": {"predicted": 1e9, "measured": None}}}
    (tmp_path / "report.json").write_text(json.dumps(report))
    result = _check(models / "model.tflite", "--device", "nrf52840", "--baseline", tmp_path / "report.json", "--json")
    assert result.exit_code == 3
    comparisons = json.loads(result.stdout)["baseline"]["comparisons"]
    assert comparisons["flash_bytes"]["baseline"] == 1000 and comparisons["flash_bytes"]["regressed"]
    assert comparisons["ram_bytes"]["baseline"] == 1e9 and not comparisons["ram_bytes"]["regressed"]


def test_keras_model_is_exported_in_memory_and_stripped_for_tflm(models, tiny_conv1d_model, mnist1d_sample):
    result = _check(models / "model.h5", "--device", "nrf52840", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["format"] == "keras" and report["precision"] == "int8"
    unstripped = (models / "model.tflite").stat().st_size
    assert report["budgets"]["flash_bytes"]["measured"] < unstripped  # names and metadata stripped
    assert report["budgets"]["ram_bytes"]["measured"] is not None


def test_op_without_a_tflm_kernel_fails_with_its_name(tmp_path):
    from edgekit._tf import tensorflow

    tf = tensorflow()
    fn = tf.function(lambda x: tf.math.top_k(x, k=3).values, input_signature=[tf.TensorSpec([1, 16], tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    (tmp_path / "topk.tflite").write_bytes(converter.convert())
    result = _check(tmp_path / "topk.tflite", "--device", "nrf52840", "--json", "--junit", tmp_path / "j.xml")
    assert result.exit_code == 3
    report = json.loads(result.stdout)
    assert report["unsupported_ops"] == ["TOPK_V2"] and report["budgets"]["ram_bytes"]["measured"] is None
    junit = _validate_junit(tmp_path / "j.xml")
    assert junit["cases"]["op support (tflm)"][0] == "failure"
    assert "TOPK_V2" in junit["cases"]["op support (tflm)"][1]
    assert _check(tmp_path / "topk.tflite", "--device", "pixel7").exit_code == 0  # LiteRT has the kernel


@pytest.mark.parametrize("case", ["missing", "garbage", "truncated", "device", "tolerance", "baseline_text",
                                  "baseline_device", "junit_dir", "junit_is_input"])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(models, tmp_path, case):
    model = models / "model.tflite"
    junit = tmp_path / "out.xml"
    args = [model, "--device", "nrf52840"]
    if case == "missing":
        args[0] = tmp_path / "nope.tflite"
    elif case == "garbage":
        args[0] = tmp_path / "garbage.tflite"
        args[0].write_bytes(b"\x00" * 4 + b"TFL3" + np.random.default_rng(0).bytes(4000))
    elif case == "truncated":
        args[0] = tmp_path / "cut.tflite"
        args[0].write_bytes(model.read_bytes()[:600])
    elif case == "device":
        args[2] = "no-such-board"
    elif case == "tolerance":
        args += ["--tolerance", "lots"]
    elif case == "baseline_text":
        (tmp_path / "b.json").write_text("not json")
        args += ["--baseline", tmp_path / "b.json"]
    elif case == "baseline_device":
        (tmp_path / "b.json").write_text(json.dumps({"device": "pixel7", "budgets": {}}))
        args += ["--baseline", tmp_path / "b.json"]
    elif case == "junit_dir":
        junit = tmp_path
    elif case == "junit_is_input":
        junit = model
    before = model.read_bytes()
    result = _check(*args, "--junit", junit)
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.stderr.startswith("edgekit: error: ") and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    if case not in ("junit_dir", "junit_is_input"):
        assert not junit.exists()
    assert model.read_bytes() == before


def test_checking_a_tflite_does_not_import_tensorflow(models):
    import subprocess
    import sys

    code = ("import sys; from click.testing import CliRunner; from edgekit.cli.main import main; "
            f"r = CliRunner().invoke(main, ['check', {str(models / 'model.tflite')!r}, '--device', 'nrf52840']); "
            "assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"  # a CI gate that starts in about a second


def test_the_junit_schema_rejects_what_ci_parsers_reject(tmp_path):
    """The schema the reports are validated against is not vacuous: each departure a CI parser chokes on fails."""
    schema = xmlschema.XMLSchema(str(XSD))
    good = ('<testsuites><testsuite name="s" timestamp="2026-12-02T10:00:00" hostname="h" tests="1" failures="1" '
            'errors="0" time="0.5"><properties/><testcase name="flash budget" classname="edgekit.check.d" '
            'time="0.1"><failure type="over budget" message="flash: over"/></testcase><system-out/><system-err/>'
            '</testsuite></testsuites>')
    assert schema.is_valid(good)
    broken = [good.replace(' classname="edgekit.check.d"', ""),           # testcase without classname
              good.replace(' tests="1"', ""),                               # suite without its counter
              good.replace('type="over budget" ', ""),                      # failure without a type
              good.replace("<properties/>", ""),                            # properties missing
              good.replace('time="0.1"', 'time="fast"'),                    # non-numeric time
              good.replace("</testcase>", "<failure type='x'/></testcase>")]  # two outcomes in one case
    assert [schema.is_valid(b) for b in broken] == [False] * len(broken)
