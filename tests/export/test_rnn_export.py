"""A GRU converts unrolled (its WHILE loop segfaulted TF's int8 calibrator) and runs on TFLM like on LiteRT."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.export.tflite import convert
from edgekit.model_io.flatbuffer import tflite_op_list
from edgekit.runners import litert, tflm


@pytest.mark.slow
def test_conv1d_gru_int8_is_unrolled_and_tflm_matches_litert():
    from edgekit._tf import tf_keras

    keras = tf_keras()
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 4))
    x = keras.layers.GRU(8)(keras.layers.Conv1D(8, 3, activation="relu")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    data = np.random.default_rng(0).normal(size=(64, 12, 4)).astype(np.float32)
    result = convert(model, "int8", data)
    ops = tflite_op_list(result.tflite_bytes)
    assert "WHILE" not in ops and "FULLY_CONNECTED" in ops and "TANH" in ops
    assert any("unrolled" in note for note in result.warnings)
    assert model.layers[2].unroll is False  # the user's model is untouched
    reference = model.predict(data[:16], verbose=0)
    on_litert = litert.predict(result.tflite_bytes, data[:16])
    on_tflm = tflm.predict(result.tflite_bytes, data[:16])
    scale = float(np.max(np.abs(reference)))
    assert np.max(np.abs(on_litert - reference)) < 0.1 * scale
    assert np.max(np.abs(on_tflm - on_litert)) < 0.05 * scale


@pytest.mark.slow
def test_mcu_sources_of_an_lstm_reset_its_state_and_a_gru_needs_none():
    from edgekit._tf import tf_keras
    from edgekit.export.mcu import build_mcu_sources

    keras = tf_keras()
    keras.utils.set_random_seed(0)
    data = np.random.default_rng(0).normal(size=(32, 10, 4)).astype(np.float32)
    built = {}
    for layer in (keras.layers.LSTM(6), keras.layers.GRU(6)):
        inputs = keras.Input((10, 4))
        model = keras.Model(inputs, keras.layers.Dense(3)(layer(inputs)))
        tflite_bytes = convert(model, "int8", data, int8_io=True).tflite_bytes
        built[type(layer).__name__] = build_mcu_sources(tflite_bytes, "seq", keras_model=model, check_data=data[:8])
    lstm, gru = built["LSTM"], built["GRU"]
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in lstm.ops
    assert "interpreter.Reset();" in lstm.files["main.cc"]
    assert any("interpreter.Reset()" in note for note in lstm.notes)
    assert "Reset()" not in gru.files["main.cc"] and not any("Reset()" in note for note in gru.notes)
