"""tfmot sparsity (unstructured magnitude, 2:4) and channel-L1 training."""

from __future__ import annotations

import numpy as np
import pytest
from prune_helpers import samples

from edgekit.channels.groups import build_groups
from edgekit.errors import BadInputError
from edgekit.examples import zoo
from edgekit.examples.mnist1d_teacher import build_teacher
from edgekit.ir.from_keras import from_keras
from edgekit.prune import prune
from edgekit.prune.sparsity import parse_pattern, sparsify, train_with_channel_l1


def test_one_shot_magnitude_sparsity_zeroes_the_smallest_half_of_each_kernel():
    model = zoo.concat_se_net()
    before = [w.copy() for w in model.get_weights()]
    result = sparsify(model, 0.5)
    assert [s.name for s in result.layers] == ["branch_a", "branch_b", "conv", "se_reduce", "se_expand", "logits"]
    for layer in result.layers:
        assert abs(layer.sparsity - 0.5) < 0.01, layer
        kernel = result.model.get_layer(layer.name).kernel.numpy()
        original = model.get_layer(layer.name).kernel.numpy()
        kept = kernel != 0
        # the survivors are the largest magnitudes, unchanged
        assert np.abs(original[kept]).min() >= np.abs(original[~kept]).max()
        np.testing.assert_array_equal(kernel[kept], original[kept])
    assert result.model.count_params() == model.count_params()
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert "no data" in result.notices[-1]


def test_two_four_sparsity_on_dense_and_conv2d_and_conv1d_is_left_dense():
    from tensorflow_model_optimization.python.core.sparsity.keras.pruning_utils import is_pruned_m_by_n

    result = sparsify(zoo.concat_se_net(), pattern="2:4")
    assert result.target_sparsity == 0.5
    for layer in result.layers:
        kernel = result.model.get_layer(layer.name).kernel
        assert is_pruned_m_by_n(kernel, (2, 4)), layer.name
    conv1d = sparsify(zoo.conv1d_net(), pattern="2:4")
    assert [s.name for s in conv1d.layers] == ["logits"]
    assert any("conv0 (Conv1D): 2:4 needs rank-2 or rank-4 kernels" in n for n in conv1d.notices)


def test_fine_tuned_sparsity_follows_the_schedule_to_its_target(keras):
    model = zoo.mlp(inputs=16, hidden=(32,), classes=3)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 16)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 1)
    result = sparsify(model, 0.75, data=(x, y), epochs=2, schedule="polynomial", learning_rate=1e-2)
    assert [round(s.sparsity, 2) for s in result.layers] == [0.75, 0.75]
    # trained, not just masked: some surviving weights moved
    kept = result.model.get_layer("fc0").kernel.numpy()
    assert np.abs(kept[kept != 0] - model.get_layer("fc0").kernel.numpy()[kept != 0]).max() > 1e-3


def test_sparse_int8_tflite_is_as_large_as_dense():
    from edgekit.export.tflite import convert

    model = zoo.conv1d_net()
    x = samples(model, 16)
    dense = convert(model, "int8", x, calibration_samples=16).size_bytes
    sparse_model = sparsify(model, 0.5).model
    sparse = convert(sparse_model, "int8", x, calibration_samples=16).size_bytes
    structured = convert(prune(model, 0.5).model, "int8", x, calibration_samples=16).size_bytes
    assert abs(sparse - dense) < 0.02 * dense
    assert structured < 0.5 * dense


@pytest.mark.parametrize("bad", ["4:2", "2-4", "0:4"])
def test_bad_patterns_are_refused(bad):
    with pytest.raises(BadInputError, match="sparsity pattern"):
        parse_pattern(bad)


def test_channel_l1_training_drives_gammas_down_and_leaves_the_model_alone():
    model = build_teacher(width=16)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 40, 1)).astype("float32")
    y = rng.integers(0, 10, 256)
    groups = build_groups(from_keras(model))
    before = [w.copy() for w in model.get_weights()]

    def gamma_l1(m):
        return sum(np.abs(m.get_layer(f"bn{i}").gamma.numpy()).sum() for i in (1, 2, 3))

    plain = train_with_channel_l1(model, groups, x, y, strength=0.0, epochs=3, batch_size=16, learning_rate=1e-2)
    squeezed = train_with_channel_l1(model, groups, x, y, strength=0.05, epochs=3, batch_size=16,
                                     learning_rate=1e-2)
    assert gamma_l1(squeezed) < 0.7 * gamma_l1(plain)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    result = prune(model, 0.5, data=(x, y), l1_regularization=1e-2, epochs=1, importance="bn")
    assert "channel L1" in " ".join(result.report.notices)
    assert result.model.get_layer("conv1").filters < 16
