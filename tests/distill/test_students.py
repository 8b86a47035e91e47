"""Student builders: family sizes by hand, MAC targeting, dropping residual blocks, shrinking the teacher."""

import numpy as np
import pytest

from edgekit._tf import tf_keras
from edgekit.distill import students
from edgekit.distill.students import (
    drop_residual_blocks,
    dscnn,
    find_residual_blocks,
    load_student,
    mlp,
    mobilenet_like,
    model_macs,
    shrink_teacher,
    student_for,
)
from edgekit.errors import BadInputError, UnsupportedModelError

keras = tf_keras()
L = keras.layers


def test_mlp_params_and_macs_by_hand():
    model = mlp((16,), n_classes=4, width=8, depth=2)
    assert model.count_params() == (16 * 8 + 8) + (8 * 8 + 8) + (8 * 4 + 4)
    assert model_macs(model) == 16 * 8 + 8 * 8 + 8 * 4
    assert model.output_shape == (None, 4)
    flat = mlp((5, 3), n_classes=2, width=4, depth=0, output_activation=None)
    assert flat.count_params() == 15 * 2 + 2 and model_macs(flat) == 30


def test_dscnn_1d_params_and_macs_by_hand():
    # (40, 1) input, width 8, depth 2: stem Conv1D k3 stride 2 -> (20, 8), then 2 x [dw k3, pw 1x1].
    model = dscnn((40, 1), n_classes=5, width=8, depth=2)
    bn = 4 * 8  # gamma, beta, moving mean, moving variance
    expected_params = 3 * 1 * 8 + bn + 2 * (3 * 8 + bn + 8 * 8 + bn) + (8 * 5 + 5)
    assert model.count_params() == expected_params
    assert model_macs(model) == 20 * 3 * 8 + 2 * (20 * 8 * 3 + 20 * 8 * 8) + 8 * 5
    assert isinstance(model.get_layer("block0_dw"), L.DepthwiseConv1D)
    spectrogram = dscnn((49, 10, 1), n_classes=12, width=4, depth=1)
    assert isinstance(spectrogram.get_layer("block0_dw"), L.DepthwiseConv2D)
    assert model_macs(spectrogram) == 49 * 10 * 9 * 4 + 49 * 10 * 4 * 9 + 49 * 10 * 4 * 4 + 4 * 12


def test_mobilenet_like_resolution_front_and_doubling():
    model = mobilenet_like((32, 32, 3), n_classes=10, width=8, depth=4, resolution=16)
    assert isinstance(model.get_layer("downscale"), L.AveragePooling2D)
    assert model.get_layer("stem").output_shape == (None, 8, 8, 8)
    assert model.get_layer("block1_pw").output_shape == (None, 4, 4, 16)
    assert model.get_layer("block3_pw").output_shape == (None, 2, 2, 32)
    odd = mobilenet_like((30, 30, 1), n_classes=2, width=4, depth=1, resolution=(20, 20))
    assert isinstance(odd.get_layer("downscale"), L.Resizing) and odd.get_layer("downscale").output_shape[1:3] == (
        20, 20)
    small = mobilenet_like((8, 8, 1), n_classes=2, width=2, depth=2)
    bn = 4  # BatchNormalization weights per channel
    stem, block0 = 9 * 1 * 2 + bn * 2, (9 * 2 + bn * 2) + (2 * 2 + bn * 2)
    block1 = (9 * 2 + bn * 2) + (2 * 4 + bn * 4)
    assert small.count_params() == stem + block0 + block1 + (4 * 2 + 2)
    assert small.get_layer("block1_pw").output_shape == (None, 2, 2, 4)
    assert model_macs(small) == 16 * 9 * 2 + 16 * 2 * (9 + 2) + 4 * 2 * (9 + 4) + 4 * 2
    with pytest.raises(BadInputError, match="exceeds the input"):
        mobilenet_like((16, 16, 3), 2, 4, 1, resolution=32)


def test_separable_and_transposed_conv_macs():
    inputs = keras.Input((8, 8, 4))
    x = L.SeparableConv2D(6, 3, padding="same", depth_multiplier=2)(inputs)
    x = L.Conv2DTranspose(2, 2, strides=2)(x)
    model = keras.Model(inputs, x)
    assert model_macs(model) == 64 * 8 * 9 + 64 * 8 * 6 + 64 * 6 * 4 * 2


@pytest.mark.parametrize("family, input_shape, width, depth, resolution", [
    ("mlp", (20,), 7, 0, None), ("mlp", (4, 5), 9, 3, None),
    ("dscnn", (64, 3), 5, 2, None), ("dscnn", (10,), 3, 1, None), ("dscnn", (49, 10, 1), 6, 3, None),
    ("mobilenet_like", (24, 24, 1), 4, 5, None), ("mobilenet_like", (30, 30, 3), 3, 4, (20, 20)),
    ("mobilenet_like", (32, 32, 3), 2, 7, 16), ("mobilenet_like", (6, 6, 1), 2, 3, None),
])
def test_shape_only_mac_formula_matches_the_built_model(family, input_shape, width, depth, resolution):
    model = students._build_family(family, input_shape, 5, width, depth, resolution, "softmax")
    assert students._family_macs(family, input_shape, 5, width, depth, resolution) == model_macs(model)


@pytest.mark.parametrize("input_shape, family", [((20,), "mlp"), ((64, 3), "dscnn"), ((24, 24, 1), "mobilenet_like")])
def test_student_for_lands_at_the_mac_target(input_shape, family):
    teacher = keras.Sequential([L.Input(input_shape), L.Flatten(), L.Dense(256, activation="relu"),
                                L.Dense(5, activation="softmax")], name="teacher")
    target = 60_000
    student = student_for(teacher, target_macs=target)
    macs = model_macs(student)
    assert 0.85 * target <= macs <= target, macs
    assert student.name.startswith(family.split("_")[0])
    assert student.output_shape == (None, 5) and student.layers[-1].activation.__name__ == "softmax"
    default = student_for(teacher)  # a quarter of the teacher's MACs
    assert 0.7 * model_macs(teacher) / 4 <= model_macs(default) <= model_macs(teacher) / 4


def test_student_for_adjusts_depth_and_accepts_a_macs_fn():
    teacher = keras.Sequential([L.Input((32,)), L.Dense(3)])
    signal_teacher = keras.Sequential([L.Input((32, 1)), L.Flatten(), L.Dense(3)])
    shallow = student_for(signal_teacher, target_macs=300)  # below any depth-4 dscnn: goes shallower
    n_blocks = len([layer for layer in shallow.layers if isinstance(layer, L.DepthwiseConv1D)])
    assert model_macs(shallow) <= 300 and 1 <= n_blocks < 4
    big = student_for(teacher, target_macs=2_000_000, max_width=64)  # above max width at depth 2: deeper
    assert len([layer for layer in big.layers if isinstance(layer, L.Dense)]) > 3
    calls = []
    params = student_for(teacher, target_macs=500, macs_fn=lambda m: calls.append(1) or m.count_params())
    assert calls and params.count_params() <= 500 and params.layers[-1].activation.__name__ == "linear"
    with pytest.raises(BadInputError, match="below the smallest"):
        student_for(teacher, family="dscnn", target_macs=10)
    autoencoder = keras.Sequential([L.Input((8, 8, 1)), L.Conv2D(1, 3, padding="same")])
    with pytest.raises(UnsupportedModelError, match="shrink_teacher"):
        student_for(autoencoder)


def _resnet(n_blocks=3):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 4))
    x = L.Conv1D(8, 3, padding="same", name="stem")(inputs)
    for i in range(n_blocks):
        y = L.Conv1D(8, 3, padding="same", name=f"b{i}_c1")(x)
        y = L.BatchNormalization(name=f"b{i}_bn")(y)
        y = L.Conv1D(8, 3, padding="same", name=f"b{i}_c2")(L.ReLU(name=f"b{i}_relu")(y))
        x = L.ReLU(name=f"b{i}_out")(L.Add(name=f"b{i}_add")([x, y]))
    # A projection block (shapes differ): never droppable.
    x = L.Add(name="proj_add")([L.Conv1D(16, 1, strides=2, name="proj")(x),
                                L.Conv1D(16, 3, strides=2, padding="same", name="down")(x)])
    outputs = L.Dense(3, activation="softmax", name="head")(L.GlobalAveragePooling1D()(x))
    return keras.Model(inputs, outputs, name="resnet")


def test_find_and_drop_exactly_the_identity_blocks():
    model = _resnet()
    blocks = find_residual_blocks(model)
    assert [b.add_layer for b in blocks] == ["b0_add", "b1_add", "b2_add"]
    assert blocks[1].branch_layers == ("b1_c1", "b1_bn", "b1_relu", "b1_c2")
    dropped = drop_residual_blocks(model, ["b1_add", "b2_c1"])
    names = {layer.name for layer in dropped.layers}
    assert {"b0_add", "b0_c1", "proj_add", "b1_out", "b2_out"} <= names
    assert not names & {"b1_add", "b1_c1", "b1_bn", "b1_c2", "b2_add", "b2_c2"}
    per_block = 16 * 8 * 3 * 8 * 2
    assert model_macs(model) - model_macs(dropped) == 2 * per_block
    x = np.random.default_rng(0).normal(size=(4, 16, 4)).astype(np.float32)
    # Equivalence: zeroing a block's last conv makes it the identity, so outputs must then agree.
    for block in ("b1", "b2"):
        layer = model.get_layer(f"{block}_c2")
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    np.testing.assert_allclose(dropped(x).numpy(), model(x).numpy(), atol=1e-6)
    assert model.get_layer("b1_c1") is not dropped.get_layer("b0_c1")  # new layers, not the teacher's


def test_drop_by_count_takes_the_smallest_branches():
    model = _resnet()
    # Branch scale: mean |kernel| of the branch's last weighted layer (b*_c2).
    for i, scale in enumerate((1.0, 0.01, 0.5)):
        layer = model.get_layer(f"b{i}_c2")
        kernel, bias = layer.get_weights()
        layer.set_weights([np.sign(kernel) * scale, bias])
    dropped = drop_residual_blocks(model, 2)
    names = {layer.name for layer in dropped.layers}
    assert "b0_add" in names and "b1_add" not in names and "b2_add" not in names
    with pytest.raises(BadInputError, match="asked to drop 4 residual blocks, it has 3"):
        drop_residual_blocks(model, 4)
    with pytest.raises(BadInputError, match="'proj' is not in a droppable residual block"):
        drop_residual_blocks(model, ["proj"])
    with pytest.raises(UnsupportedModelError, match="no identity residual blocks"):
        drop_residual_blocks(keras.Sequential([L.Input((3,)), L.Dense(2)]), 1)


def test_shrink_plain_chain_inherits_the_largest_channels():
    keras.utils.set_random_seed(0)
    teacher = keras.Sequential([L.Input((12, 2)), L.Conv1D(8, 3, name="c1"), L.BatchNormalization(name="bn"),
                                L.ReLU(), L.DepthwiseConv1D(3, name="dw"), L.Conv1D(6, 1, name="c2"),
                                L.Flatten(), L.Dense(10, activation="relu", name="fc"),
                                L.Dense(3, activation="softmax", name="out")], name="chain")
    bn = teacher.get_layer("bn")
    bn.set_weights([w + np.random.default_rng(1).uniform(0.1, 1, size=w.shape) for w in bn.get_weights()])
    student = shrink_teacher(teacher, 0.5)
    assert [student.get_layer(n).output_shape[-1] for n in ("c1", "dw", "c2", "fc", "out")] == [4, 4, 3, 5, 3]
    kernel = teacher.get_layer("c1").get_weights()[0]
    kept = np.sort(np.argsort(-np.abs(kernel).sum(axis=(0, 1)))[:4])
    x = np.random.default_rng(2).normal(size=(3, 12, 2)).astype(np.float32)
    t_bn = keras.Model(teacher.inputs, teacher.get_layer("dw").output)(x).numpy()
    s_bn = keras.Model(student.inputs, student.get_layer("dw").output)(x).numpy()
    np.testing.assert_allclose(s_bn, t_bn[..., kept], rtol=1e-5, atol=1e-6)
    full = shrink_teacher(teacher, 1.0)
    np.testing.assert_allclose(full(x).numpy(), teacher(x).numpy(), rtol=1e-5, atol=1e-6)


def test_shrink_branched_graph_rebuilds_with_fresh_weights():
    model = _resnet(n_blocks=1)
    student = shrink_teacher(model, 0.5)
    assert student.get_layer("stem").output_shape == (None, 16, 4)
    assert student.get_layer("proj_add").output_shape == (None, 8, 8)
    assert student.output_shape == (None, 3)
    assert student.count_params() < model.count_params() / 2
    assert model.get_layer("stem").output_shape == (None, 16, 8)  # the teacher is unchanged
    with pytest.raises(BadInputError, match="width_multiplier"):
        shrink_teacher(model, 1.5)


@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")
def test_load_student_round_trip(tmp_path):
    model = mlp((4,), 2, 3, 1)
    path = tmp_path / "student.h5"
    model.save(path)
    loaded = load_student(str(path))
    x = np.ones((1, 4), np.float32)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-6)
    with pytest.raises(BadInputError):
        load_student(str(tmp_path / "missing.h5"))
    assert students.FAMILIES == ("mlp", "dscnn", "mobilenet_like")


def test_shrink_teacher_scales_a_squeeze_excite_reshape_with_its_channels():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(16, 3, padding="same", activation="relu", name="conv")(inputs)
    se = L.Reshape((1, 1, 16), name="se_reshape")(L.GlobalAveragePooling2D()(x))  # the channel count, written out
    se = L.Conv2D(16, 1, activation="sigmoid", name="se_expand")(L.Conv2D(4, 1, activation="relu")(se))
    x = L.Multiply()([x, se])
    teacher = keras.Model(inputs, L.Dense(3, name="head")(L.GlobalAveragePooling2D()(x)))
    student = shrink_teacher(teacher, 0.5)
    assert student.get_layer("se_reshape").output_shape == (None, 1, 1, 8)
    c = 8  # conv 16 -> 8, squeeze 4 -> 2, expand 16 -> 8, head kept
    assert student.count_params() == (27 * c + c) + (c * 2 + 2) + (2 * c + c) + (c * 3 + 3)
    assert student(np.zeros((2, 8, 8, 3), np.float32)).shape == (2, 3)
