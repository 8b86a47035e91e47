"""Flash overhead: shared quantisation / shape / options tables and dropped all-zero conv biases."""

import numpy as np
import pytest

from edgekit.export.strip import share_vectors, size_breakdown, strip_for_mcu
from edgekit.export.tflite import convert
from edgekit.model_io.flatbuffer import ints, op_name, read_model, tensor_bytes
from edgekit.runners import tflm


@pytest.fixture(scope="module")
def separable_int8():
    """A small mini-Xception-like net: separable convs (depthwise half without bias), residual 1x1 convs."""
    from edgekit._tf import tf_keras

    keras = tf_keras()
    keras.utils.set_random_seed(0)
    L = keras.layers
    x = inputs = keras.Input((16, 16, 1))
    x = L.Conv2D(8, 3, use_bias=False)(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    for filters in (8, 16):
        r = L.BatchNormalization()(L.Conv2D(filters, 1, strides=2, padding="same", use_bias=False)(x))
        x = L.ReLU()(L.BatchNormalization()(L.SeparableConv2D(filters, 3, padding="same", use_bias=False)(x)))
        x = L.MaxPooling2D(3, strides=2, padding="same")(x)
        x = L.Add()([x, r])
    x = L.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, L.Dense(4)(x))
    rng = np.random.default_rng(0)
    for layer in model.layers:  # trained-looking BatchNorm statistics: folded biases are not zero
        if isinstance(layer, L.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape) if i in (0, 3) else rng.normal(0, 0.1, w.shape)
                               for i, w in enumerate(layer.get_weights())])
    samples = rng.normal(size=(16, 16, 16, 1)).astype(np.float32)
    return convert(model, "int8", samples, int8_io=True).tflite_bytes, samples


def _op_view(model_bytes):
    """Per op: its name and, per input / output slot, (shape, scale, zero point, data) of the tensor."""
    model = read_model(model_bytes)
    subgraph = model.subgraphs[0]
    view = []
    for operator in subgraph.operators:
        slots = []
        for t in ints(operator.inputs) + ints(operator.outputs):
            tensor = subgraph.tensors[t]
            q = tensor.quantization
            data = tensor_bytes(model, subgraph, t)
            slots.append((tuple(ints(tensor.shape)), tuple(np.asarray(q.scale).tolist()) if q and q.scale is not None
                          else (), tuple(ints(q.zeroPoint)) if q else (), None if data is None else data.tobytes()))
        view.append((op_name(model, operator), slots))
    return view


def test_sharing_keeps_every_value_and_tflm_outputs(separable_int8):
    model_bytes, samples = separable_int8
    plain = strip_for_mcu(model_bytes, share=False).tflite_bytes
    shared = share_vectors(plain)
    assert _op_view(shared) == _op_view(plain)  # every op reads the same shapes, scales, zero points, data
    assert len(shared) < len(plain)
    assert size_breakdown(shared).quantization_bytes < size_breakdown(plain).quantization_bytes
    assert np.array_equal(tflm.predict(plain, samples), tflm.predict(shared, samples))


def test_only_all_zero_conv_biases_are_dropped(separable_int8):
    model_bytes, samples = separable_int8
    before, after = _op_view(model_bytes), _op_view(strip_for_mcu(model_bytes).tflite_bytes)
    dropped = 0
    for (name, slots_before), (name_after, slots_after) in zip(before, after, strict=True):
        assert name == name_after
        if len(slots_before) != len(slots_after):
            bias = slots_before[2][3]
            assert name in ("CONV_2D", "DEPTHWISE_CONV_2D") and not any(bias)
            assert slots_after == slots_before[:2] + slots_before[3:]
            dropped += 1
        else:
            assert slots_after == slots_before
    assert dropped == 2  # the depthwise half of each separable conv; BatchNorm-folded biases stay
    result = strip_for_mcu(model_bytes)
    assert np.array_equal(tflm.predict(model_bytes, samples), tflm.predict(result.tflite_bytes, samples))
    assert result.after.overhead_bytes < strip_for_mcu(model_bytes, share=False).after.overhead_bytes


def test_litert_refusal_of_a_stripped_file_says_to_use_tflm(separable_int8):
    """LiteRT's conv kernels require the bias input strip_for_mcu drops: one line that names the way out."""
    from edgekit.errors import BadInputError
    from edgekit.runners.litert import LiteRTRunner

    model_bytes, _ = separable_int8
    assert LiteRTRunner(runs=1, warmup=0).run(model_bytes).latency_ms_p50 > 0  # the unstripped file runs
    with pytest.raises(BadInputError, match="--runner tflm") as info:
        LiteRTRunner(runs=1, warmup=0).run(strip_for_mcu(model_bytes).tflite_bytes)
    assert "\n" not in str(info.value)
