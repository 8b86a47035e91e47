"""Native crashes in the worker process become one-line errors; several inputs and outputs by name."""

from __future__ import annotations

import os

import numpy as np
import pytest

from edgekit.errors import UnsupportedModelError
from edgekit.export.tflite import convert
from edgekit.runners import litert, tflm
from edgekit.runners.isolated import call_isolated, signal_name


def test_an_abort_in_the_worker_is_a_one_line_error_naming_model_and_stage():
    with pytest.raises(UnsupportedModelError) as caught:
        call_isolated(os.abort, what="model 'vww'", stage="TensorFlow Lite Micro run")
    message = str(caught.value)
    assert "TensorFlow Lite Micro run of model 'vww' crashed natively (SIGABRT" in message
    assert "\n" not in message
    # the worker is restarted for the next call, and exceptions come back unchanged
    assert call_isolated(sum, [1, 2, 3], what="m", stage="s") == 6
    with pytest.raises(ValueError, match="invalid literal"):
        call_isolated(int, "x", what="m", stage="s")


def test_signal_names():
    assert signal_name(-11) == "SIGSEGV" and signal_name(134) == "SIGABRT" and signal_name(3) == "exit code 3"


@pytest.fixture(scope="module")
def collapsed_softmax_int8():
    """Dense(4, softmax) with weights ~1e-9: the softmax input's int8 scale is far below what TFLM accepts."""
    from edgekit._tf import tf_keras

    keras = tf_keras()
    inputs = keras.Input((8,))
    dense = keras.layers.Dense(4, activation="softmax", use_bias=False)
    model = keras.Model(inputs, dense(inputs))
    dense.set_weights([np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32) * 1e-9])
    x = np.random.default_rng(1).normal(size=(32, 8)).astype(np.float32)
    return convert(model, "int8", x).tflite_bytes, x


def test_tflm_softmax_abort_is_caught_natively_and_named_before_it_happens(collapsed_softmax_int8):
    tflite_bytes, x = collapsed_softmax_int8
    # the real native failure: TFLM's CalculateSoftmaxParams aborts; the worker turns it into an error
    with pytest.raises(UnsupportedModelError, match="crashed natively \\(SIGABRT"):
        call_isolated(tflm._predict_here, tflite_bytes, [x[:2]], None, what="model", stage="TFLM run")
    # the public entry points name the op and the cause before TFLM sees the model
    for run in (lambda: tflm.predict(tflite_bytes, x[:2]), lambda: tflm.measure_arena(tflite_bytes)):
        with pytest.raises(UnsupportedModelError, match=r"int8 SOFTMAX, op \d+ .*needs an input scale above"):
            run()
    # LiteRT runs the same model (its softmax has no such limit): outputs are a uniform 1/4
    assert np.allclose(litert.predict(tflite_bytes, x[:4]), 0.25, atol=1 / 128)


def _two_headed():
    """Inputs 'image' (6, 6, 2) and 'meta' (3,), outputs 'boxes' (4) and 'classes' (5) off a shared trunk."""
    from edgekit._tf import tf_keras

    keras = tf_keras()
    keras.utils.set_random_seed(0)
    image, meta = keras.Input((6, 6, 2), name="image"), keras.Input((3,), name="meta")
    trunk = keras.layers.Flatten()(keras.layers.Conv2D(4, 3, activation="relu")(image))
    trunk = keras.layers.Dense(16, activation="relu")(keras.layers.Concatenate()([trunk, meta]))
    boxes = keras.layers.Dense(4, name="boxes")(trunk)
    classes = keras.layers.Dense(5, activation="softmax", name="classes")(trunk)
    return keras.Model([image, meta], [boxes, classes])


def test_several_inputs_and_outputs_convert_and_run_by_name_on_litert_and_tflm():
    model = _two_headed()
    rng = np.random.default_rng(0)
    x = {"image": rng.normal(size=(64, 6, 6, 2)).astype(np.float32),
         "meta": rng.normal(size=(64, 3)).astype(np.float32)}
    reference = dict(zip(model.output_names, model.predict([x["image"], x["meta"]], verbose=0)))

    float_bytes = convert(model, "float32").tflite_bytes
    found = litert.predict_named(float_bytes, x)
    assert sorted(found) == ["boxes", "classes"]
    for name in ("boxes", "classes"):  # by name, whatever order the flatbuffer keeps the outputs in
        assert found[name].shape == reference[name].shape
        assert np.max(np.abs(found[name] - reference[name])) < 1e-4

    int8 = convert(model, "int8", [x["image"], x["meta"]]).tflite_bytes  # calibration per input, as a list
    on_litert = litert.predict_named(int8, x)
    on_tflm = tflm.predict_named(int8, {"image": x["image"][:8], "meta": x["meta"][:8]})
    for name in ("boxes", "classes"):
        scale = np.max(np.abs(reference[name]))
        assert np.max(np.abs(on_litert[name] - reference[name])) < 0.1 * scale
        assert np.max(np.abs(on_tflm[name] - on_litert[name][:8])) <= 0.02 * scale + 1e-6
    with pytest.raises(Exception, match="do not match the model's inputs"):
        litert.predict_named(int8, {"image": x["image"]})
    with pytest.raises(Exception, match="use edgekit.runners.litert.predict_named"):
        litert.predict(int8, x["image"])


def test_payloads_arrive_whole_from_short_pipe_reads():
    import io

    from edgekit.runners.isolated import _read_payload

    class ShortReads(io.RawIOBase):  # a pipe hands over at most a few bytes per read
        def __init__(self, data: bytes) -> None:
            self.data, self.at = data, 0

        def readinto(self, buffer) -> int:
            count = min(len(buffer), 7, len(self.data) - self.at)
            buffer[:count] = self.data[self.at:self.at + count]
            self.at += count
            return count

    data = bytes(range(256)) * 40
    assert bytes(_read_payload(ShortReads(data), len(data))) == data
    assert _read_payload(ShortReads(data[:100]), 101) is None  # the parent went away mid-message


def test_a_large_argument_reaches_the_worker_unchanged():
    import zlib

    blob = np.random.default_rng(0).integers(0, 256, 48 << 20, dtype=np.uint8).tobytes()  # 48 MiB, like a model
    assert call_isolated(zlib.crc32, blob, what="m", stage="s") == zlib.crc32(blob)
