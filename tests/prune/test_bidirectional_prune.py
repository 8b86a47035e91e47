"""Pruning Bidirectional LSTM / GRU / SimpleRNN units: each direction's own units when concatenated, the same
units in both when merged; checked against a model built by hand from the kept units' weights, in LiteRT,
and through `edgekit prune --ratio`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from prune_helpers import samples

from edgekit.channels.groups import build_groups
from edgekit.costmodel.layer_costs import analyze
from edgekit.ir.from_keras import from_keras
from edgekit.prune.iterative import SelectionOptions, prune_step
from edgekit.prune.surgery import apply_keep

STEPS, FEATURES, FILTERS, LSTM_UNITS, GRU_UNITS, CLASSES = 12, 8, 16, 32, 24, 5
WEAK = np.arange(16)  # forward LSTM units given tiny weights: l1 must remove exactly these from that direction


@pytest.fixture(scope="module")
def keras():
    from edgekit._tf import tf_keras

    return tf_keras()


def _columns(kept, units: int, gates: int) -> np.ndarray:
    """Kernel columns of the kept units in every gate block (blocks of `units` side by side)."""
    return np.concatenate([g * units + np.asarray(sorted(kept)) for g in range(gates)])


def _stacked_model(keras):
    L = keras.layers
    keras.utils.set_random_seed(3)
    x0 = keras.Input((STEPS, FEATURES))
    h = L.Conv1D(FILTERS, 3, padding="same", activation="relu", name="conv")(x0)
    h = L.Bidirectional(L.LSTM(LSTM_UNITS, return_sequences=True), name="bi_lstm")(h)
    h = L.Bidirectional(L.GRU(GRU_UNITS), name="bi_gru")(h)
    model = keras.Model(x0, L.Dense(CLASSES, name="head")(h))
    forward = model.get_layer("bi_lstm").forward_layer
    kernel, recurrent, bias = forward.get_weights()
    cols = _columns(WEAK, LSTM_UNITS, 4)
    kernel[:, cols] *= 0.01
    recurrent[:, cols] *= 0.01
    recurrent[WEAK] *= 0.01
    bias[cols] *= 0.01
    forward.set_weights([kernel, recurrent, bias])
    return model


@pytest.fixture(scope="module")
def pruned(keras):
    """(original, pruned, kept units by name) after one-shot l1 pruning at 0.5, the path of prune(model, 0.5)."""
    model = _stacked_model(keras)
    step = prune_step(model, SelectionOptions(), ratio=0.5)
    groups = step.groups
    mask = {name: np.flatnonzero(groups.kept_mask(name, step.keep)) for name in ("conv", "bi_lstm", "bi_gru")}
    kept = {"conv": mask["conv"],
            "lstm_f": mask["bi_lstm"][mask["bi_lstm"] < LSTM_UNITS],
            "lstm_b": mask["bi_lstm"][mask["bi_lstm"] >= LSTM_UNITS] - LSTM_UNITS,
            "gru_f": mask["bi_gru"][mask["bi_gru"] < GRU_UNITS],
            "gru_b": mask["bi_gru"][mask["bi_gru"] >= GRU_UNITS] - GRU_UNITS}
    return model, step.model, kept


def _reference(keras, model, kept):
    """The pruned model built by hand: explicit forward / backward widths, weights sliced here."""
    L = keras.layers
    c, f1, b1, f2, b2 = (len(kept[k]) for k in ("conv", "lstm_f", "lstm_b", "gru_f", "gru_b"))
    x0 = keras.Input((STEPS, FEATURES))
    h = L.Conv1D(c, 3, padding="same", activation="relu")(x0)
    h = L.Bidirectional(L.LSTM(f1, return_sequences=True),
                        backward_layer=L.LSTM(b1, return_sequences=True, go_backwards=True))(h)
    h = L.Bidirectional(L.GRU(f2), backward_layer=L.GRU(b2, go_backwards=True))(h)
    ref = keras.Model(x0, L.Dense(CLASSES)(h))
    conv_k, conv_b = model.get_layer("conv").get_weights()
    weights = [conv_k[..., kept["conv"]], conv_b[kept["conv"]]]
    lstm_in = kept["conv"]
    gru_in = np.concatenate([kept["lstm_f"], LSTM_UNITS + kept["lstm_b"]])
    for name, units, gates, rows, directions in (("bi_lstm", LSTM_UNITS, 4, lstm_in, ("lstm_f", "lstm_b")),
                                                 ("bi_gru", GRU_UNITS, 3, gru_in, ("gru_f", "gru_b"))):
        arrays = model.get_layer(name).get_weights()
        for half, direction in enumerate(directions):
            kernel, recurrent, bias = arrays[3 * half:3 * half + 3]
            cols = _columns(kept[direction], units, gates)
            weights += [kernel[rows][:, cols], recurrent[kept[direction]][:, cols], bias[..., cols]]
    head_k, head_b = model.get_layer("head").get_weights()
    weights += [head_k[np.concatenate([kept["gru_f"], GRU_UNITS + kept["gru_b"]])], head_b]
    ref.set_weights(weights)
    return ref


def test_each_direction_loses_its_own_units_and_matches_a_hand_built_model(keras, pruned):
    model, small, kept = pruned
    assert list(kept["lstm_f"]) == list(range(16, 32))    # exactly the weak forward units went
    bi_lstm, bi_gru = small.get_layer("bi_lstm"), small.get_layer("bi_gru")
    assert (bi_lstm.forward_layer.units, bi_lstm.backward_layer.units) == (16, len(kept["lstm_b"]))
    assert (bi_gru.forward_layer.units, bi_gru.backward_layer.units) == (len(kept["gru_f"]), len(kept["gru_b"]))
    assert set(kept["lstm_b"]) & set(WEAK)   # the backward direction's units 0-15 are not weak: some stay
    c, f1, b1, f2, b2 = (len(kept[k]) for k in ("conv", "lstm_f", "lstm_b", "gru_f", "gru_b"))
    lstm = sum(4 * (c * u + u * u + u) for u in (f1, b1))
    gru = sum(3 * ((f1 + b1) * u + u * u + 2 * u) for u in (f2, b2))   # GRU reset_after: two bias rows
    expected = (3 * FEATURES * c + c) + lstm + gru + (f2 + b2) * CLASSES + CLASSES
    cost = analyze(from_keras(small))
    assert small.count_params() == cost.params == expected < model.count_params()
    assert cost.layer("bi_lstm").macs == STEPS * 4 * (f1 * (c + f1) + b1 * (c + b1))
    assert cost.layer("bi_gru").macs == STEPS * 3 * (f2 * (f1 + b1 + f2) + b2 * (f1 + b1 + b2))
    x = samples(model, 8)
    np.testing.assert_allclose(small(x).numpy(), _reference(keras, model, kept)(x).numpy(), atol=1e-5)


@pytest.mark.slow
def test_pruned_stack_converts_and_agrees_in_litert(pruned):
    from edgekit.export.tflite import convert
    from edgekit.model_io.flatbuffer import tflite_op_list
    from edgekit.runners.litert import predict

    _, small, _ = pruned
    blob = convert(small, "float32").tflite_bytes
    ops = set(tflite_op_list(blob))
    assert {"UNIDIRECTIONAL_SEQUENCE_LSTM", "REVERSE_V2", "CONCATENATION"} <= ops
    x = samples(small, 3, seed=5)
    # One sample per call: the fused LSTM keeps its state in variable tensors that the runner does not reset
    # between invokes (the next sample would start from the previous one's final state).
    out = np.concatenate([predict(blob, x[i:i + 1]) for i in range(len(x))])
    np.testing.assert_allclose(out, small(x).numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_prune_cli_writes_the_same_pruned_model(keras, pruned, tmp_path):
    from edgekit.cli.main import main
    from edgekit.model_io import load_model, save_model

    model, small, kept = pruned
    save_model(model, tmp_path / "bi.h5")
    result = CliRunner().invoke(main, ["prune", str(tmp_path / "bi.h5"), "--ratio", "0.5", "--json", "--out",
                                       str(tmp_path / "p.h5")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    layers = {layer["name"]: layer for layer in json.loads(result.output)["layers"]}
    assert (layers["bi_lstm"]["channels_before"], layers["bi_lstm"]["channels_after"]) == \
        (2 * LSTM_UNITS, len(kept["lstm_f"]) + len(kept["lstm_b"]))
    assert layers["bi_gru"]["frozen_reason"] is None and layers["bi_gru"]["params_after"] == \
        small.get_layer("bi_gru").count_params()
    loaded = load_model(tmp_path / "p.h5").keras_model
    x = samples(model, 4)
    np.testing.assert_allclose(loaded(x).numpy(), small(x).numpy(), atol=1e-6)


def _zero_dropped_units(layer, dropped, units: int, gates: int) -> None:
    """Zero every weight producing the dropped units, in both directions: they output exactly 0."""
    arrays = layer.get_weights()
    cols = _columns(dropped, units, gates)
    for half in (0, 1):
        kernel, recurrent, bias = arrays[3 * half:3 * half + 3]
        kernel[:, cols] = 0.0
        recurrent[:, cols] = 0.0
        recurrent[dropped] = 0.0
        bias[..., cols] = 0.0
    layer.set_weights(arrays)


@pytest.mark.parametrize("cell, gates, merge_mode", [("GRU", 3, "sum"), ("LSTM", 4, "ave"), ("SimpleRNN", 1, "mul")])
def test_merged_directions_keep_the_same_units(keras, cell, gates, merge_mode):
    L = keras.layers
    keras.utils.set_random_seed(1)
    x0 = keras.Input((10, 6))
    h = L.Bidirectional(getattr(L, cell)(8, return_sequences=True), merge_mode=merge_mode, name="bi")(x0)
    model = keras.Model(x0, L.Dense(3)(L.GlobalAveragePooling1D()(h)))
    groups = build_groups(from_keras(model))
    (group,) = [g for g in groups.prunable_groups if g.sources == ("bi",)]
    kept = [1, 4, 6]
    _zero_dropped_units(model.get_layer("bi"), np.setdiff1d(np.arange(8), kept), 8, gates)
    small = apply_keep(model, groups, {group.id: frozenset(kept)})
    bi = small.get_layer("bi")
    assert bi.forward_layer.units == bi.backward_layer.units == 3
    # a backward direction keeping other units than the forward one would mix zeroed units in: outputs change
    x = samples(model, 6)
    np.testing.assert_allclose(small(x).numpy(), model(x).numpy(), atol=1e-6)
    assert analyze(from_keras(small)).params == small.count_params() < model.count_params()
