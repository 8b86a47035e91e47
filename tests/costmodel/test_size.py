"""Flash and TFLite Micro arena predictions (edgekit.costmodel.size): pure checks on IR graphs, and one run
against real conversions and TFLM's own allocator (slow)."""

from __future__ import annotations

import pytest
from test_latency import IRNet, _padded_mobilenet_block, ds_cnn

from edgekit.costmodel.size import estimate_tflite_bytes, estimate_tflm_arena
from edgekit.ir.lowering import fold_same_padding


def test_arena_head_matches_tflms_plan_for_int8_and_float_io():
    graph = IRNet((32,)).dense(16).graph()
    # TFLM's recording allocator reports head 48 B (int8 I/O: 32 B in + 16 B out) and 160 B with float I/O:
    # the float input (128 B) is dead once QUANTIZE ran, so the float output (64 B) reuses its space
    assert estimate_tflm_arena(graph, float_io=False).head_bytes == 48
    assert estimate_tflm_arena(graph, float_io=True).head_bytes == 160


def test_float_io_adds_the_float_buffers_and_two_ops():
    graph = ds_cnn(16, resolution=32)
    int8_io, float_io = estimate_tflm_arena(graph, float_io=False), estimate_tflm_arena(graph, float_io=True)
    # the float input (32x32x3x4 B) lives with its int8 copy at QUANTIZE; the stem output is smaller
    assert float_io.head_bytes == 32 * 32 * 3 * 4 + 32 * 32 * 3
    assert int8_io.head_bytes < float_io.head_bytes
    # tail: 2 more tensors, 2 more ops with their op data, no int8 quantisation data for the I/O tensors
    assert float_io.tail_bytes - int8_io.tail_bytes == 2 * 24 + 2 * 88 + 2 * 32 - 2 * 32
    assert estimate_tflm_arena(graph) == int8_io  # the default: int8 I/O, as edgekit export makes it for TFLM


def test_zero_padding_folded_into_the_conv_costs_no_arena():
    padded = _padded_mobilenet_block(((0, 1), (0, 1)), size=32)
    folded = fold_same_padding(padded)
    assert estimate_tflm_arena(padded) == estimate_tflm_arena(folded)
    assert estimate_tflite_bytes(padded, "int8") == estimate_tflite_bytes(folded, "int8")
    kept = _padded_mobilenet_block(((1, 1), (1, 1)), size=32)  # not SAME for stride 2: the PAD stays
    assert estimate_tflm_arena(padded, float_io=False).head_bytes == 32 * 32 * 8 + 16 * 16 * 8
    assert estimate_tflm_arena(kept, float_io=False).head_bytes == 32 * 32 * 8 + 34 * 34 * 8


def test_flash_orders_precisions_by_weight_bytes():
    graph = ds_cnn(64, resolution=32)
    sizes = {p: estimate_tflite_bytes(graph, p) for p in ("float32", "float16", "dynamic_int8", "int8")}
    assert sizes["float32"].weight_bytes == 2 * sizes["float16"].weight_bytes
    assert sizes["int8"].flash_bytes < sizes["float16"].flash_bytes < sizes["float32"].flash_bytes
    assert all(s.flash_bytes == s.weight_bytes + s.overhead_bytes for s in sizes.values())


def _trained_looking(model, seed=0):
    """Random biases and BatchNorm statistics: the converter drops all-zero dense biases."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        for i, w in enumerate(layer.weights):
            if w.name.split("/")[-1].split(":")[0] in ("bias", "beta", "moving_mean"):
                weights[i] = rng.normal(0, 0.1, weights[i].shape).astype("float32")
        layer.set_weights(weights)
    return model


@pytest.mark.slow
def test_predictions_against_real_conversions_and_tflm():
    from edgekit.examples import zoo
    from edgekit.export.tflite import convert
    from edgekit.ir.from_keras import from_keras
    from edgekit.runners.tflm import measure_arena

    models = {
        "conv1d": zoo.conv1d_net(width=24, depth=2, batchnorm=True),
        "mlp": zoo.mlp(inputs=48, hidden=(96, 32)),
        "dscnn": zoo.dscnn(width=24, blocks=2, input_shape=(25, 10, 1)),
    }
    for name, model in models.items():
        graph = from_keras(_trained_looking(model))
        for int8_io in (False, True):
            tflite = convert(model, "int8", int8_io=int8_io).tflite_bytes
            measured = measure_arena(tflite).arena_bytes
            predicted = estimate_tflm_arena(graph, float_io=not int8_io).arena_bytes
            # within 5 %, or a few hundred bytes of allocator state on these 3-10 KB arenas (the zoo's larger
            # arenas come within 0.1 % median: benchmarks/ram_model.py)
            assert abs(predicted - measured) <= max(0.05 * measured, 400), (
                f"{name} int8_io={int8_io}: predicted {predicted}, TFLM {measured}"
            )
        for precision in ("float32", "int8"):
            real = len(convert(model, precision).tflite_bytes)
            assert estimate_tflite_bytes(graph, precision).flash_bytes == pytest.approx(real, rel=0.15), (
                f"{name} {precision}"
            )
