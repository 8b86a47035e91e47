"""Patch-based execution rewritten in stock ops: bit-identical in TFLM and LiteRT, smaller arena, MACs counted."""

import numpy as np
import pytest
from export_helpers import trained_looking

from edgekit.errors import UnsupportedModelError
from edgekit.export.memory_plan import PATCHES_STEP, optimise_for_mcu, plan_memory
from edgekit.export.patch_search import best_patching, model_macs
from edgekit.export.patches import patch_model
from edgekit.export.tflite import convert
from edgekit.model_io.flatbuffer import tflite_op_list
from edgekit.runners import litert, tflm


def _chain(explicit_padding: bool):
    """64x64x3 -> conv -> dw s2 -> pw -> expand x4 -> dw s2 -> project -> conv s2 -> GAP -> dense: a
    MobileNetV2-like stage on a large map with few channels. Stride-2 ops behind ZeroPadding2D(1) with VALID
    padding (kept as PAD ops: not SAME's amounts) or with SAME padding."""
    from edgekit._tf import tf_keras

    keras = tf_keras()
    L = keras.layers
    x = inputs = keras.Input((64, 64, 3))

    def strided(layer_type, x, **kw):
        if explicit_padding:
            return layer_type(strides=2, padding="valid", **kw)(L.ZeroPadding2D(1)(x))
        return layer_type(strides=2, padding="same", **kw)(x)

    x = L.ReLU(6.0)(L.BatchNormalization()(L.Conv2D(16, 3, padding="same", use_bias=False)(x)))
    x = L.ReLU(6.0)(strided(L.DepthwiseConv2D, x, kernel_size=3))
    x = L.Conv2D(8, 1)(x)
    x = L.ReLU(6.0)(L.Conv2D(32, 1)(x))
    x = L.ReLU(6.0)(strided(L.DepthwiseConv2D, x, kernel_size=3))
    x = L.Conv2D(8, 1)(x)
    x = L.ReLU()(L.Conv2D(16, 3, strides=2, padding="same")(x))
    x = L.Dense(4)(L.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, x)


def _stage_end(tflite_bytes: bytes) -> int:
    """Ops through the projection after the stride-2 depthwise (the stage MobileNetV2 would patch)."""
    ops = tflite_op_list(tflite_bytes)
    return [i for i, op in enumerate(ops) if op == "DEPTHWISE_CONV_2D"][1] + 2


@pytest.fixture(scope="module")
def chains():
    from edgekit._tf import tf_keras

    tf_keras().utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(10, 64, 64, 3)).astype(np.float32)
    return {name: convert(trained_looking(_chain(name == "explicit")), "int8", x, int8_io=True).tflite_bytes
            for name in ("same", "explicit")}, x


@pytest.mark.slow
@pytest.mark.parametrize("name", ["same", "explicit"])
@pytest.mark.parametrize("grid", [(2, 2), (4, 1)])
def test_patched_outputs_are_bit_identical_in_tflm_and_litert(chains, name, grid):
    models, x = chains
    original = models[name]
    assert ("PAD" in tflite_op_list(original)) == (name == "explicit")
    patched = patch_model(original, _stage_end(original), grid)
    ops = tflite_op_list(patched.tflite_bytes)
    assert ops.count("SLICE") == grid[0] * grid[1] and "CONCATENATION" in ops
    assert np.array_equal(tflm.predict(original, x), tflm.predict(patched.tflite_bytes, x))
    assert np.array_equal(litert.predict(original, x), litert.predict(patched.tflite_bytes, x))
    # the cost model's overlap MACs are what the rewritten flatbuffer counts
    assert model_macs(patched.tflite_bytes) - model_macs(original) == patched.extra_macs > 0


@pytest.mark.slow
def test_patching_shrinks_the_measured_arena(chains):
    models, _ = chains
    original = models["same"]
    patched = patch_model(original, _stage_end(original), (2, 2))
    # both with edgekit's offline plan (outputs overlapping dying inputs), as the MCU export stores it
    before = tflm.measure_arena(plan_memory(original).tflite_bytes)
    after = tflm.measure_arena(plan_memory(patched.tflite_bytes, reorder=False).tflite_bytes)
    # unpatched, the 64x64x3 input and the 64x64x16 map are alive together, less what overlaps
    assert before.recorded_head_bytes >= 64 * 64 * 16
    assert after.recorded_head_bytes < 0.7 * before.recorded_head_bytes
    assert after.recorded_tail_bytes > before.recorded_tail_bytes  # each op copy costs TFLM bookkeeping
    assert after.arena_bytes < 0.85 * before.arena_bytes


@pytest.mark.slow
def test_mcu_memory_step_keeps_a_bit_identical_smaller_patching_under_the_mac_cap(chains):
    models, x = chains
    original = models["same"]
    memory = optimise_for_mcu(original, x[:4])
    step = memory.steps[-1]
    assert step.name == PATCHES_STEP and step.applied and step.outputs_identical
    assert memory.arena_bytes == step.arena_after_bytes < step.arena_before_bytes <= memory.baseline_arena_bytes
    macs = model_macs(original)
    assert 0 < memory.extra_macs == step.extra_macs <= 0.15 * macs
    assert model_macs(memory.tflite_bytes) - macs == memory.extra_macs  # what the kept model runs
    assert "SLICE" in tflite_op_list(memory.tflite_bytes)
    assert np.array_equal(tflm.predict(original, x), tflm.predict(memory.tflite_bytes, x))
    assert tflm.measure_arena(memory.tflite_bytes).arena_bytes == memory.arena_bytes


@pytest.mark.slow
def test_residual_inside_the_stage_is_refused_with_the_reason():
    from edgekit._tf import tf_keras

    keras = tf_keras()
    L = keras.layers
    inputs = keras.Input((16, 16, 3))
    stem = L.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = L.add([stem, L.Conv2D(8, 3, padding="same")(stem)])
    model = keras.Model(inputs, L.Dense(2)(L.GlobalAveragePooling2D()(x)))
    x = np.random.default_rng(1).normal(size=(4, 16, 16, 3)).astype(np.float32)
    int8 = convert(model, "int8", x, int8_io=True).tflite_bytes
    with pytest.raises(UnsupportedModelError, match="also used elsewhere"):
        patch_model(int8, 3, (2, 2))
    found = best_patching(int8, x)
    assert not found.applied and found.arena_bytes is None and "also used elsewhere" in found.why
    pooled = keras.Model(inputs, L.Dense(2)(L.Flatten()(L.MaxPooling2D(4)(stem))))
    int8 = convert(pooled, "int8", x, int8_io=True).tflite_bytes
    with pytest.raises(UnsupportedModelError, match="MAX_POOL_2D is not supported"):
        patch_model(int8, 2, (2, 2))
