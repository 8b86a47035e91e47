"""Pruning RNN units and attention heads / key and value dims: the rebuilt model is exact and runs in LiteRT.

Every weight that produces a removed unit (its gate columns, its head's projections, its key or value
dimension) is zeroed first, so those units carry nothing and the pruned model must match the original.
"""

from __future__ import annotations

import numpy as np
import pytest
from prune_helpers import random_keep, samples

from edgekit.channels.axes import weight_axes
from edgekit.channels.groups import build_groups
from edgekit.channels.keep import node_masks
from edgekit.costmodel.layer_costs import analyze
from edgekit.ir.from_keras import from_keras
from edgekit.prune.surgery import apply_keep, layer_at

_PRODUCING_KINDS = ("out", "gates", "heads", "key_dim", "value_dim")


@pytest.fixture(scope="module")
def keras():
    from edgekit._tf import tf_keras

    return tf_keras()


def _zero_removed_units(model, groups, keep) -> None:
    masks = {t: groups.kept_mask(t, keep) for t in groups.slot_units}
    for node in groups.graph.nodes:
        if not node.weights or not node.outputs:
            continue
        by_kind = node_masks(groups, node, masks)
        layer = layer_at(model, node.name)
        arrays = layer.get_weights()
        for i, w in enumerate(node.weights):
            for axis, kind in weight_axes(node, w).items():
                if kind in _PRODUCING_KINDS:
                    mask = np.asarray(by_kind[kind], bool)
                    index = [slice(None)] * arrays[i].ndim
                    index[axis] = np.flatnonzero(~mask)
                    arrays[i][tuple(index)] = 0.0
        layer.set_weights(arrays)


def _lstm_gru_model(keras):
    L = keras.layers
    x0 = keras.Input((12, 4))
    h = L.Conv1D(10, 3, padding="same", activation="relu")(x0)
    h = L.LSTM(8, return_sequences=True, name="lstm")(h)
    h = L.GRU(6, name="gru")(h)
    return keras.Model(x0, L.Dense(3, name="head")(h))


def _attention_model(keras):
    L = keras.layers
    x0 = keras.Input((6, 5))
    p = L.Dense(8, name="proj")(x0)
    a = L.MultiHeadAttention(num_heads=4, key_dim=4, value_dim=3, name="mha")(p, p)
    h = L.GlobalAveragePooling1D()(L.Add()([p, a]))
    return keras.Model(x0, L.Dense(3, name="head")(h))


def _prune_exactly(keras, model):
    groups = build_groups(from_keras(model))
    keep = random_keep(groups, 0.5, seed=1)
    _zero_removed_units(model, groups, keep)
    pruned = apply_keep(model, groups, keep)
    x = samples(model, 8)
    np.testing.assert_allclose(pruned(x).numpy(), model(x).numpy(), atol=2e-5)
    assert analyze(from_keras(pruned)).params == pruned.count_params() < model.count_params()
    return pruned, x


def _litert_matches(pruned, x, op: str | None):
    from edgekit.export.tflite import convert
    from edgekit.model_io.flatbuffer import tflite_op_list
    from edgekit.runners.litert import predict

    blob = convert(pruned, "float32", x).tflite_bytes
    if op is not None:
        assert op in tflite_op_list(blob)
    np.testing.assert_allclose(predict(blob, x), pruned(x).numpy(), rtol=1e-4, atol=1e-5)


def test_rnn_units_are_removed_from_every_gate(keras):
    model = _lstm_gru_model(keras)
    pruned, _ = _prune_exactly(keras, model)
    lstm, gru = pruned.get_layer("lstm"), pruned.get_layer("gru")
    assert lstm.units == 4 and gru.units == 3
    assert lstm.cell.kernel.shape == (5, 16) and lstm.cell.recurrent_kernel.shape == (4, 16)
    assert gru.cell.kernel.shape == (4, 9) and gru.cell.bias.shape == (2, 9)


@pytest.mark.slow
def test_pruned_lstm_converts_to_the_fused_lstm_op_and_runs_in_litert(keras):
    L = keras.layers
    x0 = keras.Input((12, 4))
    model = keras.Model(x0, L.Dense(3)(L.LSTM(8, name="lstm")(x0)))
    pruned, x = _prune_exactly(keras, model)
    assert pruned.get_layer("lstm").units == 4
    _litert_matches(pruned, x, "UNIDIRECTIONAL_SEQUENCE_LSTM")


def test_attention_heads_and_dims_are_removed(keras):
    model = _attention_model(keras)
    pruned, x = _prune_exactly(keras, model)
    mha = pruned.get_layer("mha")
    assert (mha._num_heads, mha._key_dim, mha._value_dim) == (2, 2, 2)
    # proj and the attention output are one group (residual Add): both 4 of 8 channels wide
    assert pruned.get_layer("proj").units == 4 and mha.output.shape[-1] == 4
    _litert_matches(pruned, x, "BATCH_MATMUL")


def test_prune_ratio_ranks_dead_heads_first(keras):
    """prune(): with l1, heads whose weights are all zero are the ones removed."""
    from edgekit.prune import prune

    model = _attention_model(keras)
    layer = model.get_layer("mha")
    weights = layer.get_weights()
    for i, w in enumerate(layer.weights):
        part = w.name.split("/")[-2]
        if part in ("query", "key", "value"):
            weights[i][..., 1, :] = 0.0        # kernel (dim, heads, k) and bias (heads, k): head 1
        elif part == "attention_output" and weights[i].ndim == 3:
            weights[i][1] = 0.0                # kernel (heads, value_dim, out)
    layer.set_weights(weights)
    result = prune(model, 0.3, global_ranking=False)
    kept = result.model.get_layer("mha")
    assert kept._num_heads == 3
    x = samples(model, 4)
    assert np.all(np.isfinite(result.model(x).numpy()))
