"""`edgekit bench`: one JSON object per run, measured figures beside the cost model's prediction."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.cli.main import main
from edgekit.export.tflite import convert


@pytest.fixture(scope="module")
def files(tiny_conv1d_model, mnist1d_sample, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    tiny_conv1d_model.save(folder / "tiny.h5")
    (folder / "tiny_int8.tflite").write_bytes(
        convert(tiny_conv1d_model, "int8", mnist1d_sample.x_train, int8_io=True).tflite_bytes)
    np.savez(folder / "test.npz", x=mnist1d_sample.x_test, y=mnist1d_sample.y_test)
    return folder


def _bench(*args):
    result = CliRunner().invoke(main, ["bench", *map(str, args), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_litert_json_has_percentiles_accuracy_agreement_and_prediction(files, tiny_conv1d_model, mnist1d_sample):
    report = _bench(files / "tiny_int8.tflite", "--runner", "litert", "--data", files / "test.npz", "--device",
                    "host", "--model", files / "tiny.h5", "--runs", 30)
    lat = report["latency_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] and report["runs"] >= 30
    from edgekit.profiles import load_profile

    assert report["threads"] == load_profile("host").cpu.threads  # no --threads: the profile's
    assert report["precision"] == "int8" and report["init_ms"] > 0
    expected = np.mean(tiny_conv1d_model.predict(mnist1d_sample.x_test, verbose=0).argmax(1) == mnist1d_sample.y_test)
    assert abs(report["accuracy"] - expected) <= 0.05
    assert report["agreement"]["reference"] == "keras" and report["agreement"]["top1_agreement"] >= 0.9
    assert report["predicted_latency_ms"] > 0 and "cost model (host, int8)" in report["prediction"]


def test_device_without_keras_model_says_it_cannot_predict(files):
    report = _bench(files / "tiny_int8.tflite", "--device", "pixel7", "--runs", 5, "--threads", 1)
    assert report["predicted_latency_ms"] is None and "pass --model" in report["prediction"]
    assert report["threads"] == 1 and "accuracy" not in report  # --threads wins over pixel7's 4


def test_tflm_json_has_the_exact_arena(files):
    report = _bench(files / "tiny_int8.tflite", "--runner", "tflm", "--data", files / "test.npz", "--runs", 5)
    assert report["arena_bytes"] == report["arena_recorded_bytes"] > 40 * 16
    assert report["agreement"]["reference"] == "litert" and report["agreement"]["top1_agreement"] >= 0.98
    assert report["latency_ms"]["p50"] > 0


def test_bench_refuses_keras_files_and_reports_missing_adb(files, monkeypatch):
    result = CliRunner().invoke(main, ["bench", str(files / "tiny.h5")])
    assert result.exit_code == 2 and "edgekit export" in result.output
    monkeypatch.setenv("EDGEKIT_ADB", "/nonexistent/adb")
    result = CliRunner().invoke(main, ["bench", str(files / "tiny_int8.tflite"), "--runner", "adb"])
    assert result.exit_code == 2 and "adb not found" in result.output


def test_litert_runner_can_time_builtin_kernels_and_keeps_going_for_min_seconds(files):
    from edgekit.runners.litert import LiteRTRunner

    model = (files / "tiny_int8.tflite").read_bytes()
    m = LiteRTRunner(runs=3, warmup=1, min_seconds=0.05, xnnpack=False).run(model)
    assert m.runs > 3 and "built-in kernels" in m.notes[0]
    assert m.latency_ms_min <= m.latency_ms_p50 <= m.latency_ms_p99
