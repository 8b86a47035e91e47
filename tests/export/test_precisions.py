"""Every precision, on four architectures, converts (batch 1, static shapes) and runs in LiteRT close to Keras."""

import numpy as np
import pytest
from export_helpers import keras_vs_litert

from edgekit.export.tflite import convert
from edgekit.model_io.flatbuffer import infer_precision, tflite_op_list

ARCHITECTURES = ("conv1d", "dscnn", "resnet", "mlp")
# largest error allowed, as a fraction of the largest |Keras output| on the samples
TOLERANCE = {"float32": 1e-5, "float16": 5e-3, "dynamic_int8": 0.08, "int8": 0.2, "int8_io": 0.2}


@pytest.fixture(scope="module")
def conversions(architectures):
    out = {}
    for name, (model, x) in architectures.items():
        for precision in ("float32", "float16", "dynamic_int8", "int8"):
            out[name, precision] = convert(model, precision, x)
        out[name, "int8_io"] = convert(model, "int8", x, int8_io=True)
    return out


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("precision", list(TOLERANCE))
def test_each_precision_runs_in_litert_close_to_keras(conversions, architectures, arch, precision):
    model, x = architectures[arch]
    result = conversions[arch, precision]
    found = keras_vs_litert(model, result.tflite_bytes, x[:64])
    assert found.max_abs_error <= TOLERANCE[precision] * found.reference_max_abs
    assert infer_precision(result.tflite_bytes) == ("int8" if precision == "int8_io" else precision)
    ops = tflite_op_list(result.tflite_bytes)
    assert not {"SHAPE", "PACK", "STRIDED_SLICE"} & set(ops)  # batch 1: nothing computes shapes at run time


def test_dynamic_range_on_tiny_weights_changes_nothing_and_says_so():
    from edgekit._tf import tf_keras

    keras = tf_keras()
    inputs = keras.Input((16,))
    model = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.Dense(32)(inputs)))  # 512 and 128 weights
    result = convert(model, "dynamic_int8")
    assert infer_precision(result.tflite_bytes) == "float32"
    assert any("fewer than 1024 elements" in w for w in result.warnings)
    assert result.size_bytes == pytest.approx(convert(model, "float32").size_bytes, abs=64)


def test_weight_bytes_shrink_with_precision(conversions):
    from edgekit.export.strip import size_breakdown

    for arch in ARCHITECTURES:
        weights = {p: size_breakdown(conversions[arch, p].tflite_bytes).weight_bytes
                   for p in ("float32", "float16", "dynamic_int8", "int8")}
        # 4 -> 2 -> 1 byte per weight; biases stay int32 / float32, small tensors stay float in dynamic range
        assert 0.45 < weights["float16"] / weights["float32"] < 0.56
        assert weights["int8"] / weights["float32"] < 0.32
        assert weights["dynamic_int8"] / weights["float32"] < 0.7


@pytest.mark.slow
@pytest.mark.parametrize("arch", ("conv1d", "dscnn", "resnet"))
def test_quantization_aware_training_converts_and_matches_its_keras_model(architectures, mnist1d_sample, arch):
    from edgekit.export.qat import quantize_aware
    from edgekit.runners.litert import predict

    model, x = architectures[arch]
    qat = quantize_aware(model, x[:128], None, epochs=1)
    result = convert(qat.model, "int8", x)
    assert result.calibrated_on == "qat" and result.warnings == ()
    assert infer_precision(result.tflite_bytes) == "int8"
    reference = qat.model.predict(x[:128], verbose=0)
    found = predict(result.tflite_bytes, x[:128])
    # the fake-quant model predicts the int8 model: at most a couple of output steps apart
    step = _output_scale(result.tflite_bytes, reference.shape[1])
    assert np.max(np.abs(found - reference)) <= 2 * step + 1e-6
    assert np.mean(np.abs(found - reference)) <= 0.25 * step


def _output_scale(tflite_bytes, classes):
    """Scale of the int8 logits feeding the final DEQUANTIZE (one output quantisation step)."""
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_content=tflite_bytes).get_tensor_details()
    return max(d["quantization"][0] for d in details if d["dtype"] == np.int8 and tuple(d["shape"]) == (1, classes))


def test_int8_agrees_with_the_float_mnist1d_teacher(mnist1d_teacher, mnist1d_2000):
    result = convert(mnist1d_teacher, "int8", mnist1d_2000.x_train)
    found = keras_vs_litert(mnist1d_teacher, result.tflite_bytes, mnist1d_2000.x_test)
    assert found.n_samples == 400 and found.top1_agreement >= 0.98
    io = convert(mnist1d_teacher, "int8", mnist1d_2000.x_train, int8_io=True)
    assert keras_vs_litert(mnist1d_teacher, io.tflite_bytes, mnist1d_2000.x_test).top1_agreement >= 0.98


@pytest.mark.slow
def test_keras_applications_top_is_static_and_runs_in_tflm():
    """keras.applications' include_top head reshapes by a computed shape unless converted at a fixed batch."""
    from edgekit._tf import tf_keras
    from edgekit.runners import litert, tflm

    keras = tf_keras()
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNet(alpha=0.25, input_shape=(96, 96, 3), weights=None, classes=4)
    x = np.random.default_rng(0).uniform(-1, 1, size=(8, 96, 96, 3)).astype(np.float32)
    # Untrained, its activations vanish (logits ~1e-16, an int8 softmax scale TFLM aborts on): set each
    # BatchNorm's statistics from one batch so the layers see normalised inputs, as after training.
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    model(x, training=True)
    result = convert(model, "int8", x, calibration_samples=8)
    ops = tflite_op_list(result.tflite_bytes)
    assert "RESHAPE" in ops and not {"SHAPE", "PACK", "STRIDED_SLICE"} & set(ops)
    arena = tflm.measure_arena(result.tflite_bytes)  # aborts the probe process with the dynamic reshape
    assert arena.arena_bytes > 96 * 96 * 3
    on_tflm = tflm.predict(result.tflite_bytes, x, arena_size=arena.arena_bytes)
    on_litert = litert.predict(result.tflite_bytes, x)
    # 28 int8 layers calibrated on 8 images: TFLM's reference kernels and XNNPACK round differently at every
    # layer, so probabilities differ by up to ~0.1 while still summing to one
    np.testing.assert_allclose(on_tflm.sum(1), 1.0, atol=0.02)
    np.testing.assert_allclose(on_tflm, on_litert, atol=0.15)
    assert np.mean(on_tflm.argmax(1) == on_litert.argmax(1)) >= 0.75
