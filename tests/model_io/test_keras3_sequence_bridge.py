"""Keras 3 -> tf_keras bridge for sequence layers and MobileNetV3's hard_silu: saved as .keras, loaded through
edgekit.model_io.load_model, outputs equal to the Keras 3 model's on fresh inputs."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import BadInputError
from edgekit.model_io import load_model


def _save_load(model, tmp_path, name):
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = load_model(path)
    assert loaded.bridged and loaded.format == "keras3_keras"
    return loaded.keras_model


def _same_outputs(k3_model, tk_model, diff, scale=1.0, seed=7):
    rng = np.random.default_rng(seed)
    xs = [scale * rng.standard_normal((3, *t.shape[1:])).astype("float32") for t in k3_model.inputs]
    x = xs if len(xs) > 1 else xs[0]
    expected, actual = np.asarray(k3_model(x)), np.asarray(tk_model(x))
    assert expected.shape == actual.shape
    assert diff(expected, actual) <= 1e-5
    return actual


def test_recurrent_layers(k3, tmp_path, diff):
    L = k3.layers
    x0 = k3.Input((9, 4))
    h = L.Conv1D(6, 3, padding="same", activation="relu")(x0)
    h = L.LSTM(5, return_sequences=True, name="lstm")(h)
    h = L.Bidirectional(L.GRU(3, return_sequences=True), name="bi_gru")(h)
    h = L.SimpleRNN(4, name="rnn")(h)
    model = k3.Model(x0, L.Dense(2)(h))
    tk_model = _save_load(model, tmp_path, "rnn")
    assert [type(tk_model.get_layer(n)).__name__ for n in ("lstm", "bi_gru", "rnn")] == \
        ["LSTM", "Bidirectional", "SimpleRNN"]
    assert tk_model.count_params() == model.count_params()
    _same_outputs(model, tk_model, diff)


def test_attention_block_with_transposed_conv_and_upsampling(k3, tmp_path, diff):
    L = k3.layers
    q, v = k3.Input((8, 6), name="query"), k3.Input((5, 4), name="memory")
    a = L.MultiHeadAttention(num_heads=2, key_dim=3, value_dim=4, name="cross")(q, v)
    h = L.LayerNormalization()(L.Add()([q, a]))
    h = L.UpSampling1D(2)(L.Conv1DTranspose(4, 3, strides=2, padding="same")(h))
    model = k3.Model([q, v], L.Conv1D(2, 1)(h))
    tk_model = _save_load(model, tmp_path, "attention")
    assert type(tk_model.get_layer("cross")).__name__ == "MultiHeadAttention"
    assert tk_model.count_params() == model.count_params()
    out = _same_outputs(model, tk_model, diff)
    assert out.shape == (3, 32, 2)


def test_hard_silu_as_activation_and_as_layer(k3, tmp_path, diff):
    L = k3.layers
    x0 = k3.Input((6, 6, 3))
    h = L.Conv2D(4, 3, activation="hard_silu", name="conv")(x0)
    h = L.Activation("hard_swish", name="act")(L.Conv2D(4, 1)(h))
    model = k3.Model(x0, L.GlobalAveragePooling2D()(h))
    tk_model = _save_load(model, tmp_path, "hswish")
    out = _same_outputs(model, tk_model, diff, scale=4.0)   # reaches both clipping regions (|x| > 3)
    assert out.shape == (3, 4) and np.ptp(out) > 0  # the bridged model computes, not a constant


def test_hard_sigmoid_recurrent_activation_is_refused_by_name(k3, tmp_path):
    x0 = k3.Input((5, 2))
    model = k3.Model(x0, k3.layers.GRU(3, recurrent_activation="hard_sigmoid", name="odd_gru")(x0))
    path = tmp_path / "gru.keras"
    model.save(path)
    with pytest.raises(BadInputError, match=r"layer 'odd_gru' \(GRU\): recurrent_activation 'hard_sigmoid'"):
        load_model(path)


@pytest.mark.slow
def test_mobilenet_v3_small(k3, tmp_path, diff):
    model = k3.applications.MobileNetV3Small(input_shape=(32, 32, 3), weights=None, classes=5)
    tk_model = _save_load(model, tmp_path, "mnv3")
    assert tk_model.count_params() == model.count_params()
    _same_outputs(model, tk_model, diff)


def test_convnext_layer_scale_becomes_a_builtin_depthwise_conv(k3, tmp_path, diff):
    from keras.src.applications.convnext import LayerScale

    L = k3.layers
    x0 = k3.Input((6, 6, 4))
    h = LayerScale(0.5, 4, name="scale")(L.Conv2D(4, 3, padding="same")(x0))
    model = k3.Model(x0, L.GlobalAveragePooling2D()(h))
    model.get_layer("scale").set_weights([np.array([0.5, -2.0, 3.0, 0.0], "float32")])
    tk_model = _save_load(model, tmp_path, "convnext_block")
    assert type(tk_model.get_layer("scale")).__name__ == "DepthwiseConv2D"
    _same_outputs(model, tk_model, diff)
