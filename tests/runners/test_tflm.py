import numpy as np
import pytest

from edgekit.errors import BadInputError, UnsupportedModelError
from edgekit.export.tflite import convert
from edgekit.runners import litert, tflm


@pytest.fixture(scope="module")
def int8_bytes(tiny_conv1d_model, mnist1d_sample):
    return convert(tiny_conv1d_model, "int8", mnist1d_sample.x_train).tflite_bytes


@pytest.fixture(scope="module")
def arena(int8_bytes):
    return tflm.measure_arena(int8_bytes)


def _small_dense_int8():
    """Dense(16) -> Dense(4) on 8 inputs: almost no activations, so prepare-time scratch dominates."""
    from edgekit._tf import tf_keras

    keras = tf_keras()
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.Dense(16, activation="relu")(inputs)))
    data = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
    return convert(model, "int8", data).tflite_bytes


def test_bisected_arena_is_the_exact_minimum(arena, int8_bytes, mnist1d_sample):
    x = mnist1d_sample.x_test[:3]
    # the recording is verified by one probe after the first (large) one, no bisection from zero
    assert arena.arena_bytes > 0 and arena.probes == 2
    # checked here in this process, independently of the child process that bisected
    assert tflm.predict(int8_bytes, x, arena_size=arena.arena_bytes).shape == (3, 10)
    # exact up to the arena buffer's alignment, which differs between processes (up to 15 bytes lost)
    smaller = arena.arena_bytes - tflm.ARENA_ALIGNMENT_BYTES
    with pytest.raises(tflm.ArenaTooSmallError, match=f"{smaller} byte arena"):
        tflm.predict(int8_bytes, x, arena_size=smaller)


def test_recording_is_a_lower_bound_equal_when_activations_dominate(arena):
    # the relation found: recorded total <= bisected minimum; equal for this conv model, whose
    # planned activations (head) outgrow the scratch its kernels borrow while preparing
    assert arena.recorded_total_bytes == arena.recorded_head_bytes + arena.recorded_tail_bytes
    assert arena.bisected_minus_recorded_bytes == arena.arena_bytes - arena.recorded_total_bytes == 0
    # head holds the largest pair of live int8 activations: conv1 output (40x16) + conv2 output (20x32)
    assert arena.recorded_head_bytes >= 40 * 16 + 20 * 32
    names = [s.name for s in arena.sections]
    assert "NodeAndRegistration struct" in names and "TfLiteEvalTensor data" in names
    assert sum(s.used_bytes for s in arena.sections) <= arena.recorded_tail_bytes
    assert all(s.used_bytes >= s.requested_bytes for s in arena.sections)


def test_recording_undercounts_when_prepare_scratch_dominates():
    small = tflm.measure_arena(_small_dense_int8())
    assert small.recorded_total_bytes < small.arena_bytes
    assert small.bisected_minus_recorded_bytes == small.arena_bytes - small.recorded_total_bytes


def test_parse_allocation_report():
    text = (
        "[RecordingMicroAllocator] Arena allocation total 9376 bytes\r\n"
        "[RecordingMicroAllocator] Arena allocation head 5120 bytes\r\n"
        "[RecordingMicroAllocator] Arena allocation tail 4256 bytes\r\n"
        "[RecordingMicroAllocator] 'Persistent buffer data' used 360 bytes with alignment overhead "
        "(requested 312 bytes for 8 allocations)\r\n"
    )
    total, head, tail, sections = tflm.parse_allocation_report(text)
    assert (total, head, tail) == (9376, 5120, 4256)
    assert sections == (tflm.ArenaSection("Persistent buffer data", 360, 312, 8),)
    with pytest.raises(ValueError, match="total"):
        tflm.parse_allocation_report("nothing here")


def test_tflm_outputs_agree_with_litert_int8(int8_bytes, mnist1d_sample):
    x = mnist1d_sample.x_test
    on_tflm = tflm.predict(int8_bytes, x)
    on_litert = litert.predict(int8_bytes, x)
    # same int8 graph, different kernels (reference vs XNNPACK): at most a couple of output steps apart
    assert np.max(np.abs(on_tflm - on_litert)) <= 2 * _output_scale(int8_bytes) + 1e-6
    assert np.mean(on_tflm.argmax(axis=1) == on_litert.argmax(axis=1)) >= 0.98


def _output_scale(tflite_bytes):
    """Scale of the int8 tensor feeding the final DEQUANTIZE (the logits' quantisation step)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite_bytes)
    scales = [d["quantization"][0] for d in interpreter.get_tensor_details()
              if d["dtype"] == np.int8 and tuple(d["shape"]) == (1, 10)]
    return max(scales)


def test_runner_reports_arena_latency_and_outputs(int8_bytes, arena, mnist1d_sample):
    x = mnist1d_sample.x_test[:10]
    m = tflm.TFLMRunner(warmup=1, runs=15).run(int8_bytes, x)
    assert m.runner == "tflm" and m.runs == 15
    assert m.arena_bytes == arena.arena_bytes
    assert 0 < m.latency_ms_p50 <= m.latency_ms_p90 <= m.latency_ms_p99
    np.testing.assert_array_equal(m.outputs, tflm.predict(int8_bytes, x))
    assert any("not a microcontroller" in note for note in m.notes)


def test_missing_kernel_is_named():
    from edgekit._tf import tensorflow, tf_keras

    tf, keras = tensorflow(), tf_keras()
    inputs = keras.Input((12,))
    top3 = keras.layers.Lambda(lambda t: tf.math.top_k(t, k=3).values)(keras.layers.Dense(12)(inputs))
    tflite_bytes = convert(keras.Model(inputs, top3), "float32").tflite_bytes
    with pytest.raises(UnsupportedModelError, match="no kernel for op TOPK_V2"):
        tflm.measure_arena(tflite_bytes)
    with pytest.raises(UnsupportedModelError, match="no kernel for op TOPK_V2"):
        tflm.predict(tflite_bytes, np.zeros((1, 12), np.float32))


def test_float16_weights_are_refused_naming_the_op(tiny_conv1d_model):
    float16 = convert(tiny_conv1d_model, "float16").tflite_bytes
    with pytest.raises(UnsupportedModelError, match="cannot prepare op DEQUANTIZE"):
        tflm.measure_arena(float16)


def test_probe_worker_survives_a_segfaulting_arena(int8_bytes, tmp_path):
    # An arena of a few dozen bytes crashes TFLM (segfault), which is why probing happens in a child.
    path = tmp_path / "m.tflite"
    path.write_bytes(int8_bytes)
    worker = tflm._ProbeWorker(str(path))
    try:
        crashed = worker.probe(64)
        assert not crashed.ok and crashed.crashed and crashed.exit_code == -11  # SIGSEGV
        recovered = worker.probe(1 << 16)  # a fresh child takes over
        assert recovered.ok and "Arena allocation total" in recovered.log
    finally:
        worker.close()


def test_non_tflite_bytes_are_refused_before_tflm_sees_them():
    junk = b"\x00" * 64
    with pytest.raises(BadInputError, match="not a TFLite flatbuffer"):
        tflm.measure_arena(junk)
    with pytest.raises(BadInputError, match="not a TFLite flatbuffer"):
        tflm.predict(junk, np.zeros((1, 4)))
