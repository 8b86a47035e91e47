"""Surgery on real tf_keras models: the pruned model is smaller, its params and MACs are what the IR
predicted, it converts to int8 TFLite and runs in LiteRT and TFLite Micro, and removing channels whose
weights are zero changes no output."""

from __future__ import annotations

import numpy as np
import pytest
from prune_helpers import int8_runs, random_keep, randomize_batchnorm, samples, zero_removed_channels

from edgekit.channels.groups import build_groups
from edgekit.channels.keep import shrink_graph
from edgekit.costmodel.layer_costs import analyze
from edgekit.examples import zoo
from edgekit.examples.mnist1d_teacher import build_teacher
from edgekit.ir.from_keras import from_keras
from edgekit.prune import prune
from edgekit.prune.surgery import apply_keep


def sequential_cnn():
    from edgekit._tf import tf_keras

    keras = tf_keras()
    L = keras.layers
    return keras.Sequential([
        keras.Input((16, 16, 3)),
        L.Conv2D(16, 3, padding="same", name="c1"), L.BatchNormalization(name="bn1"), L.ReLU(name="r1"),
        L.MaxPooling2D(2, name="p1"),
        L.Conv2D(24, 3, padding="same", activation="relu", name="c2"), L.Dropout(0.2, name="drop"),
        L.ZeroPadding2D(1, name="pad"), L.Cropping2D(1, name="crop"),
        L.Flatten(name="flat"), L.Dense(32, activation="relu", name="fc"), L.Dense(5, name="out"),
    ], name="sequential_cnn")


MODELS = {
    "sequential_cnn": sequential_cnn,
    "resnet8": zoo.resnet8,
    "concat_se": zoo.concat_se_net,
    "xception_like": zoo.xception_like,
    "conv1d_pool": zoo.conv1d_net,
    "conv1d_teacher": build_teacher,
    "dense_autoencoder": zoo.dense_autoencoder,
    "mobilenet_v2": zoo.mobilenet_v2,  # keras.applications, weights=None, alpha 0.35, 96x96, static head
}
FAST = [name for name in MODELS if name != "mobilenet_v2"]
ALL = [*FAST, pytest.param("mobilenet_v2", marks=pytest.mark.slow)]


def _build(name):
    model = MODELS[name]()
    randomize_batchnorm(model)
    return model


@pytest.mark.parametrize("name", ALL)
def test_removing_zero_channels_changes_no_output(name):
    model = _build(name)
    groups = build_groups(from_keras(model))
    keep = random_keep(groups, 0.5, seed=1)
    x = samples(model, 16) * 2.0
    # The check has teeth: cutting the same channels while they still carry weights changes the outputs.
    cut_live = apply_keep(model, groups, keep).predict(x, verbose=0)
    assert np.abs(cut_live - model.predict(x, verbose=0)).max() > 1e-4
    zero_removed_channels(model, groups, keep)
    reference = model.predict(x, verbose=0)
    pruned = apply_keep(model, groups, keep)
    assert np.abs(pruned.predict(x, verbose=0) - reference).max() <= 1e-5
    predicted = analyze(shrink_graph(groups, keep))
    measured = analyze(from_keras(pruned))
    assert (measured.params, measured.macs) == (predicted.params, predicted.macs)
    assert measured.params == pruned.count_params() < model.count_params()


@pytest.mark.parametrize("name", ALL)
def test_half_pruned_model_is_smaller_and_runs_int8_in_litert_and_tflm(name):
    model = _build(name)
    result = prune(model, 0.5)
    pruned, report = result.model, result.report
    before, after = analyze(from_keras(model)), analyze(from_keras(pruned))
    assert (report.params_after, report.macs_after) == (after.params, after.macs) == (pruned.count_params(),
                                                                                     after.macs)
    assert after.params < 0.6 * before.params and after.macs < 0.6 * before.macs
    assert pruned.input_shape == model.input_shape and pruned.output_shape == model.output_shape

    calibration, x = samples(model, 32, seed=2), samples(model, 8, seed=3)
    original_tflite, _, _ = int8_runs(model, calibration, x[:1])
    tflite, litert_out, tflm_out = int8_runs(pruned, calibration, x)
    assert len(tflite) < 0.75 * len(original_tflite)
    keras_out = pruned.predict(x, verbose=0)
    scale = float(np.abs(keras_out).max())
    # Same int8 graph on two runtimes: at most a rounding step apart; both close to the float model.
    assert np.abs(litert_out - tflm_out).max() <= 0.05 * scale
    assert np.abs(litert_out - keras_out).max() <= 0.15 * scale


def test_size_target_is_met_by_the_converted_file():
    from edgekit.costmodel.size import estimate_tflite_bytes
    from edgekit.export.tflite import convert

    model = _build("resnet8")
    target = estimate_tflite_bytes(from_keras(model), "int8").flash_bytes // 3
    result = prune(model, target_size_bytes=target)
    assert estimate_tflite_bytes(from_keras(result.model), "int8").flash_bytes <= target
    calibration = samples(model, 16)
    measured = convert(result.model, "int8", calibration, calibration_samples=16).size_bytes
    assert measured <= 1.05 * target  # the size model's error, not the pruner's
    assert result.report.macs_after < 0.5 * result.report.macs_before


def test_nested_model_is_rebuilt_nested(keras):
    L = keras.layers
    inner_in = keras.Input((8, 8, 4))
    h = L.Conv2D(12, 3, padding="same", name="a")(inner_in)
    h = L.BatchNormalization(name="bn")(h)
    inner = keras.Model(inner_in, L.ReLU(name="r")(h), name="features")
    x = inp = keras.Input((8, 8, 4))
    x = L.Conv2D(6, 1, name="pre")(x)  # the nested model's input channels are prunable too
    x = L.Conv2D(4, 1, name="pre2")(x)
    x = inner(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inp, L.Dense(3, name="out")(x))
    randomize_batchnorm(model)
    groups = build_groups(from_keras(model))
    assert {g.sources for g in groups.prunable_groups} == {("pre",), ("pre2",), ("features/a",)}
    keep = random_keep(groups, 0.5)
    zero_removed_channels(model, groups, keep)
    pruned = apply_keep(model, groups, keep)
    assert pruned.get_layer("features").get_layer("a").filters == 6
    assert pruned.get_layer("features").input_shape == (None, 8, 8, 2)
    x = samples(model, 4)
    assert np.abs(pruned.predict(x, verbose=0) - model.predict(x, verbose=0)).max() <= 1e-5


def test_unknown_layer_is_kept_whole_and_listed(keras):
    L = keras.layers
    x = inp = keras.Input((10, 10, 3))
    x = L.Conv2D(8, 3, name="c1")(x)
    x = L.LayerNormalization(name="ln")(x)
    x = L.Conv2D(8, 3, name="c2")(x)
    x = L.GlobalMaxPooling2D(name="gmp")(x)
    model = keras.Model(inp, L.Dense(2, name="out")(x))
    result = prune(model, 0.5)
    assert result.model.get_layer("c1").filters == 8  # feeds the LayerNormalization: frozen
    assert result.model.get_layer("c2").filters == 4
    frozen = {f.node: f.reason for f in result.report.frozen}
    assert "normalises across channels" in frozen["ln"]
    assert "model output" in frozen["out"]
    by_name = {layer.name: layer for layer in result.report.layers}
    assert "read by ln" in by_name["c1"].frozen_reason


def test_input_model_is_not_modified():
    model = _build("resnet8")
    before = [w.copy() for w in model.get_weights()]
    prune(model, 0.5)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
