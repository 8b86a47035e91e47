"""A fused LSTM keeps its hidden and cell state in variable tensors: the runners must start every sample from
zero state, as Keras does, instead of from the previous sample's final state."""

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lstm_file():
    from edgekit._tf import tf_keras
    from edgekit.export.tflite import convert

    keras = tf_keras()
    keras.utils.set_random_seed(3)
    inputs = keras.Input((12, 4))
    hidden = keras.layers.LSTM(16, return_sequences=True)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling1D()(hidden)))
    x = np.random.default_rng(0).normal(size=(6, 12, 4)).astype(np.float32)
    blob = convert(model, "float32", x).tflite_bytes
    return model, x, blob


def test_litert_runs_each_sample_from_zero_state(lstm_file):
    from edgekit.model_io.flatbuffer import tflite_op_list
    from edgekit.runners.litert import predict

    model, x, blob = lstm_file
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in tflite_op_list(blob)
    want = model.predict(x, verbose=0)
    np.testing.assert_allclose(predict(blob, x), want, rtol=1e-4, atol=1e-5)
    # the same sample twice in a row gives the same answer
    np.testing.assert_allclose(predict(blob, x[[1, 1]])[1], want[1], rtol=1e-4, atol=1e-5)


def test_tflm_runs_each_sample_from_zero_state(lstm_file):
    from edgekit.runners.tflm import predict

    model, x, blob = lstm_file
    np.testing.assert_allclose(predict(blob, x), model.predict(x, verbose=0), rtol=1e-4, atol=1e-5)
