"""Quantisation-aware training of a model with two heads (class logits + box values): each head is fine-tuned
towards the float model's own output, and the converted int8 file predicts the fake-quant Keras model per head."""

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def _two_heads():
    from edgekit._tf import tf_keras

    keras = tf_keras()
    keras.utils.set_random_seed(1)
    x_in = keras.Input((16, 1), name="signal")
    trunk = keras.layers.Conv1D(8, 3, activation="relu")(x_in)
    trunk = keras.layers.GlobalAveragePooling1D()(trunk)
    model = keras.Model(x_in, [keras.layers.Dense(3, name="cls")(trunk), keras.layers.Dense(2, name="box")(trunk)])
    x = np.random.default_rng(0).normal(size=(256, 16, 1)).astype(np.float32)
    return model, x


def test_qat_fine_tunes_every_head_and_converts_per_head():
    from edgekit.export.qat import quantize_aware
    from edgekit.export.tflite import convert
    from edgekit.runners.litert import predict_named

    model, x = _two_heads()
    float_out = model.predict(x, verbose=0)
    qat = quantize_aware(model, x, None, epochs=2, batch_size=32)
    assert [o.shape[-1] for o in qat.model.outputs] == [3, 2]
    fake = qat.model.predict(x, verbose=0)
    for head, (want, got) in enumerate(zip(float_out, fake)):
        # the fake-quant model still computes the float model's function, head by head: within a few int8
        # steps of the head's range (a head left out of the loss would drift after 2 epochs at QAT's rate)
        assert np.sqrt(np.mean((got - want) ** 2)) < 0.06 * float(np.ptp(want)), head
    result = convert(qat.model, "int8", x)
    outputs = predict_named(result.tflite_bytes, x)
    assert sorted(outputs) == ["box", "cls"]
    for head, want in zip(("cls", "box"), fake):
        got = outputs[head].reshape(want.shape)
        assert np.max(np.abs(got - want)) < 0.05 * float(np.ptp(want)) + 1e-6, head


def test_fine_tune_refuses_a_target_list_of_the_wrong_length():
    from edgekit.errors import BadInputError
    from edgekit.prune.training import fine_tune

    model, x = _two_heads()
    with pytest.raises(BadInputError, match="1 targets for 2 outputs"):
        fine_tune(model, x, [np.zeros((len(x), 3), np.float32)], epochs=1)
