"""Predictions read from a .tflite alone agree with the cost model's predictions from the Keras graph."""

import numpy as np
import pytest

from edgekit.costmodel.analysis import analyze_graph
from edgekit.costmodel.predict import predicted_costs
from edgekit.export.tflite import convert
from edgekit.ir.from_keras import from_keras
from edgekit.profiles import load_profile
from edgekit.workflows.tflite_figures import tflite_figures

DEVICES = ("pixel7", "raspberry-pi-4", "stm32h743", "nrf52840")


@pytest.fixture(scope="module")
def conv2d_model(keras):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((24, 24, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(24, 1, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


@pytest.mark.parametrize("which", ["conv1d", "conv2d"])
def test_latency_energy_macs_and_activations_match_the_keras_graph(which, tiny_conv1d_model, conv2d_model):
    model = tiny_conv1d_model if which == "conv1d" else conv2d_model
    samples = np.random.default_rng(0).random((32, *model.input_shape[1:]), dtype=np.float32)
    analysis = analyze_graph(from_keras(model))
    # float input/output, as the cost model's Keras-graph prediction assumes (QUANTIZE / DEQUANTIZE at the edges)
    tflite = convert(model, "int8", representative_data=samples).tflite_bytes
    int8_io = convert(model, "int8", representative_data=samples, int8_io=True).tflite_bytes
    for device in DEVICES:
        profile = load_profile(device)
        figures = tflite_figures(tflite, profile)
        expected = predicted_costs(analysis, profile, "int8")
        assert figures.precision == "int8"
        assert figures.macs == analysis.macs
        # same cost model, ops read from the file instead of lowered from Keras: within 2 %
        assert figures.latency_ms == pytest.approx(expected["latency_ms"][0], rel=0.02), device
        assert figures.energy_mj == pytest.approx(expected["energy_mj"][0], rel=0.02), device
        # int8 input/output drops the edge ops, and the file shows it
        assert tflite_figures(int8_io, profile).latency_ms < figures.latency_ms
        assert figures.peak_activation_bytes == analysis.peak_activation_bytes["int8"]


def test_float_model_is_priced_at_float_rates(tiny_conv1d_model):
    profile = load_profile("stm32h743")
    int8 = tflite_figures(convert(tiny_conv1d_model, "int8").tflite_bytes, profile)
    float32 = tflite_figures(convert(tiny_conv1d_model, "float32").tflite_bytes, profile)
    assert float32.precision == "float32" and float32.macs == int8.macs
    assert float32.latency_ms > int8.latency_ms  # no SIMD int8 kernels for float on a Cortex-M7
    assert float32.peak_activation_bytes > 3 * int8.peak_activation_bytes
