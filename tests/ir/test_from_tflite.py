"""A .tflite file as the input of inspect: params, MACs, ops and the TFLM arena read from the flatbuffer."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from edgekit.costmodel.layer_costs import analyze
from edgekit.costmodel.tflite_costs import analyze_tflite
from edgekit.errors import BadInputError
from edgekit.ir.from_keras import from_keras
from edgekit.ir.graph import Graph, Node, Tensor
from edgekit.workflows.inspect import inspect


@pytest.fixture(scope="module")
def small_cnn():
    """Conv -> depthwise -> pointwise -> pool -> flatten -> dense, random weights and biases (no shared constants)."""
    from edgekit._tf import tf_keras

    keras = tf_keras()
    L = keras.layers
    x0 = keras.Input((16, 16, 3))
    h = L.Conv2D(8, 3, activation="relu")(x0)
    h = L.Conv2D(12, 1)(L.DepthwiseConv2D(3, padding="same")(h))
    model = keras.Model(x0, L.Dense(5)(L.Flatten()(L.MaxPooling2D()(h))))
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([rng.standard_normal(w.shape).astype("float32") for w in layer.get_weights()])
    return model


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_params_macs_and_ops_match_the_keras_model(small_cnn, tmp_path, precision):
    from edgekit.export.tflite import convert

    path = tmp_path / f"m_{precision}.tflite"
    path.write_bytes(convert(small_cnn, precision).tflite_bytes)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    result = inspect(str(path))
    a = result.analysis
    assert result.model_format == "tflite" and a.ops_source == "flatbuffer"
    assert a.params == small_cnn.count_params()                 # int8: int32 biases counted, shapes not
    assert a.macs == analyze(from_keras(small_cnn)).macs
    ops = [c.op for c in a.cost.layers]
    assert ops.count("CONV_2D") == 2 and "DEPTHWISE_CONV_2D" in ops and "FULLY_CONNECTED" in ops
    assert a.tflite_bytes["int8"].flash_bytes == path.stat().st_size
    assert not a.unsupported["tflm"]
    if precision == "int8":  # TFLM's recorded activation plan (head) against edgekit's greedy plan of the real tensors
        assert a.tflm_arena.arena_bytes > a.tflm_arena.head_bytes > 0
        assert abs(a.tflm_arena.head_bytes - a.peak_activation_bytes["int8"]) <= 0.1 * a.tflm_arena.head_bytes
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_unreadable_flatbuffers_are_one_line_errors(small_cnn, tmp_path):
    from edgekit.export.tflite import convert

    blob = convert(small_cnn, "float32").tflite_bytes
    truncated = tmp_path / "cut.tflite"
    truncated.write_bytes(blob[: len(blob) // 3])
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\x00\x00\x00\x00TFL3" + bytes(range(256)) * 2)
    for path in (truncated, junk):
        with pytest.raises(BadInputError, match=rf"{path.name}: not a readable TFLite flatbuffer") as info:
            inspect(str(path))
        assert "\n" not in str(info.value)


def test_custom_and_control_flow_ops_are_reported_unsupported():
    graph = Graph.build([Tensor("x", (4,)), Tensor("y", (4,))],
                        [Node("0:CUSTOM:FlexCumprod", "CUSTOM:FlexCumprod", ("x",), ("y",),
                              {"input_shapes": [[1, 4]], "output_shapes": [[1, 4]]})], ["x"], ["y"])
    a = analyze_tflite(graph, file_bytes=100, constant_bytes=0, n_tensors=2, subgraph_ops=("SELECT", "ADD"))
    assert [u.op for u in a.unsupported["litert"]] == ["CUSTOM:FlexCumprod"]
    assert [u.op for u in a.unsupported["tflm"]] == ["CUSTOM:FlexCumprod", "SELECT"]
    assert a.macs == 0 and a.params == 0
