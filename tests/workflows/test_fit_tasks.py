"""`edgekit fit` beyond classifiers: an anomaly autoencoder and a segmenter fitted to an MCU, scored by their
task's metric; an accuracy budget that binds (exit 3 naming accuracy) and the same fit with a looser one."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from fit_task_helpers import (
    anomaly_teacher,
    detection_teacher,
    machine_signals,
    objects,
    segmentation_teacher,
    shapes,
)

from edgekit.cli.main import main
from edgekit.export.tflite import convert
from edgekit.runners.litert import predict, predict_named
from edgekit.tasks import metrics

pytestmark = pytest.mark.slow


def _int8_bytes(model, x) -> int:
    return len(convert(model, "int8", representative_data=x[:100]).tflite_bytes)


def test_anomaly_autoencoder_fits_an_mcu_and_keeps_its_auc(tmp_path):
    from edgekit.workflows.fit import fit

    x_normal, _ = machine_signals(600, 0.0, seed=1)
    x_val, faults = machine_signals(240, 0.3, seed=2)
    teacher = anomaly_teacher(x_normal, epochs=15)
    teacher.save(tmp_path / "ae.h5")
    np.savez(tmp_path / "train.npz", x=x_normal)               # normal machines only, no labels
    np.savez(tmp_path / "val.npz", x=x_val, y=faults)          # y: 0 normal / 1 fault
    limit = int(0.5 * _int8_bytes(teacher, x_normal))
    result = fit(str(tmp_path / "ae.h5"), "stm32l4r5", str(tmp_path / "train.npz"), val=str(tmp_path / "val.npz"),
                 out_dir=tmp_path / "out", epochs=12, max_flash=limit, max_accuracy_drop=0.05, quiet=True,
                 accuracy_attempts=0, reclaim_headroom=False, evaluate_candidates=1, plan_epochs=1)
    assert result.task == "anomaly" and result.accuracy_metric == "anomaly AUC"
    teacher_auc = metrics.roc_auc(metrics.reconstruction_error(x_val, teacher.predict(x_val, verbose=0)), faults)
    assert result.teacher_accuracy == pytest.approx(teacher_auc) and teacher_auc > 0.9
    # the reported AUC is the delivered int8 file's, run again here through LiteRT
    tflite = (tmp_path / "out" / "model.tflite").read_bytes()
    assert len(tflite) <= limit
    auc = metrics.roc_auc(metrics.reconstruction_error(x_val, predict(tflite, x_val)), faults)
    assert result.final_accuracy == pytest.approx(auc, abs=1e-9)
    assert teacher_auc - auc <= 0.05
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["explanation"][0].startswith("Task: anomaly") and report["attempts"][-1]["delivered"]


def test_segmenter_fits_an_mcu_scored_by_mean_iou(tmp_path):
    from edgekit.workflows.fit import fit

    x, y = shapes(360, seed=3)
    teacher = segmentation_teacher(x[:300], y[:300], epochs=6)
    limit = int(0.6 * _int8_bytes(teacher, x))
    result = fit(teacher, "stm32l4r5", (x[:300], y[:300]), val=(x[300:], y[300:]), out_dir=tmp_path / "out",
                 epochs=12, max_flash=limit, max_accuracy_drop=0.2, quiet=True, accuracy_attempts=0,
                 reclaim_headroom=False, evaluate_candidates=1, plan_epochs=1)
    assert result.task == "segment" and result.accuracy_metric == "mean IoU"
    tflite = (tmp_path / "out" / "model.tflite").read_bytes()
    assert len(tflite) <= limit
    predicted = predict(tflite, x[300:]).argmax(-1)
    assert result.final_accuracy == pytest.approx(metrics.mean_iou(predicted, y[300:], 3), abs=1e-9)
    assert result.teacher_accuracy > 0.8 and result.final_accuracy > 0.5


def test_two_head_detector_fits_an_mcu_with_a_loss_and_a_score_per_head(tmp_path):
    from edgekit.workflows.fit import fit

    x, classes, boxes = objects(380, seed=5)
    teacher = detection_teacher(x[:320], classes[:320], boxes[:320], epochs=10)
    limit = int(0.45 * _int8_bytes(teacher, x))
    result = fit(teacher, "stm32l4r5", x[:320], val=x[320:], out_dir=tmp_path / "out", epochs=10, max_flash=limit,
                 max_accuracy_drop=0.25, quiet=True, accuracy_attempts=0, reclaim_headroom=False,
                 evaluate_candidates=1, plan_epochs=1)
    assert result.task == "detect" and result.accuracy_metric == "worst-head fidelity to the teacher"
    tflite = (tmp_path / "out" / "model.tflite").read_bytes()
    assert len(tflite) <= limit
    outputs = {o.shape[-1]: o for o in predict_named(tflite, [x[320:]]).values()}   # cls: 3 classes, box: 4
    t_cls, t_box = teacher.predict(x[320:], verbose=0)
    agreement = metrics.top1(outputs[3], t_cls.argmax(-1))
    box_r2 = metrics.r2(outputs[4], t_box)
    assert result.final_accuracy == pytest.approx(min(agreement, box_r2), abs=1e-6)
    assert result.final_accuracy > 0.75
    heads = next(n for n in result.notes if "cls: top-1 agreement" in n)
    assert f"cls: top-1 agreement {agreement:.4f}" in heads and f"box: R^2 {box_r2:.4f}" in heads


def test_accuracy_budget_binds_with_exit_3_and_a_looser_one_fits(tmp_path, tiny_conv1d_model, mnist1d_sample):
    s = mnist1d_sample
    tiny_conv1d_model.save(tmp_path / "teacher.h5")
    np.savez(tmp_path / "train.npz", x=s.x_train, y=s.y_train)
    np.savez(tmp_path / "val.npz", x=s.x_val, y=s.y_val)
    limit = str(int(0.3 * _int8_bytes(tiny_conv1d_model, s.x_train)))
    args = ["fit", str(tmp_path / "teacher.h5"), "--device", "stm32l4r5", "--data", str(tmp_path / "train.npz"),
            "--val", str(tmp_path / "val.npz"), "--epochs", "2", "--max-flash", limit]
    tight = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "tight"), "--max-accuracy-drop", "0",
                                      "--accuracy-attempts", "1", "--explain"])
    assert tight.exit_code == 3, tight.output
    assert "accuracy:" in tight.output and "--max-accuracy-drop 0" in tight.output
    published = sorted(p.name for p in (tmp_path / "tight").iterdir() if not p.name.startswith("."))
    assert published == ["report.html", "report.json", "report.md"]  # no model file
    report = json.loads((tmp_path / "tight" / "report.json").read_text())
    assert report["binding_budget"] == "accuracy" and len(report["attempts"]) == 2  # the plan + 1 walk-back
    assert all(a["fits_device"] and not a["keeps_accuracy"] for a in report["attempts"])
    assert any("most accurate fitting" in line for line in report["explanation"])
    assert "The most accurate fitting: attempt A" in tight.output  # --explain printed the report's first section
    best_drop = min(a["drop"] for a in report["attempts"])
    looser = f"{best_drop + 0.05:.4f}"
    ok = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "ok"), "--max-accuracy-drop", looser,
                                   "--accuracy-attempts", "1", "--json"])
    assert ok.exit_code == 0, ok.output
    fitted = json.loads(ok.output)
    assert fitted["status"] == "fits" and fitted["accuracy_drop"] <= float(looser)
    assert (tmp_path / "ok" / "model.tflite").stat().st_size <= int(limit)
