"""`edgekit export --device <MCU>`: memory optimisation on by default, proven in the real TFLM interpreter."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from export_helpers import trained_looking

from edgekit.cli.main import main
from edgekit.export.memory_plan import offline_offsets
from edgekit.runners import tflm

DEVICE = "stm32h743"  # a TFLite Micro profile


@pytest.fixture(scope="module")
def branched(tmp_path_factory):
    """A saved residual SeparableConv net (branched: two Adds) and its .npz, with trained-looking BatchNorm."""
    from edgekit._tf import tf_keras
    from edgekit.examples import zoo

    tf_keras().utils.set_random_seed(0)
    model = trained_looking(zoo.xception_like(input_shape=(16, 16, 3), classes=4, width=8))
    rng = np.random.default_rng(1)
    folder = tmp_path_factory.mktemp("memory_opt")
    model.save(folder / "net.h5")
    x = rng.normal(size=(60, 16, 16, 3)).astype(np.float32)
    np.savez(folder / "data.npz", x=x, y=rng.integers(0, 4, 60))
    return folder, x


def _export(folder, out, *flags):
    result = CliRunner().invoke(main, ["export", str(folder / "net.h5"), "--device", DEVICE, "--out", str(out),
                                       "--data", str(folder / "data.npz"), "--min-agreement", "0", "--json",
                                       *flags])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["mcu"]


@pytest.mark.slow
def test_default_export_needs_a_smaller_tflm_arena_with_bit_identical_outputs(branched, tmp_path):
    folder, x = branched
    optimised, plain = tmp_path / "opt.tflite", tmp_path / "plain.tflite"
    on, off = _export(folder, optimised), _export(folder, plain, "--no-memory-opt")
    assert off["memory_optimisation"] is None and offline_offsets(plain.read_bytes()) is None
    memory = on["memory_optimisation"]
    assert "offline memory plan" in memory["applied"]
    assert not any("overlap" in step["name"] for step in memory["steps"])  # opt-in only (--memory-overlap)
    # both arenas as the real interpreter measures them on the written files
    assert tflm.measure_arena(optimised.read_bytes()).arena_bytes == on["arena_bytes"]
    assert tflm.measure_arena(plain.read_bytes()).arena_bytes == off["arena_bytes"]
    assert on["arena_bytes"] < off["arena_bytes"]
    assert memory["arena_after_bytes"] == on["arena_bytes"]
    applied = [s for s in memory["steps"] if s["applied"]]
    assert all(s["outputs_identical"] and s["arena_after_bytes"] < s["arena_before_bytes"] for s in applied)
    assert applied[-1]["flash_after_bytes"] == optimised.stat().st_size
    # vector sharing (on by default) more than pays for the plan's metadata
    assert optimised.stat().st_size < plain.stat().st_size
    assert np.array_equal(tflm.predict(optimised.read_bytes(), x), tflm.predict(plain.read_bytes(), x))


def test_overlap_without_memory_optimisation_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(main, ["export", str(tmp_path / "missing.h5"), "--device", DEVICE, "--out",
                                       str(tmp_path / "m.tflite"), "--no-memory-opt", "--memory-overlap"])
    assert result.exit_code == 2
    assert "--memory-overlap" in result.output and "Traceback" not in result.output
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_predicted_ram_counts_the_memory_plan_the_export_applies():
    """The planner's RAM prediction for a TFLM profile includes the offline plan's saving, which TFLM delivers."""
    from edgekit._tf import tf_keras
    from edgekit.costmodel.analysis import analyze_graph
    from edgekit.costmodel.predict import planned_arena_saving_bytes, predicted_costs
    from edgekit.examples import zoo
    from edgekit.export.mcu import build_mcu_sources
    from edgekit.export.memory_plan import plan_memory
    from edgekit.export.tflite import convert
    from edgekit.ir.from_keras import from_keras
    from edgekit.profiles import load_profile

    tf_keras().utils.set_random_seed(0)
    x = np.random.default_rng(1).normal(size=(16, 32, 32, 3)).astype(np.float32)
    model = zoo.mobilenet_v1(alpha=0.25, resolution=32, classes=2)  # greedy placement wastes space here
    int8 = convert(model, "int8", x, int8_io=True).tflite_bytes
    profile = load_profile(DEVICE)
    analysis = analyze_graph(from_keras(model))
    saving = planned_arena_saving_bytes(analysis)
    planned = plan_memory(int8, overlap=False)
    assert saving == planned.predicted_tflm_bytes - planned.predicted_bytes > 0  # Keras graph vs converted file
    with_plan, without = (predicted_costs(analysis, profile, "int8", memory_opt=m)["ram_bytes"][0] for m in (1, 0))
    assert without - with_plan == saving
    mcu = build_mcu_sources(int8, "m", check_data=x, memory_plan=True, memory_overlap=False)
    assert "offline memory plan" in mcu.memory.applied
    assert mcu.memory.baseline_arena_bytes - mcu.arena_bytes >= saving  # TFLM saves at least the prediction
    overhead = profile.cost_model.runtime_overhead_ram_bytes
    assert abs(with_plan - overhead - mcu.arena_bytes) < abs(without - overhead - mcu.arena_bytes)
