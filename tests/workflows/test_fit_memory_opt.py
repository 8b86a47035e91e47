"""`fit` on a TFLM device: memory optimisation in the plan's RAM and the export by default, off with
`--no-memory-opt`, and the report saying which was applied and the arena before/after."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.cli.main import main

DEVICE = "stm32h743"


@pytest.fixture(scope="module")
def branched(tmp_path_factory):
    """Two residual depthwise-separable blocks on 24x24x3, where TFLM's greedy placement wastes space (the offline
    plan saves some), with trained-looking BatchNorm and biases."""
    from edgekit._tf import tf_keras

    keras = tf_keras()
    keras.utils.set_random_seed(0)
    L = keras.layers
    x = inputs = keras.Input((24, 24, 3))
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(8, 3, strides=2, padding="same")(x)))
    for _ in range(2):
        y = L.ReLU()(L.BatchNormalization()(L.Conv2D(8, 1)(L.DepthwiseConv2D(3, padding="same")(x))))
        y = L.BatchNormalization()(L.Conv2D(8, 1)(L.DepthwiseConv2D(3, padding="same")(y)))
        x = L.Add()([x, y])
    model = keras.Model(inputs, L.Dense(4)(L.GlobalAveragePooling2D()(x)))
    rng = np.random.default_rng(0)
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            layer.set_weights([w + rng.normal(0, 0.1, w.shape).astype(w.dtype) if w.ndim == 1 else w
                               for w in weights])
    folder = tmp_path_factory.mktemp("fit_memory_opt")
    model.save(folder / "net.h5")
    x = rng.normal(size=(80, 24, 24, 3)).astype(np.float32)
    np.savez(folder / "data.npz", x=x, y=model.predict(x, verbose=0).argmax(1))
    return folder


def _fit(folder, out, *flags):
    result = CliRunner().invoke(main, ["fit", str(folder / "net.h5"), "--device", DEVICE, "--data",
                                       str(folder / "data.npz"), "--out", str(out), "--epochs", "1",
                                       "--max-accuracy-drop", "1", "--json", *flags])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.slow
def test_fit_applies_memory_optimisation_by_default_and_not_with_no_memory_opt(branched, tmp_path):
    from edgekit.runners import tflm

    on, off = _fit(branched, tmp_path / "on"), _fit(branched, tmp_path / "off", "--no-memory-opt")
    overhead = 16 * 1024  # the profile's runtime_overhead_ram_bytes
    arena_on = tflm.measure_arena((tmp_path / "on" / "model.tflite").read_bytes()).arena_bytes
    arena_off = tflm.measure_arena((tmp_path / "off" / "model.tflite").read_bytes()).arena_bytes
    assert arena_on < arena_off  # the delivered files, measured again here
    assert on["budgets"]["ram_bytes"]["measured"] == arena_on + overhead
    assert off["budgets"]["ram_bytes"]["measured"] == arena_off + overhead
    # the planner predicted less RAM with the optimisation (both plan the same original model)
    assert on["budgets"]["ram_bytes"]["predicted"] < off["budgets"]["ram_bytes"]["predicted"]
    # the report says what was applied and the arena before / after, as TFLM measured them
    applied = next(n for n in on["notes"] if n.startswith("memory optimisation:"))
    before, after = (int(v) for v in re.search(r"arena (\d+) -> (\d+) bytes", applied).groups())
    assert "offline memory plan" in applied and (before, after) == (arena_off, arena_on)
    assert any(n.startswith("memory optimisation: off") and str(arena_off) in n for n in off["notes"])
    report_md = (tmp_path / "on" / "report.md").read_text()
    assert applied in report_md
    # stm32h743 lists RAM regions: the arena went to the fastest region that holds it, named in the report
    assert any(n.startswith("RAM regions: arena") and "in dtcm (.dtcm_bss)" in n for n in on["notes"])
    assert "__attribute__((section(\".dtcm_bss\")" in (tmp_path / "on" / "mcu" / "model_arena.cc").read_text()


def test_no_memory_opt_with_a_fleet_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(main, ["fit", str(tmp_path / "m.h5"), "--device", "stm32h743,nrf52840", "--data",
                                       str(tmp_path / "d.npz"), "--out", str(tmp_path / "out"), "--no-memory-opt"])
    assert result.exit_code == 2 and "--no-memory-opt" in result.output and "Traceback" not in result.output


def test_plan_predicts_ram_with_and_without_memory_optimisation(tmp_path):
    """`plan --no-memory-opt` predicts the arena as TFLM's own planner lays it out: more by the plan's saving."""
    from edgekit._tf import tf_keras
    from edgekit.costmodel.analysis import analyze_graph
    from edgekit.costmodel.predict import planned_arena_saving_bytes
    from edgekit.examples import zoo
    from edgekit.ir.from_keras import from_keras

    tf_keras().utils.set_random_seed(0)
    model = zoo.mobilenet_v1(alpha=0.25, resolution=32, classes=2)
    model.save(tmp_path / "m.h5")
    saving = planned_arena_saving_bytes(analyze_graph(from_keras(model)))
    assert saving > 0
    predicted = {}
    for flags in ((), ("--no-memory-opt",)):
        result = CliRunner().invoke(main, ["plan", str(tmp_path / "m.h5"), "--device", DEVICE, "--out",
                                           str(tmp_path / "plan.json"), "--json", *flags])
        assert result.exit_code == 0, result.output
        plan = json.loads(result.output)
        predicted[flags] = plan["predicted"]["ram_bytes"]
    assert predicted[("--no-memory-opt",)] - predicted[()] == saving
