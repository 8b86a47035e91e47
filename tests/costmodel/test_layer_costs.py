"""Analysis over real tf_keras models: params equal Keras' count_params, MACs by hand, lowering vs converter."""

import pytest

from edgekit._tf import tf_keras
from edgekit.costmodel.layer_costs import analyze
from edgekit.examples import zoo
from edgekit.ir.from_keras import from_keras

ZOO = ["conv1d", "dscnn", "resnet8", "mobilenet_v1", "mobilenet_v2", "dense_autoencoder", "concat_se",
       "xception_like", "mlp"]


@pytest.mark.parametrize("name", ZOO)
def test_params_equal_count_params(name):
    model = zoo.build(name)
    cost = analyze(from_keras(model))
    assert cost.params == model.count_params()
    assert cost.weight_bytes.float32 == 4 * model.count_params()


def _single(layer, input_shape):
    keras = tf_keras()
    inputs = keras.Input(input_shape)
    model = keras.Model(inputs, layer(inputs))
    return analyze(from_keras(model)).layers[0]


def test_macs_by_hand():
    L = tf_keras().layers
    # Conv2D 3x3, 3->8 channels, 'valid' on 10x10 -> 8x8 outputs: 8*8*8 * 3*3*3
    assert _single(L.Conv2D(8, 3), (10, 10, 3)).macs == 8 * 8 * 8 * 27
    # strided 'same' Conv1D: 40 -> 20 positions, k=5, 2->4 channels
    assert _single(L.Conv1D(4, 5, strides=2, padding="same"), (40, 2)).macs == 20 * 4 * 5 * 2
    # grouped conv: groups=2 halves the input channels each filter sees
    assert _single(L.Conv2D(8, 1, groups=2), (4, 4, 4)).macs == 16 * 8 * 2
    # depthwise with multiplier 2: 6x6 outputs, 3 channels x 2, 3x3 window
    assert _single(L.DepthwiseConv2D(3, depth_multiplier=2), (8, 8, 3)).macs == 36 * 6 * 9
    # separable = depthwise + pointwise
    sep = _single(L.SeparableConv2D(5, 3, padding="same"), (6, 6, 4))
    assert sep.macs == 36 * 4 * 9 + 36 * 4 * 5
    assert sep.params == 3 * 3 * 4 + 4 * 5 + 5
    # dense on a sequence applies per time step
    assert _single(L.Dense(7), (3, 5)).macs == 3 * 5 * 7
    # transposed conv: every input position scatters a k x k x Cout patch
    assert _single(L.Conv2DTranspose(2, 3, strides=2), (4, 4, 3)).macs == 16 * 3 * 9 * 2


def test_pooling_merges_and_bn_count_as_ops_not_macs():
    keras = tf_keras()
    L = keras.layers
    x = inp = keras.Input((8, 8, 4))
    a = L.MaxPooling2D(2)(x)
    b = L.AveragePooling2D(2)(x)
    y = L.Add()([a, b])
    y = L.BatchNormalization()(y)
    out = L.GlobalAveragePooling2D()(y)
    cost = analyze(from_keras(keras.Model(inp, out)))
    by_op = {c.op: c for c in cost.layers}
    assert cost.macs == 0
    assert by_op["MaxPooling2D"].ops == 4 * 4 * 4 * 4
    assert by_op["Add"].ops == 4 * 4 * 4
    assert by_op["BatchNormalization"].ops == 2 * 64
    assert by_op["GlobalAveragePooling2D"].ops == 64


def test_int8_weight_bytes_fold_batchnorm():
    keras = tf_keras()
    L = keras.layers
    x = inp = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, use_bias=False, name="conv")(x)
    x = L.BatchNormalization(name="bn")(x)
    cost = analyze(from_keras(keras.Model(inp, x)))
    # int8 kernel bytes, then the folded BN becomes an int32 bias of 4 channels
    assert cost.layer("conv").weight_bytes.int8 == 3 * 3 * 3 * 4
    assert cost.layer("bn").weight_bytes.int8 == 4 * 4
    assert cost.layer("bn").weight_bytes.float32 == 4 * 4 * 4


def test_nested_model_is_flattened():
    keras = tf_keras()
    L = keras.layers
    inner_in = keras.Input((6,))
    inner = keras.Model(inner_in, L.Dense(4, name="inner_fc")(inner_in), name="block")
    x = inp = keras.Input((6,))
    y = L.Dense(3, name="head")(inner(x))
    model = keras.Model(inp, y)
    graph = from_keras(model)
    assert [n.name for n in graph.nodes] == ["block/inner_fc", "head"]
    assert analyze(graph).params == model.count_params()


def _converted_ops(model):
    from edgekit.export.tflite import convert
    from edgekit.model_io.flatbuffer import tflite_op_list

    return tflite_op_list(convert(model, "int8").tflite_bytes)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["conv1d", "dscnn", "resnet8", "dense_autoencoder", "xception_like"])
def test_lowering_predicts_the_converters_ops(name):
    from edgekit.ir.lowering import lower
    from edgekit.ir.ops import builtin_ops

    model = zoo.build(name)
    predicted = [b for op in lower(from_keras(model)).ops for b in builtin_ops(op.kind)]
    real = [op for op in _converted_ops(model) if op not in ("QUANTIZE", "DEQUANTIZE")]
    assert sorted(predicted) == sorted(real)
