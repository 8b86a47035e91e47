"""A TensorFlow SavedModel that is not Keras (a tf.Module with a signature): inspect, plan (precisions), bench."""

import hashlib
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.cli.main import main

SAMPLES = 400   # audio samples per input
CONV_OUT, KERNEL, STRIDE, CLASSES = 8, 3, 2, 4


def _audio_module(tf):
    rng = np.random.default_rng(0)

    class Audio(tf.Module):
        def __init__(self):
            super().__init__()
            self.w1 = tf.Variable(rng.standard_normal((KERNEL, 1, CONV_OUT)).astype("float32"))
            self.b1 = tf.Variable(rng.standard_normal(CONV_OUT).astype("float32"))
            self.w2 = tf.Variable(rng.standard_normal((CONV_OUT, CLASSES)).astype("float32"))
            self.b2 = tf.Variable(rng.standard_normal(CLASSES).astype("float32"))

        @tf.function(input_signature=[tf.TensorSpec([None, SAMPLES], tf.float32)])
        def __call__(self, x):
            h = tf.nn.relu(tf.nn.conv1d(x[..., None], self.w1, stride=STRIDE, padding="SAME") + self.b1)
            return {"scores": tf.matmul(tf.reduce_mean(h, axis=1), self.w2) + self.b2}

    return Audio()


def _save(tf, module, path, **kwargs):
    tf.saved_model.save(module, str(path), **kwargs)
    return str(path)


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    from edgekit._tf import tensorflow

    tf = tensorflow()
    module = _audio_module(tf)
    path = _save(tf, module, tmp_path_factory.mktemp("sm") / "audio",
                 signatures=module.__call__.get_concrete_function())
    x = np.random.default_rng(1).standard_normal((24, SAMPLES)).astype("float32")
    reference = module(tf.constant(x))["scores"].numpy()
    return path, module, x, reference


def _digest(path) -> str:
    h = hashlib.sha256()
    for root, _, names in sorted(os.walk(path)):
        for name in sorted(names):
            with open(os.path.join(root, name), "rb") as f:
                h.update(name.encode() + f.read())
    return h.hexdigest()


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.slow
def test_inspect_reads_params_and_macs_through_the_conversion(audio_dir):
    path, module, _, _ = audio_dir
    before = _digest(path)
    result = CliRunner().invoke(main, ["inspect", path, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["format"] == "saved_model"
    assert report["params"] == sum(int(np.prod(v.shape)) for v in module.trainable_variables)
    frames = SAMPLES // STRIDE
    conv = next(layer for layer in report["layers"] if layer["op"] == "CONV_2D")
    assert conv["macs"] == frames * CONV_OUT * KERNEL
    assert report["macs"] >= frames * CONV_OUT * KERNEL + CONV_OUT * CLASSES
    assert _digest(path) == before   # the user's directory is never written


@pytest.mark.slow
def test_plan_is_precision_only_and_refuses_budgets_no_precision_meets(audio_dir, tmp_path):
    path = audio_dir[0]
    out = tmp_path / "plan.json"
    result = CliRunner().invoke(main, ["plan", path, "--device", "stm32h743", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(out.read_text())
    assert {c["kind"] for c in plan["candidates"]} == {"original"}
    assert any("SavedModel without Keras metadata" in line for line in plan["explanation"])
    float32 = next(c for c in plan["candidates"] if c["precision"] == "float32")
    # weights alone at float32 are over this flash budget, at int8 under it: int8 must be the one that fits
    weight_bytes = 4 * (KERNEL * CONV_OUT + CONV_OUT + CONV_OUT * CLASSES + CLASSES)
    assert float32["predicted"]["flash_bytes"] > weight_bytes
    tight = CliRunner().invoke(main, ["plan", path, "--device", "stm32h743", "--max-flash", "64B",
                                      "--out", str(tmp_path / "none.json")])
    assert tight.exit_code == 3, tight.output
    assert "flash" in tight.output and not (tmp_path / "none.json").exists()


@pytest.mark.slow
def test_bench_runs_the_conversion_and_matches_tensorflow(audio_dir, tmp_path):
    path, _, x, reference = audio_dir
    labels = reference.argmax(1)
    np.savez(tmp_path / "data.npz", x=x, y=labels)
    result = CliRunner().invoke(main, ["bench", path, "--data", str(tmp_path / "data.npz"), "--runs", "3",
                                       "--warmup", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["precision"] == "float32"
    assert report["accuracy"] == pytest.approx(1.0)   # TFLite's argmax is TensorFlow's on every sample
    assert report["latency_ms"]["p50"] > 0


@pytest.mark.slow
def test_refusals_name_the_directory_and_what_to_do(tmp_path):
    from edgekit._tf import tensorflow

    tf = tensorflow()
    bare = tf.Module()
    bare.v = tf.Variable(1.0)   # no tf.function with an input signature: nothing to convert
    unsigned = _save(tf, bare, tmp_path / "unsigned")
    assert_one_line_error(CliRunner().invoke(main, ["inspect", unsigned]), unsigned, "no signature", "signatures=")

    ragged = tf.Module()
    ragged.f = tf.function(lambda x: {"y": tf.reduce_sum(x, axis=1)},
                           input_signature=[tf.TensorSpec([1, None], tf.float32)])
    ragged_dir = _save(tf, ragged, tmp_path / "ragged", signatures=ragged.f.get_concrete_function())
    assert_one_line_error(CliRunner().invoke(main, ["inspect", ragged_dir]), ragged_dir, "[1, ?]",
                          "fixed tf.TensorSpec")

    python = tf.Module()
    python.f = tf.function(lambda x: {"y": tf.py_function(lambda v: v * 2, [x], tf.float32)},
                           input_signature=[tf.TensorSpec([1, 4], tf.float32)])
    python_dir = _save(tf, python, tmp_path / "python", signatures=python.f.get_concrete_function())
    assert_one_line_error(CliRunner().invoke(main, ["bench", python_dir]), python_dir, "calls back into Python")

    special = tf.Module()
    special.f = tf.function(lambda x: {"y": tf.math.digamma(x)}, input_signature=[tf.TensorSpec([1, 4], tf.float32)])
    special_dir = _save(tf, special, tmp_path / "special", signatures=special.f.get_concrete_function())
    assert_one_line_error(CliRunner().invoke(main, ["inspect", special_dir]), special_dir, "Digamma")
