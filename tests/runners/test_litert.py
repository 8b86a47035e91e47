import numpy as np
import pytest

from edgekit.errors import BadInputError
from edgekit.export.tflite import convert
from edgekit.runners.base import Runner, dequantize, latency_percentiles_ms, quantize
from edgekit.runners.litert import LiteRTRunner, predict


@pytest.fixture(scope="module")
def float32_bytes(tiny_conv1d_model):
    return convert(tiny_conv1d_model, "float32").tflite_bytes


@pytest.fixture(scope="module")
def int8_io_bytes(tiny_conv1d_model, mnist1d_sample):
    return convert(tiny_conv1d_model, "int8", mnist1d_sample.x_train, int8_io=True).tflite_bytes


def test_predict_matches_keras_for_any_batch_size(float32_bytes, tiny_conv1d_model, mnist1d_sample):
    x = mnist1d_sample.x_test[:37]
    expected = tiny_conv1d_model.predict(x, verbose=0)
    batched = predict(float32_bytes, x, batch_size=16)  # 16 + 16 + 5 (zero-padded last batch)
    one_by_one = predict(float32_bytes, x, batch_size=1)
    assert batched.shape == (37, 10)
    np.testing.assert_allclose(batched, expected, atol=1e-4)
    np.testing.assert_allclose(one_by_one, batched, atol=1e-5)
    np.testing.assert_allclose(predict(float32_bytes, x[0]), expected[:1], atol=1e-4)  # a single sample


def test_predict_quantises_int8_io_with_the_tensor_scale(int8_io_bytes, tiny_conv1d_model, mnist1d_sample):
    from ai_edge_litert.interpreter import Interpreter

    x = mnist1d_sample.x_test[:20]
    interpreter = Interpreter(model_content=int8_io_bytes)
    interpreter.allocate_tensors()
    in_detail, out_detail = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    (in_scale, in_zero), (out_scale, out_zero) = in_detail["quantization"], out_detail["quantization"]
    # by hand, sample 3: quantise, invoke, dequantise
    q = np.clip(np.round(x[3:4] / in_scale) + in_zero, -128, 127).astype(np.int8)
    interpreter.set_tensor(in_detail["index"], q)
    interpreter.invoke()
    by_hand = (interpreter.get_tensor(out_detail["index"]).astype(np.float32) - out_zero) * out_scale
    found = predict(int8_io_bytes, x)
    np.testing.assert_allclose(found[3:4], by_hand, atol=1e-6)
    # and the dequantised logits sit near Keras' (within a few output steps on average)
    assert np.mean(np.abs(found - tiny_conv1d_model.predict(x, verbose=0))) < 4 * out_scale


def test_predict_rejects_samples_of_the_wrong_shape(float32_bytes):
    with pytest.raises(BadInputError, match=r"\(N, 40, 1\)"):
        predict(float32_bytes, np.zeros((3, 40)))


def test_runner_measures_ordered_percentiles_and_returns_outputs(int8_io_bytes, mnist1d_sample):
    runner = LiteRTRunner(threads=1, warmup=2, runs=30)
    assert isinstance(runner, Runner)
    x = mnist1d_sample.x_test[:25]
    m = runner.run(int8_io_bytes, x)
    assert m.runner == "litert" and m.runs == 30 and m.threads == 1
    assert m.model_size_bytes == len(int8_io_bytes)
    assert 0 < m.latency_ms_p50 <= m.latency_ms_p90 <= m.latency_ms_p99
    assert m.latency_ms_p99 < 1000 and m.init_ms > 0  # an 8k-parameter model, not a hang
    assert m.arena_bytes is None
    np.testing.assert_array_equal(m.outputs, predict(int8_io_bytes, x))
    assert runner.run(int8_io_bytes).outputs is None  # no data: zeros are timed, nothing returned


def test_runner_rejects_bad_settings():
    with pytest.raises(ValueError, match="runs=0"):
        LiteRTRunner(runs=0)


def test_latency_percentiles_interpolate_linearly():
    assert latency_percentiles_ms(list(range(1, 101))) == pytest.approx((50.5, 90.1, 99.01))
    assert latency_percentiles_ms([3.0]) == (3.0, 3.0, 3.0)
    with pytest.raises(ValueError):
        latency_percentiles_ms([])


def test_quantize_rounds_offsets_and_saturates():
    x = np.array([0.5, -1.0, 100.0, -100.0, 0.74, 0.25, -0.25])
    q = quantize(x, np.dtype(np.int8), scale=0.5, zero_point=3)
    assert q.tolist() == [4, 1, 127, -128, 4, 4, 2]  # ties (+-0.5 steps) round away from zero, as TFLite
    assert dequantize(q, 0.5, 3).tolist() == [0.5, -1.0, 62.0, -65.5, 0.5, 0.5, -0.5]


def test_interleaved_timing_ranks_a_100x_bigger_model_slower():
    from edgekit.examples import zoo
    from edgekit.export.tflite import convert
    from edgekit.runners.litert import interleaved_median_ms

    small = convert(zoo.mlp(inputs=16, hidden=(8,), classes=4), "float32").tflite_bytes
    large = convert(zoo.mlp(inputs=16, hidden=(1024, 1024), classes=4), "float32").tflite_bytes
    x = np.random.default_rng(0).standard_normal((1, 16)).astype("float32")
    t_small, t_large = interleaved_median_ms([small, large], x, rounds=3, invokes=20)
    assert 0 < t_small < t_large
