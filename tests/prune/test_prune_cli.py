"""`edgekit prune` end to end through click: files in tmp_path, exit codes, JSON, progress."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.cli.main import main
from edgekit.examples.mnist1d_teacher import build_teacher


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from edgekit.model_io import save_model

    folder = tmp_path_factory.mktemp("prune_cli")
    model = build_teacher(width=16)
    save_model(model, folder / "teacher.h5")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 40)).astype("float32")  # no channel axis: load_data adds it
    np.savez(folder / "data.npz", x=x, y=(x[:, :20].sum(1) > 0).astype("int64"))
    return folder


def run(*args):
    return CliRunner().invoke(main, ["prune", *map(str, args)], catch_exceptions=False)


def load(path):
    from edgekit.model_io import load_model

    return load_model(path).keras_model


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_ratio_without_data_writes_a_smaller_model_and_says_data_free(files, tmp_path):
    before = digest(files / "teacher.h5")
    result = run(files / "teacher.h5", "--ratio", "0.5", "--out", tmp_path / "p.h5")
    assert result.exit_code == 0, result.output
    assert "no data: channels ranked by l1" in result.output
    assert "kept whole: logits (Dense): model output" in result.output
    pruned = load(tmp_path / "p.h5")
    assert pruned.get_layer("conv1").filters < 16
    assert pruned.count_params() < load(files / "teacher.h5").count_params()
    assert digest(files / "teacher.h5") == before


def test_target_macs_share_with_device_rounding_in_json(files, tmp_path):
    result = run(files / "teacher.h5", "--target-macs", "30%", "--device", "stm32h743", "--json",
                 "--out", tmp_path / "p.h5")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["macs_after"] <= 0.3 * report["macs_before"]
    convs = [layer for layer in report["layers"] if layer["op"] == "Conv1D"]
    assert all(layer["channels_after"] % 4 == 0 for layer in convs)  # stm32h743: channel_multiple 4
    assert load(tmp_path / "p.h5").count_params() == report["params_after"]


def test_size_target_in_kilobytes(files, tmp_path):
    result = run(files / "teacher.h5", "--target-size", "8KB", "--json", "--out", tmp_path / "p.h5")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["int8_bytes_after"] <= 8 * 1024 < report["int8_bytes_before"]


def test_iterative_with_data_shows_progress_and_accuracy(files, tmp_path):
    result = run(files / "teacher.h5", "--ratio", "0.5", "--data", files / "data.npz", "--iterative",
                 "--steps", "2", "--epochs", "1", "--importance", "taylor", "--out", tmp_path / "p.h5")
    assert result.exit_code == 0, result.output
    assert "step 1/2:" in result.output and "step 2/2:" in result.output
    assert "accuracy:" in result.output


def test_two_four_method_keeps_shapes(files, tmp_path):
    result = run(files / "teacher.h5", "--method", "2:4", "--out", tmp_path / "s.h5")
    assert result.exit_code == 0, result.output
    assert "2:4 sparsity" in result.output
    assert load(tmp_path / "s.h5").count_params() == load(files / "teacher.h5").count_params()


@pytest.mark.parametrize("args, code, message", [
    (["--importance", "taylor", "--ratio", "0.5"], 2, "taylor importance needs data"),
    (["--target-macs", "100"], 3, "pruning cannot reach MACs 100"),
    (["--target-macs", "lots"], 2, "--target-macs 'lots': use a count"),
    (["--ratio", "1.5"], 2, "must be in [0, 1)"),
    (["--iterative", "--ratio", "0.5"], 2, "iterative pruning fine-tunes between steps and needs data"),
])
def test_errors_are_one_line_with_exit_codes(files, tmp_path, args, code, message):
    result = run(files / "teacher.h5", *args, "--out", tmp_path / "p.h5")
    assert result.exit_code == code
    assert message in result.output
    assert not (tmp_path / "p.h5").exists()


def test_refuses_to_overwrite_the_input(files):
    result = run(files / "teacher.h5", "--ratio", "0.25", "--out", files / "teacher.h5")
    assert result.exit_code == 2
    assert "never overwrites its input" in result.output
