"""Params and MACs of recurrent and attention layers, from real tf_keras models, against hand counts.

MAC convention (edgekit.costmodel.layer_costs): per time step every gate's input x kernel and
state x recurrent kernel; attention: the four projections plus heads x Tq x Tk x (key_dim + value_dim).
"""

from __future__ import annotations

import pytest

from edgekit.costmodel.layer_costs import analyze
from edgekit.ir.from_keras import from_keras


@pytest.fixture(scope="module")
def keras():
    from edgekit._tf import tf_keras

    return tf_keras()


def _single(keras, layer, input_shape):
    x = keras.Input(input_shape)
    model = keras.Model(x, layer(x))
    cost = analyze(from_keras(model))
    return model, cost, cost.layer(layer.name)


@pytest.mark.parametrize("steps, features, units", [(20, 16, 24), (7, 3, 5)])
def test_lstm_params_and_macs_match_hand_count(keras, steps, features, units):
    model, _, lstm = _single(keras, keras.layers.LSTM(units, return_sequences=True), (steps, features))
    assert lstm.params == 4 * (features * units + units * units + units) == model.count_params()
    assert lstm.macs == steps * 4 * units * (features + units)
    assert lstm.output_shape == (steps, units)


def test_gru_params_and_macs_match_hand_count(keras):
    steps, features, units = 18, 16, 48
    model, _, gru = _single(keras, keras.layers.GRU(units), (steps, features))
    # reset_after=True (the default): two bias vectors of 3 * units
    assert gru.params == 3 * (features * units + units * units + 2 * units) == model.count_params()
    assert gru.macs == steps * 3 * units * (features + units) == 165_888


def test_bidirectional_counts_both_directions(keras):
    steps, features, units = 12, 6, 10
    layer = keras.layers.Bidirectional(keras.layers.LSTM(units, return_sequences=True))
    model, _, bi = _single(keras, layer, (steps, features))
    assert bi.params == 2 * 4 * (features * units + units * units + units) == model.count_params()
    assert bi.macs == 2 * steps * 4 * units * (features + units)
    assert bi.output_shape == (steps, 2 * units)


def test_multi_head_attention_params_and_macs_match_hand_count(keras):
    tq, dq, tk, dv = 10, 16, 7, 12          # query (10, 16), value = key (7, 12)
    heads, key_dim, value_dim = 4, 8, 5
    q, v = keras.Input((tq, dq)), keras.Input((tk, dv))
    mha = keras.layers.MultiHeadAttention(num_heads=heads, key_dim=key_dim, value_dim=value_dim)
    model = keras.Model([q, v], mha(q, v))
    cost = analyze(from_keras(model))
    layer = cost.layer(mha.name)
    params = (dq * heads * key_dim + heads * key_dim          # query
              + dv * heads * key_dim + heads * key_dim        # key
              + dv * heads * value_dim + heads * value_dim    # value
              + heads * value_dim * dq + dq)                  # output projection back to the query's width
    assert layer.params == params == model.count_params()
    macs = (tq * dq * heads * key_dim + tk * dv * heads * key_dim + tk * dv * heads * value_dim
            + heads * tq * tk * key_dim            # scores Q K^T
            + heads * tq * tk * value_dim          # scores x V
            + tq * heads * value_dim * dq)         # output projection
    assert layer.macs == macs
    assert layer.output_shape == (tq, dq)


def test_transformer_block_totals(keras):
    L = keras.layers
    x0 = keras.Input((10, 16))
    a = L.MultiHeadAttention(num_heads=2, key_dim=4)(x0, x0)
    h = L.LayerNormalization()(L.Add()([x0, a]))
    y = L.Dense(3)(L.GlobalAveragePooling1D()(L.Dense(32, activation="relu")(h)))
    model = keras.Model(x0, y)
    cost = analyze(from_keras(model))
    attention = 3 * 10 * 16 * 8 + 2 * 10 * 10 * (4 + 4) + 10 * 8 * 16
    assert cost.params == model.count_params()
    assert cost.macs == attention + 10 * 16 * 32 + 32 * 3


def test_two_inputs_two_outputs(keras):
    """Analysis of a model with two inputs and two heads: every layer counted once, both outputs kept."""
    L = keras.layers
    image, meta = keras.Input((8, 8, 3), name="image"), keras.Input((5,), name="meta")
    h = L.GlobalAveragePooling2D()(L.Conv2D(6, 3, name="stem")(image))
    h = L.Concatenate()([h, L.Dense(4, name="meta_fc")(meta)])
    boxes, classes = L.Dense(4, name="boxes")(h), L.Dense(7, name="classes")(h)
    model = keras.Model([image, meta], [boxes, classes])
    graph = from_keras(model)
    cost = analyze(graph)
    assert len(graph.inputs) == 2 and len(graph.outputs) == 2
    assert cost.params == model.count_params()
    assert cost.macs == 6 * 6 * 6 * 27 + 5 * 4 + 10 * 4 + 10 * 7
