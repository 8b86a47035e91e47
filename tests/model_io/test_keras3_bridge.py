"""Keras 3 -> tf_keras bridge: same graph, same weights, same outputs (<= 1e-5) on fresh random inputs."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import BadInputError
from edgekit.model_io import load_model
from edgekit.model_io.keras3_bridge import bridge_keras3_model


def _randomise_batch_norms(model, seed=3):
    """Give every BatchNormalization non-trivial gamma/beta/moving stats, so a wrong copy shows."""
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers(include_self=False):
        if type(layer).__name__ == "BatchNormalization":
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 2, n), rng.normal(size=n),
                               rng.normal(size=n), rng.uniform(0.3, 3, n)])


def _fresh_inputs(model, seed=99, vocabulary=None):
    rng = np.random.default_rng(seed)
    arrays = []
    for tensor in model.inputs:
        shape = (4, *tensor.shape[1:])
        if vocabulary:
            arrays.append(rng.integers(0, vocabulary, size=shape).astype(tensor.dtype))
        else:
            arrays.append(rng.standard_normal(shape).astype(tensor.dtype))
    return arrays if len(arrays) > 1 else arrays[0]


def _outputs(model, x):
    out = model(x, training=False)
    return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]


def _round_trip(model, tmp_path, name):
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = load_model(path)
    assert loaded.bridged and loaded.format == "keras3_keras"
    return loaded


def _assert_same_outputs(k3_model, tk_model, x, diff):
    expected, actual = _outputs(k3_model, x), _outputs(tk_model, x)
    assert len(expected) == len(actual)
    for e, a in zip(expected, actual):
        assert e.shape == a.shape
        assert diff(e, a) <= 1e-5
    return expected


def test_residual_net_with_batch_norm_and_add(k3, tk, tmp_path, diff):
    L = k3.layers
    inputs = L.Input((8, 8, 3), name="image")
    x = L.Conv2D(4, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(name="stem_relu")(x)
    y = L.Conv2D(4, 3, padding="same", name="block_conv")(x)
    y = L.BatchNormalization(name="block_bn")(y)
    x = L.Add(name="residual")([x, y])
    x = L.Activation("relu", name="block_relu")(x)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    model = k3.Model(inputs, L.Dense(3, activation="softmax", name="head")(x))
    _randomise_batch_norms(model)

    loaded = _round_trip(model, tmp_path, "residual")
    tk_model = loaded.keras_model

    assert [layer.name for layer in tk_model.layers] == [layer.name for layer in model.layers]
    assert [type(layer).__name__ for layer in tk_model.layers] == [type(layer).__name__ for layer in model.layers]
    residual = tk_model.get_layer("residual")
    assert sorted(n.name for n in residual._inbound_nodes[0].inbound_layers) == ["block_bn", "stem_relu"]
    for name in ("stem_bn", "block_bn"):   # all four BN vectors, in order
        for got, want in zip(tk_model.get_layer(name).get_weights(), model.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want)
    x = _fresh_inputs(model)
    _assert_same_outputs(model, tk_model, x, diff)
    # BN must matter here, or the equality above would not test its copy.
    bn_free = [w if i != 3 else np.ones_like(w) for i, w in enumerate(model.get_layer("block_bn").get_weights())]
    tk_model.get_layer("block_bn").set_weights(bn_free)
    assert diff(_outputs(tk_model, x)[0], _outputs(model, x)[0]) > 1e-3


def test_depthwise_and_separable_conv_net(k3, tmp_path, diff):
    L = k3.layers
    inputs = L.Input((12, 12, 4))
    a = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu6", name="dw")(inputs)
    b = L.SeparableConv2D(6, 3, padding="same", depth_multiplier=2, activation="silu", name="sep")(inputs)
    x = L.Concatenate(name="concat")([a, b])
    x = L.BatchNormalization(name="bn")(x)
    x = L.Conv2DTranspose(4, 3, strides=2, padding="same", name="up_conv")(x)
    x = L.MaxPooling2D(2, name="max_pool")(x)
    x = L.AveragePooling2D(2, name="avg_pool")(x)
    x = L.ZeroPadding2D(1)(x)
    x = L.Cropping2D(((1, 0), (0, 1)))(x)
    x = L.UpSampling2D(name="upsample")(x)
    x = L.GlobalMaxPooling2D()(x)
    model = k3.Model(inputs, L.Dense(2, name="head")(x))
    _randomise_batch_norms(model)

    loaded = _round_trip(model, tmp_path, "separable")

    tk_model = loaded.keras_model
    # relu6 has no tf_keras activation name: it becomes a ReLU(max_value=6) layer after the conv.
    assert tk_model.get_layer("dw").get_config()["activation"] == "linear"
    assert tk_model.get_layer("dw_relu").max_value == 6.0
    dw_kernel = tk_model.get_layer("dw").depthwise_kernel.numpy()
    np.testing.assert_array_equal(dw_kernel, model.get_layer("dw").kernel.numpy())
    sep_tk, sep_k3 = tk_model.get_layer("sep"), model.get_layer("sep")
    np.testing.assert_array_equal(sep_tk.pointwise_kernel.numpy(), sep_k3.pointwise_kernel.numpy())
    _assert_same_outputs(model, tk_model, _fresh_inputs(model), diff)


def test_sequential_conv1d_model(k3, tk, tmp_path, diff):
    L = k3.layers
    model = k3.Sequential([
        L.Input((16, 3)),
        L.Conv1D(4, 3, activation="relu", name="conv"),
        L.DepthwiseConv1D(3, name="dw"),
        L.SeparableConv1D(5, 3, padding="same", name="sep"),
        L.MaxPooling1D(2),
        L.AveragePooling1D(2, padding="same"),
        L.ZeroPadding1D(1),
        L.Cropping1D((1, 0)),
        L.UpSampling1D(2),
        L.LayerNormalization(name="ln"),
        L.Dropout(0.5),
        L.Flatten(),
        L.Dense(3, name="head"),
    ], name="seq1d")
    model.get_layer("ln").set_weights([np.linspace(0.5, 2, 5), np.linspace(-1, 1, 5)])

    loaded = _round_trip(model, tmp_path, "seq1d")

    assert isinstance(loaded.keras_model, tk.Sequential)
    assert [type(layer).__name__ for layer in loaded.keras_model.layers] == [
        type(layer).__name__ for layer in model.layers]
    _assert_same_outputs(model, loaded.keras_model, _fresh_inputs(model), diff)


def test_merges_embedding_normalization_and_a_nested_sequential(k3, tmp_path, diff):
    L = k3.layers
    tokens = L.Input((6,), dtype="int32", name="tokens")
    features = L.Input((6, 4), name="features")
    embedded = L.Embedding(10, 4, name="embed")(tokens)
    norm = L.Normalization(axis=-1, name="norm")
    norm.adapt(np.random.default_rng(0).normal(3.0, 2.0, size=(32, 6, 4)).astype("float32"))
    f = L.Rescaling(0.5, offset=0.25, name="rescale")(norm(features))
    inner = k3.Sequential([L.Input((6, 4)), L.Dense(4, activation="tanh"), L.LeakyReLU(0.1)], name="inner")
    e = inner(embedded)
    merged = [L.Add()([e, f]), L.Subtract()([e, f]), L.Multiply()([e, f]), L.Average()([e, f]),
              L.Maximum()([e, f]), L.Minimum()([e, f])]
    x = L.Concatenate(axis=-1)(merged)
    x = L.Reshape((6, 6, 4))(x)
    x = L.Permute((2, 1, 3))(x)
    x = L.Softmax(axis=1)(x)
    x = L.Flatten()(x)
    out_a = L.Dense(2, activation="gelu", name="head_a")(x)
    out_b = L.GlobalAveragePooling1D(name="head_b")(e)
    model = k3.Model([tokens, features], [out_a, out_b])

    loaded = _round_trip(model, tmp_path, "zoo")

    tk_model = loaded.keras_model
    assert [t.name.split(":")[0] for t in tk_model.inputs] == ["tokens", "features"]
    assert type(tk_model.get_layer("inner")).__name__ == "Sequential"
    x = _fresh_inputs(model, vocabulary=10)
    _assert_same_outputs(model, tk_model, x, diff)


def test_unsupported_layer_names_the_layer_and_class(k3, tmp_path):
    inputs = k3.layers.Input((5, 6, 3))
    model = k3.Model(inputs, k3.layers.ConvLSTM1D(2, 3, name="recurrent")(inputs))
    path = tmp_path / "convlstm.keras"
    model.save(path)
    with pytest.raises(BadInputError) as info:
        load_model(path)
    message = str(info.value)
    assert message.startswith(f"{path}: Keras 3 bridge failed for layer 'recurrent' (ConvLSTM1D)")
    assert "\n" not in message


def test_a_wrong_copy_is_caught_and_blamed_on_its_layer(k3, monkeypatch):
    from edgekit.model_io import keras3_bridge

    L = k3.layers
    inputs = L.Input((4,))
    x = L.Dense(4, name="first")(inputs)
    model = k3.Model(inputs, L.Dense(2, name="second")(x))
    original = keras3_bridge._GraphBuilder.copy_weights

    def copy_then_spoil(self):
        original(self)
        for k3_layer, translated in self.pairs:
            if k3_layer.name == "second":
                kernel, bias = translated.layer.get_weights()
                translated.layer.set_weights([kernel, bias + 0.01])

    monkeypatch.setattr(keras3_bridge._GraphBuilder, "copy_weights", copy_then_spoil)
    with pytest.raises(BadInputError, match=r"model\.keras: Keras 3 bridge failed for layer 'second' \(Dense\)"):
        bridge_keras3_model(model, "model.keras")


def test_tensor_arithmetic_becomes_merge_layers_or_tf_ops(k3, tmp_path, diff):
    L = k3.layers
    a, b = L.Input((3,), name="a"), L.Input((3,), name="b")
    x = L.Dense(3, name="dense")(a)
    hard_swish = x * L.ReLU(6.0)(x + 3.0) / 6.0   # how Keras 3 MobileNetV3 writes it
    y = (hard_swish + b) * 0.5 - 1.0
    model = k3.Model([a, b], -(2.0 * y) / (L.Activation("sigmoid")(b) + 1.0))

    loaded = _round_trip(model, tmp_path, "arithmetic")

    classes = [type(layer).__name__ for layer in loaded.keras_model.layers]
    assert "Add" in classes and "Multiply" in classes    # tensor (+) tensor of one shape: merge layers
    x = _fresh_inputs(model)
    _assert_same_outputs(model, loaded.keras_model, x, diff)


def test_unsupported_keras_op_is_named(k3, tmp_path):
    inputs = k3.Input((4,))
    model = k3.Model(inputs, k3.ops.mean(k3.layers.Dense(2)(inputs), axis=-1))
    path = tmp_path / "mean.keras"
    model.save(path)
    with pytest.raises(BadInputError, match=r"bridge failed for layer 'mean' \(Mean\)"):
        load_model(path)


# One Keras 3 layer per case, with non-default settings where tf_keras spells them differently.
SINGLE_LAYER_CASES = {
    "einsum_dense": ((5,), lambda L: L.EinsumDense("ab,bc->ac", output_shape=3, bias_axes="c")),
    "conv3d": ((4, 4, 4, 2), lambda L: L.Conv3D(2, 2)),
    "conv1d_transpose": ((6, 2), lambda L: L.Conv1DTranspose(3, 3, strides=2)),
    "grouped_conv2d": ((5, 5, 4), lambda L: L.Conv2D(4, 3, groups=2, kernel_initializer="he_normal")),
    "group_norm": ((6, 4), lambda L: L.GroupNormalization(groups=2)),
    "unit_norm": ((5,), lambda L: L.UnitNormalization()),
    "frozen_bn_without_center": ((5,), lambda L: L.BatchNormalization(trainable=False, center=False,
                                                                      moving_mean_initializer="random_normal")),
    "prelu": ((5,), lambda L: L.PReLU(alpha_initializer="random_uniform")),
    "elu": ((5,), lambda L: L.ELU(0.5)),
    "spatial_dropout2d": ((4, 4, 3), lambda L: L.SpatialDropout2D(0.3)),
    "gaussian_noise": ((5,), lambda L: L.GaussianNoise(0.3)),
    "repeat_vector": ((5,), lambda L: L.RepeatVector(3)),
    "global_pool_keepdims": ((4, 4, 3), lambda L: L.GlobalAveragePooling2D(keepdims=True)),
    "dense_selu_l2_nonneg": ((5,), lambda L: L.Dense(3, activation="selu", kernel_regularizer="l2",
                                                     bias_constraint="non_neg")),
    "dense_leaky_relu": ((5,), lambda L: L.Dense(3, activation="leaky_relu")),
    "dense_hard_sigmoid": ((5,), lambda L: L.Dense(3, activation="hard_sigmoid", kernel_initializer="ones")),
    "activation_relu6": ((5,), lambda L: L.Activation("relu6")),
    "dense_mixed_float16": ((5,), lambda L: L.Dense(3, dtype="mixed_float16")),
}


@pytest.mark.parametrize("case", sorted(SINGLE_LAYER_CASES))
def test_single_layer_translations(k3, diff, case):
    shape, make = SINGLE_LAYER_CASES[case]
    inputs = k3.Input(shape)
    model = k3.Model(inputs, make(k3.layers)(inputs))

    result = bridge_keras3_model(model, f"{case}.keras")

    assert result.max_abs_error <= 1e-5
    x = 3 * _fresh_inputs(model)    # wide enough to reach the clipping regions of relu6 / hard_sigmoid
    tolerance = 1e-2 if case == "dense_mixed_float16" else 1e-5
    for e, a in zip(_outputs(model, x), _outputs(result.model, x)):
        assert diff(e, a) <= tolerance


def test_unsupported_activation_is_named(k3):
    inputs = k3.Input((3,))
    model = k3.Model(inputs, k3.layers.Dense(2, activation="log_sigmoid", name="gate")(inputs))
    with pytest.raises(BadInputError, match=r"layer 'gate' \(Dense\): activation 'log_sigmoid' has no tf_keras"):
        bridge_keras3_model(model, "m.keras")


def test_shared_nested_functional_block_called_with_training_false(k3, tmp_path, diff):
    L = k3.layers
    block_in = L.Input((6,))
    h = L.Dense(6, name="block_dense")(block_in)
    block = k3.Model(block_in, L.BatchNormalization(name="block_bn")(h), name="block")
    _randomise_batch_norms(block)
    inputs = L.Input((6,))
    first = block(inputs, training=False)
    second = block(L.Dense(6, name="mid")(first), training=False)   # the same block, shared weights
    model = k3.Model(inputs, L.Dense(2, name="head")(second))

    loaded = _round_trip(model, tmp_path, "shared")

    tk_model = loaded.keras_model
    tk_block = tk_model.get_layer("block")
    assert len(tk_block._inbound_nodes) >= 2 and [layer.name for layer in tk_model.layers].count("block") == 1
    _assert_same_outputs(model, tk_model, _fresh_inputs(model), diff)


def test_accumulated_rounding_is_accepted_only_within_the_depth_scaled_tolerance():
    """Every layer matching alone: a model difference within tolerance x depth is float32 rounding, not a bug."""
    from edgekit.model_io.keras3_bridge import _diverging_layer_error

    assert _diverging_layer_error([], "m.keras", model_error=0.9e-5, model_tolerance=1e-5, seed=0) is None
    failure = _diverging_layer_error([], "m.keras", model_error=2e-5, model_tolerance=1e-5, seed=0)
    assert failure is not None and "m.keras" in str(failure) and "every layer matches" in str(failure)
