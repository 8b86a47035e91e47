"""A fleet fit: one model, several devices, one folder each, one comparison; fails per device."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.cli.main import main
from edgekit.distill import distill
from edgekit.distill.teacher_cache import shared_teacher_outputs


@pytest.fixture(scope="module")
def fleet_inputs(tmp_path_factory, tiny_conv1d_model, mnist1d_sample):
    root = tmp_path_factory.mktemp("fleet")
    tiny_conv1d_model.save(root / "teacher.h5")
    s = mnist1d_sample
    np.savez(root / "train.npz", x=s.x_train, y=s.y_train)
    np.savez(root / "val.npz", x=s.x_val, y=s.y_val)
    return root


@pytest.mark.slow
def test_fleet_fits_each_device_in_its_folder_and_fails_per_device(fleet_inputs, tmp_path):
    root = fleet_inputs
    (root / "fleet.yaml").write_text("devices:\n  - host\n  - device: stm32h743\n    max_flash: 9KB\n"
                                     "  - device: nrf52840\n    max_flash: 1KB\n")
    teacher_before = (root / "teacher.h5").read_bytes()
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["fit", str(root / "teacher.h5"), "--devices", str(root / "fleet.yaml"),
                                       "--data", str(root / "train.npz"), "--val", str(root / "val.npz"),
                                       "--out", str(out), "--epochs", "2", "--max-accuracy-drop", "0.5",
                                       "--json"])
    assert result.exit_code == 3, result.output  # nrf52840 cannot hold the model in 1 KB
    report = json.loads(result.stdout)
    rows = {r["device"]: r for r in report["devices"]}
    assert list(rows) == ["host", "stm32h743", "nrf52840"]
    assert rows["host"]["fits"] and rows["stm32h743"]["fits"] and not rows["nrf52840"]["fits"]
    assert rows["nrf52840"]["status"] == "does_not_fit" and rows["nrf52840"]["message"]
    assert "nrf52840" in result.stderr  # the device that failed is named
    assert not [line for line in result.stderr.splitlines() if line.startswith(("fleet:", "["))]  # --json: quiet
    # the devices that fit have their deliverables, measured within their own budgets
    stm = rows["stm32h743"]["budgets"]["flash_bytes"]
    assert stm["measured"] and stm["value"] == (out / "stm32h743" / "model.tflite").stat().st_size <= 9 * 1024
    assert (out / "stm32h743" / "mcu" / "model_data.cc").is_file() and (out / "host" / "model.tflite").is_file()
    assert not (out / "nrf52840" / "model.tflite").exists() and (out / "nrf52840" / "report.json").is_file()
    # one comparison naming every device, and the same figures as each device's own report
    markdown = (out / "fleet.md").read_text()
    assert all(f"| {d} |" in markdown for d in rows) and "2 of 3 devices fit" in markdown
    own = json.loads((out / "stm32h743" / "report.json").read_text())
    assert own["budgets"]["flash_bytes"]["measured"] == stm["value"]
    assert "<table>" in (out / "fleet.html").read_text()
    # the teacher's outputs over the training samples were computed once and reused by later distillations
    assert report["teacher_outputs"]["reused"] >= 1
    assert (root / "teacher.h5").read_bytes() == teacher_before

    # the CI gate on the fitted model, with its fit report as the baseline: fits; 1 KB below its size: exit 3
    fitted = out / "stm32h743" / "model.tflite"
    gate = ["check", str(fitted), "--device", "stm32h743", "--baseline", str(out / "stm32h743" / "report.json")]
    assert CliRunner().invoke(main, [*gate, "--max-flash", "9KB"]).exit_code == 0
    over = CliRunner().invoke(main, [*gate, "--max-flash", str(fitted.stat().st_size - 1024)])
    assert over.exit_code == 3 and "flash" in over.stderr and "by 1.0 KiB" in over.stderr


def test_teacher_outputs_are_shared_between_distillations_of_the_same_teacher(tiny_conv1d_model, keras,
                                                                             mnist1d_sample):
    s = mnist1d_sample
    x, y = s.x_train[:200], s.y_train[:200]

    def student():
        keras.utils.set_random_seed(1)
        inputs = keras.Input((40, 1))
        return keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs)))

    other = keras.models.clone_model(tiny_conv1d_model)  # same layers, fresh weights: a different teacher
    with shared_teacher_outputs() as cache:
        first = distill(tiny_conv1d_model, student(), x, y, s.x_val, s.y_val, epochs=1, verbose=0, seed=0)
        second = distill(tiny_conv1d_model, student(), x, y, s.x_val, s.y_val, epochs=1, verbose=0, seed=0)
        assert (cache.misses, cache.hits) == (2, 2)  # train and val outputs computed once, then reused
        distill(other, student(), x, y, s.x_val, s.y_val, epochs=1, verbose=0, seed=0)
        assert (cache.misses, cache.hits) == (4, 2)
    # reusing the outputs changes nothing: same seed, same student weights
    for a, b in zip(first.student.get_weights(), second.student.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    distill(tiny_conv1d_model, student(), x, y, s.x_val, s.y_val, epochs=1, verbose=0, seed=0)
    assert (cache.misses, cache.hits) == (4, 2)  # outside the block nothing is cached


@pytest.mark.parametrize("args, needle", [
    (["--device", "pixel7,no-such-board"], "no-such-board"),
    (["--device", "pixel7,,nrf52840"], "empty name"),
    (["--device", "pixel7,pixel7"], "twice"),
    (["--device", "pixel7,nrf52840", "--devices", "FLEET"], "not both"),
    (["--devices", "FLEET"], "devices[1]"),
    (["--device", "pixel7,nrf52840", "--max-flash", "lots"], "--max-flash"),
    (["--device", "pixel7,nrf52840", "--metric", "no_such_module_xyz:score"], "no_such_module_xyz"),
])
def test_bad_fleet_input_exits_2_before_any_work(fleet_inputs, tmp_path, args, needle):
    (tmp_path / "fleet.yaml").write_text("devices:\n  - pixel7\n  - {device: nrf52840, max_ram: [1]}\n")
    args = [str(tmp_path / "fleet.yaml") if a == "FLEET" else a for a in args]
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["fit", str(fleet_inputs / "teacher.h5"), *args, "--data",
                                       str(fleet_inputs / "train.npz"), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("edgekit: error: ") and needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()
