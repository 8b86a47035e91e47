"""`edgekit distill` as a user meets it: real tiny teacher and .npz files, MAC ratios, JSON, errors, no overwrites."""

import hashlib
import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit._tf import tf_keras
from edgekit.cli.main import main
from edgekit.costmodel.layer_costs import analyze
from edgekit.errors import BadInputError
from edgekit.examples.mnist1d_teacher import build_teacher
from edgekit.ir.from_keras import from_keras
from edgekit.model_io import save_model
from edgekit.workflows.distill import FEATURE_HINT_WEIGHT, distill_model

keras = tf_keras()
TEACHER_WIDTH = 16


def teacher_macs(width: int) -> int:
    """build_teacher(width, depth=3) on (40, 1): conv k5 (40 steps), conv k3 s2 (20), conv k3 s2 (10), dense."""
    return 40 * 5 * 1 * width + 20 * 3 * width * width + 10 * 3 * width * width + 10 * width * 10


def dscnn_macs(width: int, depth: int = 4) -> int:
    """students.dscnn on (40, 1): stem k3 stride 2 (20 steps), depth x (dw k3 + pw 1x1), dense head."""
    return 20 * (3 * width + depth * (3 * width + width * width)) + width * 10


def sha256(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def files(tmp_path_factory, mnist1d_sample):
    """teacher.h5 (16-wide MNIST-1D teacher, briefly trained), train.npz (x without channel axis), val.npz."""
    folder = tmp_path_factory.mktemp("distill_cli")
    keras.utils.set_random_seed(0)
    teacher = build_teacher(width=TEACHER_WIDTH, depth=3)
    teacher.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(mnist1d_sample.x_train, mnist1d_sample.y_train, epochs=6, batch_size=32, verbose=0)
    save_model(teacher, folder / "teacher.h5")
    np.savez(folder / "train.npz", x=mnist1d_sample.x_train[..., 0], y=mnist1d_sample.y_train)
    np.savez(folder / "val.npz", x=mnist1d_sample.x_val, y=mnist1d_sample.y_val)
    return folder


def run(*args):
    return CliRunner().invoke(main, ["distill", *map(str, args)])


def val_accuracy(model, folder) -> float:
    with np.load(folder / "val.npz") as val:
        return float(np.mean(np.argmax(model.predict(val["x"], verbose=0), axis=1) == val["y"]))


def test_width_student_has_the_promised_macs_and_reports_what_it_wrote(files, tmp_path):
    teacher_hash = sha256(files / "teacher.h5")
    out = tmp_path / "student.h5"
    result = run(files / "teacher.h5", "--data", files / "train.npz", "--val", files / "val.npz", "--width", 0.5,
                 "--epochs", 2, "--json", "--out", out)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # progress went to stderr: stdout is pure JSON
    assert "epoch 1/2" in result.stderr and "epoch 2/2" in result.stderr

    student = keras.models.load_model(out, compile=False)
    half = TEACHER_WIDTH // 2
    assert analyze(from_keras(student)).macs == report["student"]["macs"] == teacher_macs(half)
    assert report["teacher"]["macs"] == teacher_macs(TEACHER_WIDTH)
    assert report["student"]["macs_ratio"] == pytest.approx(teacher_macs(half) / teacher_macs(TEACHER_WIDTH))
    assert report["student"]["params"] == student.count_params() < report["teacher"]["params"]
    assert [student.get_layer(f"conv{i}").filters for i in (1, 2, 3)] == [half] * 3

    teacher = keras.models.load_model(files / "teacher.h5", compile=False)
    assert report["teacher"]["accuracy"] == pytest.approx(val_accuracy(teacher, files), abs=1e-6)
    # The file holds the weights of the best epoch, the one whose accuracy is reported.
    assert report["student"]["accuracy"] == pytest.approx(val_accuracy(student, files), abs=1e-4)
    assert 0 <= report["best_epoch"] <= report["epochs_run"] <= 2
    assert report["n_train"] == 720 and report["n_val"] == 80
    assert report["student"]["source"].startswith("teacher x0.5 width")
    assert any("added a trailing channel axis" in n for n in report["notices"])
    assert sha256(files / "teacher.h5") == teacher_hash


def test_family_student_lands_on_the_mac_target_and_features_pair_layers(files, tmp_path):
    out = tmp_path / "dscnn.h5"
    result = run(files / "teacher.h5", "--data", files / "train.npz", "--val", files / "val.npz", "--family",
                 "dscnn", "--target-macs", "25%", "--features", "--epochs", 2, "--json", "--quiet", "--out", out)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # --quiet
    report = json.loads(result.stdout)
    student = keras.models.load_model(out, compile=False)
    width = student.get_layer("stem").filters
    target = teacher_macs(TEACHER_WIDTH) // 4
    # The widest 4-block DS-CNN within a quarter of the teacher's MACs.
    assert dscnn_macs(width) <= target < dscnn_macs(width + 1)
    assert analyze(from_keras(student)).macs == report["student"]["macs"] == dscnn_macs(width)
    # Student blocks run at 20 steps (stride-2 stem); the teacher's deepest 20-step map is relu2.
    assert report["hint_pairs"] == [["block3_pw_relu", "relu2"]]
    assert report["hint_weight"] == FEATURE_HINT_WEIGHT > 0


def test_own_student_file_is_trained_and_left_unchanged(files, tmp_path):
    keras.utils.set_random_seed(3)
    inputs = keras.Input((40, 1))
    x = keras.layers.Conv1D(4, 3, strides=2, padding="same", activation="relu", name="c")(inputs)
    outputs = keras.layers.Dense(10, name="head")(keras.layers.Flatten()(x))
    mine = keras.Model(inputs, outputs)
    save_model(mine, tmp_path / "mine.h5")
    mine_hash = sha256(tmp_path / "mine.h5")
    result = run(files / "teacher.h5", "--data", files / "train.npz", "--val", files / "val.npz", "--student",
                 tmp_path / "mine.h5", "--epochs", 2, "--patience", 1, "--alpha", 0.5, "--temperature", 2,
                 "--out", tmp_path / "trained.h5")
    assert result.exit_code == 0, result.output
    assert "student: file mine.h5" in result.stdout and "wrote" in result.stdout
    trained = keras.models.load_model(tmp_path / "trained.h5", compile=False)
    assert [layer.name for layer in trained.layers] == [layer.name for layer in mine.layers]
    assert sha256(tmp_path / "mine.h5") == mine_hash
    changed = [not np.array_equal(a, b) for a, b in zip(trained.get_weights(), mine.get_weights())]
    assert any(changed) or "no epoch improved" in result.stdout


@pytest.mark.parametrize("name, arrays, expected", [
    ("short.npz", {"x": np.zeros((8, 30), np.float32), "y": np.zeros(8, np.int64)}, "(None, 40, 1)"),
    ("text.npz", {"x": np.array([["a"] * 40] * 8), "y": np.zeros(8, np.int64)}, "dtype"),
])
def test_bad_data_is_a_one_line_error_naming_the_file(files, tmp_path, name, arrays, expected):
    np.savez(tmp_path / name, **arrays)
    out = tmp_path / "student.h5"
    result = run(files / "teacher.h5", "--data", tmp_path / name, "--width", 0.5, "--out", out)
    assert result.exit_code == 2
    assert name in result.stderr and expected in result.stderr
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_labels_beyond_the_teacher_outputs_are_refused(files, mnist1d_sample):
    teacher = keras.models.load_model(files / "teacher.h5", compile=False)
    with pytest.raises(BadInputError, match=r"data: labels run from 1 to 19 but the teacher has 10 outputs"):
        distill_model(teacher, (mnist1d_sample.x_train, mnist1d_sample.y_train * 2 + 1), width=0.5)


@pytest.mark.parametrize("choice", [
    [],
    ["--width", "0.5", "--family", "dscnn"],
    ["--width", "0.5", "--student", "s.h5"],
    ["--width", "0.5", "--macs-ratio", "0.25"],
    ["--family", "dscnn", "--target-macs", "1k", "--macs-ratio", "0.2"],
    ["--family", "dscnn", "--fresh-weights"],
])
def test_student_choices_are_mutually_exclusive(files, tmp_path, choice):
    out = tmp_path / "student.h5"
    result = run(files / "teacher.h5", "--data", files / "train.npz", *choice, "--out", out)
    assert result.exit_code == 2
    assert "Usage:" in result.stderr
    assert any(words in result.stderr for words in ("exactly one", "size a --family", "mutually exclusive",
                                                     "applies to a --width"))
    assert not out.exists()


def test_refuses_to_overwrite_the_teacher(files):
    teacher_hash = sha256(files / "teacher.h5")
    result = run(files / "teacher.h5", "--data", files / "train.npz", "--width", 0.5, "--out",
                 files / "teacher.h5")
    assert result.exit_code == 2
    assert "input model" in result.stderr and "epoch" not in result.stderr  # refused before training
    assert sha256(files / "teacher.h5") == teacher_hash


def test_api_without_labels_holds_out_validation_and_reports_agreement_only(files, mnist1d_sample):
    teacher = keras.models.load_model(files / "teacher.h5", compile=False)
    outcome = distill_model(teacher, mnist1d_sample.x_train, family="mlp", macs_ratio=0.1, epochs=1, seed=2)
    assert (outcome.n_train, outcome.n_val) == (648, 72)
    assert any("held out 72 of 720" in n for n in outcome.notices)
    assert outcome.teacher_accuracy is None and outcome.student_accuracy is None
    assert 0.0 <= outcome.agreement <= 1.0
    assert outcome.student_macs <= 0.1 * outcome.teacher_macs and outcome.student_source.startswith("mlp")
    assert outcome.out_path is None and outcome.teacher_path is None
