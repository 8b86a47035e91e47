"""`edgekit fit` end to end on a small teacher: compression forced by a flash budget, exit 3, resume."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.cli.main import main
from edgekit.export.tflite import convert

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def teacher_files(tmp_path_factory, mnist1d_sample):
    """The 64-wide Conv1D example teacher, trained briefly on 1000 MNIST-1D samples, saved with its data."""
    from edgekit._tf import tf_keras
    from edgekit.examples.mnist1d_teacher import build_teacher

    keras = tf_keras()
    keras.utils.set_random_seed(0)
    teacher = build_teacher(width=64, depth=3)
    teacher.compile(optimizer=keras.optimizers.Adam(3e-3),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    s = mnist1d_sample
    teacher.fit(s.x_train, s.y_train, epochs=10, batch_size=32, verbose=0)
    root = tmp_path_factory.mktemp("fit")
    teacher.save(root / "teacher.h5")
    np.savez(root / "train.npz", x=s.x_train, y=s.y_train)
    np.savez(root / "val.npz", x=s.x_val, y=s.y_val)
    int8_bytes = len(convert(teacher, "int8", representative_data=s.x_train[:100]).tflite_bytes)
    return root, int8_bytes


def _fit(root, out, *extra):
    return CliRunner().invoke(main, ["fit", str(root / "teacher.h5"), "--data", str(root / "train.npz"), "--val",
                                     str(root / "val.npz"), "--out", str(out), "--epochs", "8", "--json", *extra])


def test_flash_budget_at_30_percent_forces_compression_and_everything_fits(teacher_files, tmp_path):
    root, teacher_int8 = teacher_files
    teacher_before = (root / "teacher.h5").read_bytes()
    limit = int(0.3 * teacher_int8)
    out = tmp_path / "out"
    # 8 epochs on 720 samples: allow the drop they cost (the accuracy budget is checked in test_fit_tasks.py)
    result = _fit(root, out, "--device", "stm32l4r5", "--max-flash", str(limit), "--max-accuracy-drop", "0.5")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["status"] == "fits" and report["fits"] is True
    # measured, not just predicted: the exported file and the TFLM arena are within budget
    flash = report["budgets"]["flash_bytes"]
    assert flash["measured"] == (out / "model.tflite").stat().st_size <= limit
    ram = report["budgets"]["ram_bytes"]
    assert ram["measured"] is not None and ram["measured"] <= ram["limit"]
    assert report["candidates"] and any(c["chosen"] and c["kind"] in ("pruned", "student")
                                        for c in report["candidates"])
    for name in ("model.tflite", "model.h5", "plan.json", "report.json", "report.md", "report.html"):
        assert (out / name).is_file(), name
    assert (out / "mcu" / "model_data.cc").is_file()
    assert not (tmp_path / "out.partial").exists()
    assert (root / "teacher.h5").read_bytes() == teacher_before
    assert report["final_accuracy"] > 0.3  # a real classifier, not a broken model


def test_impossible_budget_exits_3_and_writes_no_model(teacher_files, tmp_path):
    root, _ = teacher_files
    out = tmp_path / "out"
    result = _fit(root, out, "--device", "stm32l4r5", "--max-ram", "100B")
    assert result.exit_code == 3
    assert "ram_bytes" in result.output
    files = sorted(p.name for p in out.iterdir() if p.name != ".edgekit-output.json")  # ownership marker
    assert files == ["report.html", "report.json", "report.md"]
    assert json.loads((out / "report.json").read_text())["status"] == "does_not_fit"
    assert not (tmp_path / "out.partial").exists()


def test_no_data_is_exit_2_with_an_explanation(teacher_files, tmp_path):
    root, _ = teacher_files
    result = CliRunner().invoke(main, ["fit", str(root / "teacher.h5"), "--device", "pixel7", "--out",
                                       str(tmp_path / "o")])
    assert result.exit_code == 2 and "needs data" in result.output and "calibrat" in result.output
    assert not (tmp_path / "o").exists()


def test_resume_continues_after_an_interrupted_run(teacher_files, tmp_path, monkeypatch):
    from edgekit.workflows.fit import fit, pipeline

    root, teacher_int8 = teacher_files
    out = tmp_path / "out"
    args = {"device": "pixel7", "data": str(root / "train.npz"), "val": str(root / "val.npz"), "out_dir": out,
            "epochs": 4,
                "quiet": True, "max_flash": int(0.4 * teacher_int8), "max_accuracy_drop": 0.5,
            "reclaim_headroom": False}  # one round: the resumed stages are the delivered round's
    real_quantize = pipeline._quantize

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "_quantize", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fit(str(root / "teacher.h5"), **args)
    assert (tmp_path / "out.partial" / "model.h5").is_file() and not out.exists()

    monkeypatch.setattr(pipeline, "_quantize", real_quantize)
    calls = []
    real_distill = __import__("edgekit.distill", fromlist=["distill"]).distill
    monkeypatch.setattr("edgekit.distill.distill", lambda *a, **k: calls.append(1) or real_distill(*a, **k))
    result = fit(str(root / "teacher.h5"), resume=True, **args)
    assert result.fits and calls == []  # plan and compress came from the interrupted run
    notes = {s.stage: s.note for s in result.stages}
    assert notes["plan"].startswith("resumed") and notes["compress"].startswith("resumed")
    assert (out / "model.tflite").is_file()
