"""Per-layer errors (edgekit.export.layer_outputs) and mixed precision (edgekit.export.mixed) on a model int8 breaks."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.costmodel.sensitivity import error_stats, worst_first

OFFSET = 300.0


def wide_range_regressor(seed: int = 0):
    """Dense 8-16-16-1 whose first layer has one channel with gain OFFSET/3 (values up to ~OFFSET) that the next
    layer ignores: int8's 256 steps over that range erase the other channels' values near 1, int16's do not."""
    from edgekit._tf import tf_keras

    keras = tf_keras()
    keras.utils.set_random_seed(seed)
    inp = keras.Input((8,))
    h = keras.layers.Dense(16, activation="relu", name="wide")(inp)
    h = keras.layers.Dense(16, activation="relu", name="hidden")(h)
    model = keras.Model(inp, keras.layers.Dense(1, name="head")(h), name="regressor")
    kernel, bias = model.get_layer("wide").get_weights()
    kernel[:, -1] *= OFFSET / 3.0
    model.get_layer("wide").set_weights([kernel, bias])
    kernel, bias = model.get_layer("hidden").get_weights()
    kernel[-1, :] = 0.0
    model.get_layer("hidden").set_weights([kernel, bias])
    return model


@pytest.fixture(scope="module")
def regressor():
    x = np.random.default_rng(0).standard_normal((500, 8)).astype(np.float32)
    return wide_range_regressor(), x[:300], x[300:]


def test_error_stats_match_their_definitions():
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((50, 20))
    noise = 0.01 * rng.standard_normal((50, 20))
    s = error_stats(ref, ref + noise)
    assert s.snr_db == pytest.approx(10 * np.log10(np.sum(ref ** 2) / np.sum(noise ** 2)))
    assert s.max_abs == pytest.approx(np.max(np.abs(noise)))
    assert s.relative_rms == pytest.approx(np.sqrt(np.sum(noise ** 2) / np.sum(ref ** 2)))
    assert error_stats(ref, -ref).cosine == pytest.approx(-1.0)
    ranked = worst_first([("good", s), ("bad", error_stats(ref, ref + noise * 30))])
    assert [name for name, _ in ranked] == ["bad", "good"]


def test_layer_errors_find_the_layer_int8_breaks(regressor):
    from edgekit.export.layer_outputs import layer_errors
    from edgekit.export.tflite import convert

    model, calib, x = regressor
    exact = layer_errors(model, convert(model, "float32").tflite_bytes, x[:60])
    assert {e.layer for e in exact.layers} == {"wide", "hidden", "head"}
    assert all(e.stats.snr_db > 80 for e in exact.layers)
    for runtime in ("litert", "tflm"):
        int8 = layer_errors(model, convert(model, "int8", calib).tflite_bytes, x[:60], runtime)
        by_layer = {e.layer: e for e in int8.layers}
        assert by_layer["wide"].dtype == "int8"
        # the wide layer itself is fine relative to its own large range; the layer reading it is not
        assert by_layer["wide"].stats.relative_rms < 0.05
        assert by_layer["hidden"].stats.relative_rms > 0.15
        assert int8.layers[0].layer in ("hidden", "head")
        assert int8.output.relative_rms > 0.1


def upsampling_regressor(seed: int = 0):
    """wide_range_regressor with a bilinear upsampling between its first two Dense layers: the wide channel (every
    4th of `wide`'s outputs) runs through RESIZE_BILINEAR, which TFLite Micro has no int16 kernel for."""
    from edgekit._tf import tf_keras

    keras = tf_keras()
    layers = keras.layers
    keras.utils.set_random_seed(seed)
    inp = keras.Input((8,))
    h = layers.Dense(16, activation="relu", name="wide")(inp)
    h = layers.UpSampling2D(interpolation="bilinear", name="up")(layers.Reshape((2, 2, 4), name="grid")(h))
    h = layers.Dense(16, activation="relu", name="hidden")(layers.Flatten(name="flat")(h))
    model = keras.Model(inp, layers.Dense(1, name="head")(h), name="upsampler")
    kernel, bias = model.get_layer("wide").get_weights()
    kernel[:, 3::4] *= OFFSET / 3.0
    model.get_layer("wide").set_weights([kernel, bias])
    kernel, bias = model.get_layer("hidden").get_weights()
    kernel[3::4, :] = 0.0
    model.get_layer("hidden").set_weights([kernel, bias])
    return model


def _relative_rms(found, ref) -> float:
    return float(np.sqrt(np.mean((np.ravel(found) - np.ravel(ref)) ** 2) / np.mean(np.ravel(ref) ** 2)))


def test_per_layer_16x8_keeps_weights_per_channel_and_recovers_held_out_error(regressor):
    """The reason per-layer 16x8 once failed: calibration ranges given for weights made them per-tensor."""
    from ai_edge_litert.interpreter import Interpreter

    from edgekit.export.mixed import quantize_per_layer
    from edgekit.export.tflite import convert
    from edgekit.runners.litert import predict

    model, calib, x = regressor
    held_out, ref = x[100:], model.predict(x[100:], verbose=0)
    float_bytes = convert(model, "float32").tflite_bytes
    int8 = quantize_per_layer(float_bytes, {}, calib)
    mixed = quantize_per_layer(float_bytes, {"wide": "int16x8", "hidden": "int16x8"}, calib)
    details = {d["name"]: d for d in Interpreter(model_content=mixed).get_tensor_details()}
    assert len(details["regressor/wide/MatMul"]["quantization_parameters"]["scales"]) == 16
    int8_error, mixed_error = _relative_rms(predict(int8, held_out), ref), _relative_rms(predict(mixed, held_out), ref)
    assert int8_error > 0.1
    assert mixed_error < int8_error / 4


@pytest.mark.slow
def test_mixed_choice_on_tflm_uses_only_kernels_tflm_has_and_recovers_the_error():
    from ai_edge_litert.interpreter import Interpreter

    from edgekit.export.kernel_probe import probe
    from edgekit.export.mixed import choose_mixed
    from edgekit.profiles import load_profile
    from edgekit.runners import tflm

    model = upsampling_regressor()
    x = np.random.default_rng(0).standard_normal((500, 8)).astype(np.float32)
    calib, choose_on, held_out = x[:300], x[300:400], x[400:]
    # the real interpreters differ: LiteRT runs RESIZE_BILINEAR on int16, TFLite Micro does not
    assert probe("litert", "int16x8", "RESIZE_BILINEAR") is True
    assert probe("tflm", "int16x8", "RESIZE_BILINEAR") is False
    plan = choose_mixed(model, calib, choose_on, runtime="tflm", profile=load_profile("stm32h743"))
    interpreter = Interpreter(model_content=plan.tflite_bytes)
    details = interpreter.get_tensor_details()
    kinds = {(op["op_name"], np.dtype(details[op["outputs"][0]]["dtype"]).name)
             for op in interpreter._get_ops_details()}
    int16_ops = {name for name, dtype in kinds if dtype == "int16" and name not in ("QUANTIZE", "DEQUANTIZE")}
    assert int16_ops and all(probe("tflm", "int16x8", name) is not False for name in int16_ops)
    assert ("RESIZE_BILINEAR", "int16") not in kinds and plan.raised.get("up") == "float32"
    # the chosen file runs on TFLite Micro and recovers, on samples neither the calibration nor the choice saw
    ref = model.predict(held_out, verbose=0)
    int8_error = _relative_rms(tflm.predict(convert_int8(model, calib), held_out), ref)
    mixed_error = _relative_rms(tflm.predict(plan.tflite_bytes, held_out), ref)
    assert int8_error > 0.2
    assert mixed_error < min(0.05, int8_error / 5)
    assert plan.int8_size_bytes < plan.size_bytes
    assert plan.int8_latency_ms < plan.latency_ms


def convert_int8(model, calib) -> bytes:
    from edgekit.export.tflite import convert

    return convert(model, "int8", calib).tflite_bytes


def test_per_layer_float_recipe_keeps_that_layer_float(regressor):
    from ai_edge_litert.interpreter import Interpreter

    from edgekit.export.mixed import quantize_per_layer
    from edgekit.export.tflite import convert

    model, calib, _ = regressor
    blob = quantize_per_layer(convert(model, "float32").tflite_bytes, {"wide": "float32", "hidden": "int16x8"}, calib)
    interpreter = Interpreter(model_content=blob)
    details = interpreter.get_tensor_details()
    kinds = [(op["op_name"], details[op["outputs"][0]]["dtype"].__name__) for op in interpreter._get_ops_details()
             if op["op_name"] == "FULLY_CONNECTED"]
    assert kinds == [("FULLY_CONNECTED", "float32"), ("FULLY_CONNECTED", "int16"), ("FULLY_CONNECTED", "int8")]
    assert interpreter.get_input_details()[0]["dtype"] == np.float32
