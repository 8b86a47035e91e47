"""The adb runner: benchmark_model output parsing on real output, and the adb flow against a fake adb."""

import os
import stat
import textwrap

import pytest

from edgekit.errors import BadInputError
from edgekit.runners.adb import AdbRunner, parse_benchmark_model_output, parse_demo_log

# Real benchmark_model output, quoted from public GitHub issues (trimmed to the lines edgekit reads):
# google/XNNPACK issue #999 (Raspberry Pi 4, int8 model, XNNPACK, TFLite ~2.5):
XNNPACK_999 = """\
Loaded model yolo_best_recall_int8_static.tflite
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
The input model file size (MB): 3.67827
Initialized session in 18.777ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=9 first=64791 curr=56295 min=54873 max=65831 avg=57758.2 std=4065

Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=50 first=58154 curr=53809 min=53077 max=60727 avg=55043.2 std=1562

Inference timings in us: Init: 18777, First inference: 64791, Warmup (avg): 57758.2, Inference (avg): 55043.2
Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
Memory footprint delta from the start of the tool (MB): init=8.97656 overall=18.7227
"""
# tensorflow/tensorflow issue #42507 (Android phone, adb shell, 4 threads, op profiling on):
TENSORFLOW_42507 = """\
STARTING!
Duplicate flags: num_threads
Num threads: [4]
Graph: [/data/local/tmp/espcn_harmonic_2x_slim_w_cl.tflite]
Enable op profiling: [1]
Loaded model /data/local/tmp/espcn_harmonic_2x_slim_w_cl.tflite
The input model file size (MB): 0.004448
Initialized session in 0.855ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=15 first=49060 curr=33682 min=32825 max=49060 avg=34825.1 std=3930

Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=50 first=32891 curr=33978 min=32641 max=34005 avg=33209.4 std=450

Inference timings in us: Init: 855, First inference: 49060, Warmup (avg): 34825.1, Inference (avg): 33209.4
Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
Peak memory footprint (MB): init=0 overall=12.8672
"""
# yuenshome/yuenshome.github.io issue #77 (arm64 phone, 2019 build: the older summary line):
YUENSHOME_77 = """\
Loaded model /data/local/tmp/tflite/tfmodel/mobilenet_v1_1.0_224_quant.tflite
resolved reporter
Initialized session in 4.183ms
Running benchmark for at least 4 iterations and at least 0.5 seconds
count=13 first=39195 curr=37526 min=37464 max=39195 avg=37625.7 std=453

Running benchmark for at least 10 iterations and at least 1 seconds
count=25 first=37601 curr=37528 min=37413 max=37601 avg=37534.5 std=42

Average inference timings in us: Warmup: 37625.7, Init: 4183, no stats: 37534.5
"""


def test_parses_benchmark_model_output_with_memory_delta():
    r = parse_benchmark_model_output(XNNPACK_999)
    assert (r.runs, r.avg_us, r.std_us, r.min_us, r.max_us) == (50, 55043.2, 1562, 53077, 60727)
    assert (r.init_us, r.first_inference_us, r.warmup_avg_us) == (18777, 64791, 57758.2)
    assert (r.memory_init_mb, r.memory_overall_mb, r.median_us) == (8.97656, 18.7227, None)


def test_parses_android_output_with_peak_memory_and_crlf():
    r = parse_benchmark_model_output(TENSORFLOW_42507.replace("\n", "\r\n"))
    assert (r.runs, r.avg_us, r.std_us, r.init_us) == (50, 33209.4, 450, 855)
    assert (r.memory_init_mb, r.memory_overall_mb) == (0, 12.8672)


def test_parses_the_2019_summary_line():
    r = parse_benchmark_model_output(YUENSHOME_77)
    assert (r.runs, r.avg_us, r.init_us, r.warmup_avg_us, r.first_inference_us) == (25, 37534.5, 4183, 37625.7, None)


def test_parses_the_percentiles_newer_builds_print():
    # the count-line format of newer benchmark_model builds (p5 / median / p95 appended); synthetic numbers
    line = ("count=25 first=187533 curr=140990 min=140071 max=195121 avg=145528 std=13583 "
            "p5=140545 median=141253 p95=187533")
    r = parse_benchmark_model_output(line + "\n")
    assert (r.runs, r.median_us, r.avg_us) == (25, 141253, 145528)


def test_output_without_timings_is_an_error_quoting_the_tool():
    with pytest.raises(BadInputError, match="no timings.*Failed to allocate tensors"):
        parse_benchmark_model_output("STARTING!\nLoaded model x.tflite\nFailed to allocate tensors!\n")


def test_parses_the_demo_app_log():
    log = parse_demo_log("01-02 10:00:00.000  123  123 I EdgekitBench: EDGEKIT_INIT ms=12.5 delegate=gpu threads=2 "
                         "model_bytes=100\n"
                         "01-02 10:00:00.100  123  123 I EdgekitBench: EDGEKIT_RUN i=1 ms=3.5\n"
                         "01-02 10:00:00.050  123  123 I EdgekitBench: EDGEKIT_RUN i=0 ms=4.0\n"
                         "01-02 10:00:00.200  123  123 I EdgekitBench: EDGEKIT_DONE runs=2\n")
    assert (log.init_ms, log.run_ms, log.delegate, log.threads, log.done) == (12.5, (4.0, 3.5), "gpu", 2, True)
    with pytest.raises(BadInputError, match="failed on the device: GPU delegate unavailable"):
        parse_demo_log("I EdgekitBench: EDGEKIT_ERROR GPU delegate unavailable\n")


def _fake_adb(folder, devices: str, binary_on_device: bool, tool_output: str):
    """An `adb` script answering like a phone: devices, push, shell ls / mkdir / chmod / benchmark_model."""
    (folder / "tool_output.txt").write_text(tool_output)
    script = folder / "adb"
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        echo "$@" >> "{folder}/calls.txt"
        if [ "$1" = "-s" ]; then shift 2; fi
        case "$1" in
          devices) printf 'List of devices attached\\n{devices}\\n' ;;
          push) echo "1 file pushed" ;;
          shell)
            case "$2" in
              ls*) {"echo yes" if binary_on_device else "echo no"} ;;
              *benchmark_model*) cat "{folder}/tool_output.txt" ;;
              *) ;;
            esac ;;
        esac
        """))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_runs_benchmark_model_on_the_attached_phone(tmp_path):
    adb = _fake_adb(tmp_path, "R58N123ABC\\tdevice", True, TENSORFLOW_42507)
    m = AdbRunner(adb=adb, threads=4, delegate="gpu", runs=50).run(b"TFL3 model bytes")
    assert m.runner == "adb" and m.device == "android R58N123ABC" and m.threads == 4 and m.runs == 50
    assert (m.latency_ms_mean, m.latency_ms_std, m.latency_ms_min, m.init_ms) == (33.2094, 0.45, 32.641, 0.855)
    assert m.latency_ms_p50 is None and m.latency_ms_p99 is None  # benchmark_model prints no percentiles
    assert m.peak_rss_growth_bytes == int(12.8672 * 1024 * 1024)
    calls = (tmp_path / "calls.txt").read_text()
    assert "push" in calls and "/data/local/tmp/edgekit/model.tflite" in calls
    assert "--use_gpu=true" in calls and "--num_threads=4" in calls and "--num_runs=50" in calls


def test_clear_errors_for_missing_adb_device_and_binary(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("EDGEKIT_ADB", raising=False)
    with pytest.raises(BadInputError, match="adb not found"):
        AdbRunner().run(b"model")
    none = tmp_path / "none"
    none.mkdir()
    with pytest.raises(BadInputError, match="no Android device attached"):
        AdbRunner(adb=_fake_adb(none, "", True, "")).run(b"model")
    two = tmp_path / "two"
    two.mkdir()
    with pytest.raises(BadInputError, match="2 Android devices attached"):
        AdbRunner(adb=_fake_adb(two, "A\\tdevice\\nB\\tdevice", True, "")).run(b"model")
    absent = tmp_path / "absent"
    absent.mkdir()
    with pytest.raises(BadInputError, match="benchmark_model is not on the device"):
        AdbRunner(adb=_fake_adb(absent, "A\\tdevice", False, "")).run(b"model")
    with pytest.raises(BadInputError, match="no such benchmark_model binary"):
        AdbRunner(binary=os.fspath(tmp_path / "missing_benchmark_model"))


def test_the_demo_apps_log_format_is_what_the_parser_reads():
    """Take the log format strings out of the Kotlin source and parse lines made from them."""
    import re
    from pathlib import Path

    source = (Path(__file__).resolve().parents[2] / "android_demo/app/src/main/java/dev/edgekit/demo/Benchmark.kt")
    formats = dict(re.findall(r'log\("(EDGEKIT_\w+) ([^"]*)"', source.read_text()))
    assert set(formats) == {"EDGEKIT_INIT", "EDGEKIT_RUN", "EDGEKIT_DONE"}
    lines = ["EDGEKIT_INIT " + formats["EDGEKIT_INIT"] % (15.25, "gpu", 4, 41720)]
    lines += ["EDGEKIT_RUN " + formats["EDGEKIT_RUN"] % (i, ms) for i, ms in enumerate((2.5, 2.25, 3.0))]
    lines.append("EDGEKIT_DONE " + formats["EDGEKIT_DONE"] % (3, 2.5))
    log = parse_demo_log("\n".join(f"I EdgekitBench: {line}" for line in lines))
    assert (log.init_ms, log.run_ms, log.delegate, log.threads, log.done) == (15.25, (2.5, 2.25, 3.0), "gpu", 4, True)


@pytest.mark.slow
def test_fit_with_adb_reports_the_phones_latency_as_measured(tmp_path, monkeypatch, tiny_conv1d_model,
                                                              mnist1d_sample):
    import numpy as np

    from edgekit.workflows.fit import fit

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_adb(bin_dir, "R58N123ABC\\tdevice", True, TENSORFLOW_42507)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    model_path = tmp_path / "m.h5"
    tiny_conv1d_model.save(model_path)
    s = mnist1d_sample
    np.savez(tmp_path / "train.npz", x=s.x_train, y=s.y_train)
    result = fit(str(model_path), "pixel7", str(tmp_path / "train.npz"), out_dir=tmp_path / "out", epochs=1,
                 quiet=True, adb=True, max_latency_ms=50)  # the fake phone answers 33.2 ms
    latency = next(b for b in result.budgets if b.budget == "latency_ms")
    assert latency.measured == 33.2094  # the phone's benchmark_model average, not the host's
    assert "R58N123ABC" in latency.measured_by
    assert "push" in (bin_dir / "calls.txt").read_text()


@pytest.mark.slow
def test_fit_replans_then_gives_up_when_the_phone_measures_over_budget(tmp_path, monkeypatch, tiny_conv1d_model,
                                                                       mnist1d_sample):
    import numpy as np

    from edgekit.workflows.fit import fit
    from edgekit.workflows.fit.pipeline import MAX_REPLANS, FitDoesNotFitError

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_adb(bin_dir, "R58N123ABC\\tdevice", True, TENSORFLOW_42507)  # always answers 33.2 ms
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    model_path = tmp_path / "m.h5"
    tiny_conv1d_model.save(model_path)
    np.savez(tmp_path / "train.npz", x=mnist1d_sample.x_train, y=mnist1d_sample.y_train)
    with pytest.raises(FitDoesNotFitError, match="latency_ms over budget"):
        fit(str(model_path), "pixel7", str(tmp_path / "train.npz"), out_dir=tmp_path / "out", epochs=1, quiet=True,
            adb=True, max_latency_ms=20)
    pushes = (bin_dir / "calls.txt").read_text().count(" push ")
    assert pushes >= MAX_REPLANS + 1  # measured, tightened and re-planned each round before giving up
    # the reports only (and edgekit's ownership marker): no model file is published when nothing fits
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [".edgekit-output.json", "report.html", "report.json", "report.md"]
