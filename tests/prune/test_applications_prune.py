"""Pruning keras.applications-style models: layer names with '/', hard-swish written as TF ops, and
MobileNetV3Small itself (the named failures of issue 12)."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.costmodel.layer_costs import analyze
from edgekit.ir.from_keras import from_keras
from edgekit.prune import prune
from edgekit.prune.surgery import layer_at


@pytest.fixture(scope="module")
def keras():
    from edgekit._tf import tf_keras

    return tf_keras()


def test_layer_names_with_slashes_inside_a_nested_model(keras):
    """DenseNet names layers 'conv1/conv', MobileNetV3 'expanded_conv/project'; nesting also uses '/'."""
    L = keras.layers
    inner_in = keras.Input((8, 8, 6))
    h = L.Conv2D(6, 1, name="block/expand")(inner_in)
    inner = keras.Model(inner_in, L.ReLU(name="block/relu")(L.BatchNormalization(name="block/bn")(h)), name="stage")
    x0 = keras.Input((8, 8, 3))
    h = L.Conv2D(6, 3, padding="same", name="conv1/conv")(x0)
    h = inner(h)
    model = keras.Model(x0, L.Dense(2)(L.GlobalAveragePooling2D()(h)))
    assert layer_at(model, "stage/block/bn").name == "block/bn"
    assert layer_at(model, "conv1/conv").name == "conv1/conv"
    result = prune(model, 0.5)
    assert result.model.get_layer("conv1/conv").filters < 6
    assert result.model.get_layer("stage").get_layer("block/expand").filters < 6


def test_hard_swish_as_tf_ops_passes_channels_through(keras):
    """x * relu6(x + 3) / 6 written with operators (what tf_keras MobileNetV3 does) must not freeze the conv."""
    L = keras.layers
    x0 = keras.Input((8, 8, 3))
    h = L.Conv2D(8, 3, name="conv")(x0)
    gate = L.ReLU(6.0)(h + 3.0) * (1.0 / 6.0)
    h = L.Multiply()([h, gate])
    model = keras.Model(x0, L.Dense(2)(L.GlobalAveragePooling2D()(h)))
    result = prune(model, 0.5)
    assert result.model.get_layer("conv").filters == 4
    assert not [f for f in result.report.frozen if f.op == "TFOpLambda"]


@pytest.mark.slow
def test_mobilenet_v3_small_prunes(keras):
    """Converting the pruned model as well costs ~30 s on this host: the LiteRT run is left to the zoo benchmark."""
    model = keras.applications.MobileNetV3Small(input_shape=(32, 32, 3), weights=None, classes=5)
    result = prune(model, 0.5)
    pruned = result.model
    assert analyze(from_keras(pruned)).params == pruned.count_params() < 0.6 * model.count_params()
    assert [f.node for f in result.report.frozen] == ["Predictions"]   # only the softmax head is kept whole
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    assert pruned(x).shape == (2, 5) and np.all(np.isfinite(pruned(x).numpy()))
