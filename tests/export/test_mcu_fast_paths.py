"""The MCU export's fast paths give what the slow ones give: the arena from the recording plus one probe equals a
full bisection in TFLM, the converter saving only the variables writes the same flatbuffer, the C array is the
per-byte formatting."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.export import tflite
from edgekit.export.mcu import BYTES_PER_LINE, c_array_rows
from edgekit.runners import tflm


def _conv_model():
    """Conv -> BN -> ReLU -> pool -> Dense on 12x12x2: activations outweigh TFLM's prepare-time scratch."""
    from edgekit._tf import tf_keras

    keras = tf_keras()
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 2))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(16, 3, strides=2)(x))
    return keras.Model(inputs, keras.layers.Dense(4)(x))


def _dense_model():
    """Dense(16) -> Dense(4) on 8 inputs: almost no activations, so prepare-time scratch sets the minimum."""
    from edgekit._tf import tf_keras

    keras = tf_keras()
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    return keras.Model(inputs, keras.layers.Dense(4)(keras.layers.Dense(16, activation="relu")(inputs)))


def _samples(model, count: int = 48) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(count, *model.input_shape[1:])).astype(np.float32)


@pytest.fixture(scope="module")
def conv_model():
    return _conv_model()


@pytest.fixture(scope="module")
def conv_int8(conv_model):
    return tflite.convert(conv_model, "int8", _samples(conv_model), int8_io=True).tflite_bytes


@pytest.mark.slow
def test_recording_plus_one_probe_equals_a_full_bisection(conv_int8):
    dense = _dense_model()
    dense_int8 = tflite.convert(dense, "int8", _samples(dense)).tflite_bytes
    for model_bytes, fast_probes in ((conv_int8, 2), (dense_int8, None)):
        fast = tflm.measure_arena(model_bytes)
        exact = tflm.measure_arena(model_bytes, exact=True)
        assert fast.arena_bytes == exact.arena_bytes
        assert exact.probes >= 12  # bisected from zero
        if fast_probes is not None:  # activations dominate: the recording is the minimum, one probe proves it
            assert fast.probes == fast_probes and fast.arena_bytes == fast.recorded_total_bytes
        else:  # prepare scratch dominates (tiny models only): the search goes up from the short recording
            assert fast.recorded_total_bytes < fast.arena_bytes


def _int8_samples(model):
    x = _samples(model)
    return tflite._calibration_samples(model, x, tflite.input_shapes(model), 200, 0)


def test_converting_with_only_the_variables_saved_gives_the_models_flatbuffer(conv_model, monkeypatch):
    runs = []
    real = tflite._run_converter

    def counted(*args, **kwargs):
        runs.append(args[1]._trackable_obj)
        return real(*args, **kwargs)

    monkeypatch.setattr(tflite, "_run_converter", counted)
    samples = _int8_samples(conv_model)
    fast = tflite._convert(conv_model, "int8", samples, True, 0, False)
    assert len(runs) == 1 and runs[0] is not conv_model  # one run, saving the variables holder
    monkeypatch.setattr(tflite, "_variables_holder", lambda tf, model: model)  # what the converter did before
    slow = tflite._convert(conv_model, "int8", samples, True, 0, False)
    assert runs[1] is conv_model
    assert fast.tflite_bytes == slow.tflite_bytes and fast.warnings == slow.warnings


def test_a_holder_the_converter_cannot_save_falls_back_to_the_model(conv_model, monkeypatch):
    from edgekit._tf import tensorflow

    runs = []
    real = tflite._run_converter

    def counted(*args, **kwargs):
        runs.append(args[1])
        return real(*args, **kwargs)

    expected = tflite._convert(conv_model, "float32", None, False, 0, False).tflite_bytes
    monkeypatch.setattr(tflite, "_run_converter", counted)
    # tracks no variable, so the SavedModel export fails and the converter would take its frozen-graph route
    monkeypatch.setattr(tflite, "_variables_holder", lambda tf, model: tensorflow().Module())
    result = tflite._convert(conv_model, "float32", None, False, 0, False)
    assert len(runs) == 2 and runs[0].saved_model_dir is None and runs[1].saved_model_dir is not None
    assert result.tflite_bytes == expected


def test_c_array_rows_are_the_per_byte_formatting():
    rng = np.random.default_rng(0)
    for length in [*range(2 * BYTES_PER_LINE + 2), 1000]:
        data = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
        plain = "\n".join("    " + ", ".join(f"0x{b:02x}" for b in data[start:start + BYTES_PER_LINE]) + ","
                          for start in range(0, len(data), BYTES_PER_LINE))
        assert c_array_rows(data) == plain, length
    assert c_array_rows(bytes(range(256)) * 3).count("\n") == -(-768 // BYTES_PER_LINE) - 1
