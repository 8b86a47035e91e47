"""Operator order + offline memory plan written into the flatbuffer, checked in the real TFLM."""

import numpy as np
import pytest
from export_helpers import trained_looking

from edgekit.export.memory_plan import (
    OFFLINE_PLAN_METADATA,
    dataflow,
    offline_offsets,
    optimise_arena,
    plan_memory,
)
from edgekit.export.strip import strip_for_mcu
from edgekit.export.tflite import convert
from edgekit.model_io.flatbuffer import read_model, tflite_op_list, write_model
from edgekit.runners import tflm


@pytest.fixture(scope="module")
def branched():
    """name -> (int8 bytes, check inputs, Keras model) for a small ResNet and a concat + squeeze-excite net."""
    from edgekit._tf import tf_keras
    from edgekit.examples import zoo

    tf_keras().utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    out = {}
    for name, model in (("resnet", zoo.resnet8(input_shape=(16, 16, 3), classes=4, widths=(8, 16, 16))),
                        ("concat_se", zoo.concat_se_net(input_shape=(16, 16, 3), classes=4))):
        x = rng.normal(size=(12, 16, 16, 3)).astype(np.float32)
        out[name] = (convert(trained_looking(model), "int8", x, int8_io=True).tflite_bytes, x, model)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet", "concat_se"])
def test_planned_model_needs_a_smaller_arena_and_gives_identical_outputs(branched, name):
    model_bytes, x = branched[name][:2]
    planned = plan_memory(model_bytes)
    assert planned.predicted_bytes < planned.predicted_tflm_bytes
    assert planned.overlaps > 0
    offsets = offline_offsets(planned.tflite_bytes)
    assert offsets is not None and len(offsets) == len(read_model(planned.tflite_bytes).subgraphs[0].tensors)
    assert all(o == -1 or o % 16 == 0 for o in offsets)
    assert np.array_equal(tflm.predict(model_bytes, x), tflm.predict(planned.tflite_bytes, x))
    before, after = tflm.measure_arena(model_bytes), tflm.measure_arena(planned.tflite_bytes)
    # the replica of TFLM's greedy planner and the written plan are what TFLM's recorder reports
    assert before.recorded_head_bytes == planned.predicted_tflm_bytes
    assert after.recorded_head_bytes == planned.predicted_bytes
    assert after.arena_bytes <= before.arena_bytes - (planned.predicted_tflm_bytes - planned.predicted_bytes)
    assert sorted(tflite_op_list(planned.tflite_bytes)) == sorted(tflite_op_list(model_bytes))


@pytest.mark.slow
def test_tflm_reads_the_offline_plan(branched):
    """Every activation at offset 0 breaks the model: proof TFLM uses the metadata as written."""
    model_bytes, x = branched["resnet"][:2]
    planned = read_model(plan_memory(model_bytes).tflite_bytes)
    metadata = next(m for m in planned.metadata if m.name in (OFFLINE_PLAN_METADATA, OFFLINE_PLAN_METADATA.encode()))
    values = np.frombuffer(bytes(np.asarray(planned.buffers[metadata.buffer].data, np.uint8)), "<i4").copy()
    values[3:][values[3:] >= 0] = 0
    planned.buffers[metadata.buffer].data = np.frombuffer(values.tobytes(), np.uint8).copy()
    collapsed = write_model(planned)
    assert tflm.measure_arena(collapsed).recorded_head_bytes < tflm.measure_arena(model_bytes).recorded_head_bytes
    assert not np.array_equal(tflm.predict(model_bytes, x), tflm.predict(collapsed, x))


@pytest.mark.slow
def test_stripping_a_planned_model_keeps_its_plan_valid(branched):
    model_bytes, x = branched["concat_se"][:2]
    planned = plan_memory(model_bytes)
    stripped = strip_for_mcu(planned.tflite_bytes).tflite_bytes
    assert len(offline_offsets(stripped)) == len(read_model(stripped).subgraphs[0].tensors)
    assert np.array_equal(tflm.predict(model_bytes, x), tflm.predict(stripped, x))
    assert tflm.measure_arena(stripped).recorded_head_bytes == planned.predicted_bytes


@pytest.mark.slow
def test_optimise_arena_reports_each_step_measured(branched):
    model_bytes, x = branched["resnet"][:2]
    result = optimise_arena(model_bytes, x)
    names = [s.name for s in result.steps]
    assert names == ["tflm", "order", "offline plan", "overlap"]
    assert all(s.outputs_identical for s in result.steps)
    assert result.arena_bytes == tflm.measure_arena(result.tflite_bytes).arena_bytes
    assert result.arena_bytes < result.baseline_arena_bytes
    assert np.array_equal(tflm.predict(model_bytes, x), tflm.predict(result.tflite_bytes, x))


def test_without_any_option_nothing_changes_but_the_encoding(branched):
    model_bytes, _ = branched["resnet"][:2]
    planned = plan_memory(model_bytes, reorder=False, offline=False, overlap=False)
    assert offline_offsets(planned.tflite_bytes) is None
    assert planned.order == tuple(range(len(tflite_op_list(model_bytes))))
    assert planned.predicted_bytes == planned.predicted_tflm_bytes


def test_dataflow_leaves_out_constants(branched):
    model_bytes, _ = branched["resnet"][:2]
    model = read_model(model_bytes)
    graph = dataflow(model)
    tensors = model.subgraphs[0].tensors
    for index in graph.tensor_bytes:
        data = model.buffers[tensors[index].buffer].data
        assert data is None or len(data) == 0
    assert len(graph.ops) == len(tflite_op_list(model_bytes))


@pytest.mark.slow
def test_mcu_export_uses_the_plan_only_when_asked(branched):
    from edgekit.export.mcu import build_mcu_sources

    model_bytes, x = branched["concat_se"][:2]
    plain = build_mcu_sources(model_bytes, "m", check_data=x)
    planned = build_mcu_sources(model_bytes, "m", check_data=x, memory_plan=True, memory_overlap=True)
    assert offline_offsets(plain.tflite_bytes) is None
    assert offline_offsets(planned.tflite_bytes) is not None
    assert planned.arena_bytes < plain.arena_bytes
    assert planned.arena_constant_bytes < plain.arena_constant_bytes  # kTensorArenaSize follows the measurement
    assert any("offline memory plan" in note and "bit-identical" in note for note in planned.notes)
    assert np.array_equal(tflm.predict(plain.tflite_bytes, x), tflm.predict(planned.tflite_bytes, x))


@pytest.mark.parametrize("name", ["resnet", "concat_se"])
def test_prediction_from_the_keras_graph_matches_the_converted_model(branched, name):
    from edgekit.costmodel.arena_plan import predict_planned_arena
    from edgekit.ir.from_keras import from_keras

    model_bytes, _, model = branched[name]
    predicted, planned = predict_planned_arena(from_keras(model)), plan_memory(model_bytes)
    assert (predicted.tflm_bytes, predicted.peak_bytes) == (planned.predicted_tflm_bytes, planned.predicted_bytes)
    assert predicted.peak_bytes < predicted.tflm_bytes
