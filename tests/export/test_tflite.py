import numpy as np
import pytest
from export_helpers import keras_vs_litert

from edgekit.errors import BadInputError, UnsupportedModelError
from edgekit.export.tflite import convert
from edgekit.model_io.flatbuffer import tflite_op_list
from edgekit.precisions import PRECISIONS
from edgekit.runners.agreement import agreement


@pytest.fixture(scope="module")
def converted(tiny_conv1d_model, mnist1d_sample):
    """Every precision of the tiny Conv1D model, int8 calibrated on training samples."""
    x_train = mnist1d_sample.x_train
    results = {p: convert(tiny_conv1d_model, p, representative_data=x_train) for p in PRECISIONS}
    results["int8_io"] = convert(tiny_conv1d_model, "int8", x_train, int8_io=True)
    return results


def _io_dtypes(tflite_bytes):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite_bytes)
    return interpreter.get_input_details()[0]["dtype"], interpreter.get_output_details()[0]["dtype"]


# Largest error allowed, as a fraction of the largest |logit| (about 30 here), and least top-1 agreement.
TOLERANCES = {
    "float32": (1e-5, 1.0),
    "float16": (1e-3, 0.99),
    "dynamic_int8": (0.02, 0.97),
    "int8": (0.12, 0.95),
}


@pytest.mark.parametrize("precision", PRECISIONS)
def test_each_precision_runs_in_litert_close_to_keras(converted, tiny_conv1d_model, mnist1d_sample,
                                                      precision):
    result = converted[precision]
    assert result.precision == precision
    assert result.calibrated_on == ("data" if precision == "int8" else None)
    assert result.warnings == ()
    found = keras_vs_litert(tiny_conv1d_model, result.tflite_bytes, mnist1d_sample.x_test)
    max_relative_error, min_top1 = TOLERANCES[precision]
    assert found.n_samples == 200
    assert found.max_abs_error <= max_relative_error * found.reference_max_abs
    assert found.top1_agreement >= min_top1
    if precision == "float32":
        assert found.top1_agreement == 1.0


def test_int8_agrees_better_on_average_than_at_worst(converted, tiny_conv1d_model, mnist1d_sample):
    found = keras_vs_litert(tiny_conv1d_model, converted["int8"].tflite_bytes, mnist1d_sample.x_test)
    # mean error within a few int8 output steps; the worst sample is allowed to be much further off
    assert found.mean_abs_error <= 0.01 * found.reference_max_abs
    assert found.mean_abs_error < found.max_abs_error


def test_sizes_shrink_with_precision(converted):
    size = {name: result.size_bytes for name, result in converted.items()}
    # ~8k float32 weights (32 kB): float16 halves them, int8 quarters them (plus graph overhead)
    assert 0.45 < size["float16"] / size["float32"] < 0.65
    assert size["dynamic_int8"] / size["float32"] < 0.4
    assert size["int8"] / size["float32"] < 0.42
    assert size["int8_io"] < size["int8"]  # no QUANTIZE / DEQUANTIZE ops at the ends


def test_int8_io_makes_input_and_output_int8_with_the_same_numbers(converted, mnist1d_sample):
    from edgekit.runners.litert import predict

    assert _io_dtypes(converted["int8"].tflite_bytes) == (np.float32, np.float32)
    assert _io_dtypes(converted["int8_io"].tflite_bytes) == (np.int8, np.int8)
    assert _io_dtypes(converted["float16"].tflite_bytes) == (np.float32, np.float32)
    assert converted["int8_io"].int8_io
    # quantising in Python (int8 io) must give what the model's own QUANTIZE op gives (float io)
    x = mnist1d_sample.x_test
    np.testing.assert_allclose(predict(converted["int8_io"].tflite_bytes, x),
                               predict(converted["int8"].tflite_bytes, x), atol=1e-6)


def test_int8_without_data_calibrates_on_synthetic_inputs_and_warns(tiny_conv1d_model, mnist1d_sample):
    result = convert(tiny_conv1d_model, "int8")
    assert result.calibrated_on == "synthetic"
    assert len(result.warnings) == 1 and "unverified" in result.warnings[0]
    found = keras_vs_litert(tiny_conv1d_model, result.tflite_bytes, mnist1d_sample.x_test[:50])
    assert found.top1_agreement > 0.5  # runs and is roughly right: MNIST-1D is near standard-normal


def test_conversion_leaves_the_model_untouched(tiny_conv1d_model, mnist1d_sample):
    before = [w.copy() for w in tiny_conv1d_model.get_weights()]
    convert(tiny_conv1d_model, "int8", mnist1d_sample.x_train[:20])
    assert all(np.array_equal(a, b) for a, b in zip(before, tiny_conv1d_model.get_weights()))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"precision": "int4"}, "unknown precision 'int4'"),
        ({"precision": "float16", "int8_io": True}, "int8_io needs precision 'int8'"),
        ({"precision": "int8", "representative_data": np.zeros((5, 40))}, r"\(N, 40, 1\)"),
    ],
)
def test_bad_arguments_say_what_to_do(tiny_conv1d_model, kwargs, message):
    with pytest.raises(BadInputError, match=message):
        convert(tiny_conv1d_model, **kwargs)


def test_op_list_of_a_dense_model_is_one_fully_connected_per_layer():
    from edgekit._tf import tf_keras

    keras = tf_keras()
    inputs = keras.Input((16,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(4)(hidden))
    assert tflite_op_list(convert(model, "float32").tflite_bytes) == ["FULLY_CONNECTED", "FULLY_CONNECTED"]
    int8 = convert(model, "int8", np.random.default_rng(0).normal(size=(32, 16)).astype(np.float32))
    expected = ["QUANTIZE", "FULLY_CONNECTED", "FULLY_CONNECTED", "DEQUANTIZE"]
    assert tflite_op_list(int8.tflite_bytes) == expected


def test_op_list_of_conv1d_is_conv_2d_between_reshapes(converted):
    ops = tflite_op_list(converted["float32"].tflite_bytes)
    # Conv1D is a 2-D convolution over a height-1 image. At a static batch of 1 the converter cancels the
    # squeeze after conv1 against the expand before conv2 and merges the last squeeze with the Flatten.
    assert ops == ["RESHAPE", "CONV_2D", "CONV_2D", "RESHAPE", "FULLY_CONNECTED"]  # ReLUs fused
    float16_ops = tflite_op_list(converted["float16"].tflite_bytes)
    # 2 conv kernels + 2 conv biases + dense kernel + bias stored as float16, dequantised first
    assert float16_ops[:6] == ["DEQUANTIZE"] * 6 and float16_ops[6:] == ops


def test_builtin_only_conversion_names_the_missing_op_and_op_list_names_custom_ops():
    from edgekit._tf import tensorflow, tf_keras

    tf, keras = tensorflow(), tf_keras()
    inputs = keras.Input((6,))
    outputs = keras.layers.Lambda(lambda t: tf.math.cumprod(t, axis=1))(keras.layers.Dense(6)(inputs))
    model = keras.Model(inputs, outputs)
    # edgekit converts to builtin ops only: the error names the TF op that has none
    with pytest.raises(UnsupportedModelError, match="tf.Cumprod"):
        convert(model, "float32")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    assert tflite_op_list(converter.convert()) == ["FULLY_CONNECTED", "CUSTOM:FlexCumprod"]
    with pytest.raises(BadInputError, match="not a TFLite flatbuffer"):
        tflite_op_list(b"\x00" * 64)


def test_agreement_numbers():
    reference = np.array([[1.0, 2.0], [3.0, 0.0], [0.0, -4.0]])
    outputs = np.array([[1.0, 1.5], [0.0, 3.0], [0.5, -4.0]])
    found = agreement(reference, outputs)
    assert found.n_samples == 3
    assert found.max_abs_error == 3.0
    assert found.mean_abs_error == pytest.approx((0 + 0.5 + 3 + 3 + 0.5 + 0) / 6)
    assert found.top1_agreement == pytest.approx(2 / 3)  # the second sample flips class
    assert found.reference_max_abs == 4.0
    with pytest.raises(BadInputError, match="cannot be compared"):
        agreement(reference, outputs[:2])
