"""`edgekit plan` on real tf_keras models: plans that fit a phone, a board and a microcontroller, checked by
rebuilding the planned model (and, on the MCU, converting it and measuring the TFLite Micro arena); the
impossible case (exit 3, nothing written); planning with data.

Budgets are set relative to each model's own predicted cost, so the plans stay non-trivial when the cost
model is refined.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.budgets import BUDGET_KEYS
from edgekit.channels.groups import build_groups
from edgekit.cli.main import main
from edgekit.costmodel.analysis import analyze_graph
from edgekit.costmodel.predict import predicted_costs
from edgekit.ir.from_keras import from_keras
from edgekit.planner.evaluate import realize
from edgekit.planner.plan_json import candidate_from_dict
from edgekit.profiles import load_profile

MODELS = {"resnet8": {}, "dscnn": {"width": 32}, "conv1d": {"width": 32}, "mlp": {}}
OPTION = {"flash_bytes": "--max-flash", "ram_bytes": "--max-ram", "latency_ms": "--max-latency-ms",
          "energy_mj": "--max-energy-mj"}

# (device, model, {budget: share of the original model's predicted cost at the preferred precision})
CASES = [
    ("pixel7", "resnet8", {"latency_ms": 0.6}),
    ("pixel7", "dscnn", {"flash_bytes": 0.9}),
    ("pixel7", "mlp", {}),                               # default phone budgets: fits as it is
    ("raspberry-pi-4", "resnet8", {"latency_ms": 0.6}),
    ("raspberry-pi-4", "dscnn", {"energy_mj": 0.75}),
    ("raspberry-pi-4", "mlp", {"flash_bytes": 0.7}),
    ("nrf52840", "resnet8", {}),                         # default MCU budgets: 1.6 s predicted > 500 ms
    ("nrf52840", "dscnn", {"latency_ms": 0.7}),
    ("nrf52840", "conv1d", {"ram_bytes": 0.95}),
]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """name -> (path of the saved .h5, the tf_keras model)."""
    from edgekit._tf import tf_keras
    from edgekit.examples import zoo

    tf_keras().utils.set_random_seed(0)
    folder = tmp_path_factory.mktemp("plan_models")
    out = {}
    for name, kwargs in MODELS.items():
        model = zoo.build(name, **kwargs)
        path = folder / f"{name}.h5"
        model.save(path)
        out[name] = (str(path), model)
    return out


def _predicted(model, profile, precision: str) -> dict[str, float]:
    return {k: v for k, (v, _) in predicted_costs(analyze_graph(from_keras(model)), profile, precision).items()}


def _overrides(model, profile, shares: dict[str, float]) -> list[str]:
    original = _predicted(model, profile, profile.precision_preferred)
    args = []
    for key, share in shares.items():
        value = original[key] * share
        args += [OPTION[key], f"{int(value)}" if key.endswith("_bytes") else f"{value:.6g}"]
    return args


def _plan(args, tmp_path) -> tuple[dict, object]:
    out = tmp_path / "plan.json"
    result = CliRunner().invoke(main, ["plan", *args, "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert json.loads(out.read_text()) == plan
    return plan, out


@pytest.mark.slow
@pytest.mark.parametrize("device, name, shares", CASES, ids=[f"{d}-{m}" for d, m, _ in CASES])
def test_plan_fits_each_device(saved, tmp_path, device, name, shares):
    path, model = saved[name]
    profile = load_profile(device)
    plan, _ = _plan([path, "--device", device, *_overrides(model, profile, shares)], tmp_path)
    assert set(plan["budgets"]) == set(plan["predicted"]) == set(BUDGET_KEYS)
    limits = {k: v for k, v in plan["budgets"].items() if v is not None}
    for key, limit in limits.items():
        assert plan["predicted"][key] <= limit and plan["fits"][key] is True, key
    assert plan["binding_budget"] == max(limits, key=lambda k: plan["predicted"][k] / limits[k])
    if shares:  # the original model is over the tightened budget, so the plan must change it
        assert plan["kind"] != "original"
    else:
        assert plan["kind"] in ("original", "pruned")
    assert plan["explanation"] and len(plan["candidates"]) >= 2 - (not shares)

    # rebuild the planned network from plan.json alone and predict it again
    chosen = candidate_from_dict(plan["chosen"])
    net = realize(model, build_groups(from_keras(model)), chosen)
    again = _predicted(net, profile, plan["precision"])
    for key in BUDGET_KEYS:
        assert again[key] == pytest.approx(plan["predicted"][key], rel=1e-9), key
    if chosen.kind == "pruned":
        widths = {n.name: from_keras(net).tensors[n.outputs[0]].channels for n in from_keras(net).nodes}
        for layer in plan["layers"]:
            assert widths[layer["name"]] == layer["channels_after"]
            if layer["kept_channels"] is not None:
                assert len(layer["kept_channels"]) == layer["channels_after"] < layer["channels_before"]

    if profile.runtime == "tflm":  # the real thing: convert and measure the TFLite Micro arena
        from edgekit.export.tflite import convert
        from edgekit.runners.tflm import measure_arena

        x = np.random.default_rng(0).standard_normal((32, *model.input_shape[1:])).astype("float32")
        tflite = convert(net, plan["precision"], x, int8_io=plan["precision"] == "int8").tflite_bytes  # as exported
        assert len(tflite) <= limits["flash_bytes"]
        arena = measure_arena(tflite).arena_bytes
        assert arena + profile.cost_model.runtime_overhead_ram_bytes <= limits["ram_bytes"]


@pytest.mark.slow
def test_plan_table_names_the_choice_and_the_binding_budget(saved, tmp_path):
    path, model = saved["dscnn"]
    profile = load_profile("nrf52840")
    out = tmp_path / "plan.json"
    args = ["plan", path, "--device", "nrf52840", "--no-students", "--out", str(out),
            *_overrides(model, profile, {"latency_ms": 0.7})]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "Plan for" in result.output and "latency (binding)" in result.output
    assert "Channels per layer" in result.output and f"wrote {out}" in result.output
    assert json.loads(out.read_text())["kind"] == "pruned"


def test_command_module_imports_alone_without_tensorflow():
    code = ("import sys, edgekit.cli.plan; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
def test_impossible_budget_exits_3_and_writes_nothing(tmp_path):
    from edgekit._tf import tf_keras

    keras = tf_keras()
    inputs = keras.Input((96, 96, 3))   # int8 input tensor: 27 KiB before anything is computed
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    path = tmp_path / "big_input.h5"
    keras.Model(inputs, keras.layers.Dense(2)(x)).save(path)
    out = tmp_path / "plan.json"
    result = CliRunner().invoke(main, ["plan", str(path), "--device", "nrf52840", "--max-ram", "32KB",
                                       "--out", str(out)])
    assert result.exit_code == 3, result.output
    lines = [line for line in result.output.strip().splitlines() if line.startswith("edgekit: error:")]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("edgekit: error: ram_bytes: even the smallest candidate needs ")
    assert "input tensor alone 27.0 KiB" in lines[0] and "> limit 32.0 KiB on nrf52840" in lines[0]
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["big_input.h5"]


@pytest.mark.slow
def test_plan_with_data_evaluates_candidates(tiny_conv1d_model, mnist1d_sample, tmp_path):
    from edgekit.data import load_data, split
    from edgekit.prune.training import evaluate

    model_path, data_path = tmp_path / "tiny.h5", tmp_path / "train.npz"
    tiny_conv1d_model.save(model_path)
    np.savez(data_path, x=mnist1d_sample.x_train, y=mnist1d_sample.y_train)
    profile = load_profile("nrf52840")
    args = [str(model_path), "--device", "nrf52840", "--data", str(data_path), "--evaluate", "2", "--epochs", "1",
            *_overrides(tiny_conv1d_model, profile, {"latency_ms": 0.5})]
    plan, _ = _plan(args, tmp_path)
    evaluated = [c for c in plan["candidates"] if c["accuracy"] is not None]
    assert evaluated and plan["metric"] == "accuracy"
    safe = [c for c in evaluated if c["fits_margin"]]
    assert plan["chosen"]["accuracy"] == max(c["accuracy"] for c in safe)
    assert len({(c["kind"], c["description"]) for c in evaluated}) <= 2
    # the baseline is the original model on the same share held out (edgekit.data.VAL_FRACTION)
    _, val = split(load_data(data_path, tiny_conv1d_model.input_shape), seed=0)
    assert plan["baseline_accuracy"] == pytest.approx(evaluate(tiny_conv1d_model, val.x, val.y).value)
    assert 0.0 <= plan["chosen"]["accuracy"] <= 1.0
