"""Task detection from outputs and data, --task overrides, scoring, and the custom metric loader."""

import numpy as np
import pytest

from edgekit.errors import BadInputError
from edgekit.tasks import Head, detect_task, load_metric


@pytest.mark.parametrize("heads,input_shape,y,expected", [
    ((Head("p", (10,), "softmax"),), (40, 1), None, "classify"),
    ((Head("logits", (10,), "linear"),), (40, 1), np.arange(20) % 10, "classify"),
    ((Head("tags", (5,), "sigmoid"),), (32,), None, "multilabel"),
    ((Head("value", (1,), "linear"),), (8,), np.linspace(0, 1, 20), "regress"),
    ((Head("xyz", (3,), "linear"),), (8,), np.random.default_rng(0).normal(size=(20, 3)), "regress"),
    ((Head("recon", (128,), "linear"),), (128,), None, "anomaly"),
    ((Head("recon", (64, 1), None),), (64, 1), np.arange(20) % 2, "anomaly"),
    ((Head("mask", (16, 16, 3), "softmax"),), (16, 16, 1), None, "segment"),
    ((Head("mask", (16, 16, 3), "linear"),), (16, 16, 1), np.zeros((20, 16, 16), np.int64), "segment"),
    ((Head("cls", (4,), "softmax"), Head("box", (4,), "linear")), (16, 16, 1), None, "detect"),
])
def test_detects_the_task(heads, input_shape, y, expected):
    assert detect_task(heads, input_shape, y).name == expected


def test_softmax_is_read_from_the_outputs_when_the_layer_is_unknown():
    out = np.full((4, 3), 1 / 3)
    task = detect_task((Head("o", (3,), None),), (5,), None, out)
    assert task.heads[0].activation == "softmax" and task.name == "classify"


def test_overrides_that_do_not_suit_the_outputs_are_refused():
    with pytest.raises(BadInputError, match="--task anomaly: .*input's shape"):
        detect_task((Head("p", (10,), "softmax"),), (40, 1), override="anomaly")
    with pytest.raises(BadInputError, match="--task segment"):
        detect_task((Head("p", (10,), "softmax"),), (40, 1), override="segment")
    with pytest.raises(BadInputError, match="unknown"):
        detect_task((Head("p", (10,), "softmax"),), (40, 1), override="ranking")
    assert detect_task((Head("p", (10,), "linear"),), (40, 1), override="regress").name == "regress"


def test_anomaly_scores_auc_with_flags_and_rank_agreement_without():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 16))
    flags = (np.arange(40) % 4 == 0).astype(int)
    recon = x.copy()
    recon[flags == 1] += 1.0                       # anomalies reconstruct badly
    task = detect_task((Head("r", (16,), "linear"),), (16,))
    assert task.score(recon, flags, recon, x).value == 1.0
    blind = x + rng.normal(scale=0.5, size=x.shape)  # a student that ignores the anomalies
    assert task.score(blind, flags, recon, x).value < 0.8
    without = task.score(blind, None, recon, x)
    assert without.metric.startswith("anomaly-score rank agreement") and without.value < 0.5
    assert task.score(recon, None, recon, x).value == pytest.approx(1.0)


def test_classify_uses_labels_else_agreement_and_segment_uses_mean_iou():
    task = detect_task((Head("p", (3,), "softmax"),), (4,))
    teacher = np.eye(3)[[0, 1, 2, 2]]
    student = np.eye(3)[[0, 1, 1, 2]]
    assert task.score(student, np.array([0, 1, 2, 0]), teacher, None).value == 0.5
    assert task.score(student, None, teacher, None).value == 0.75
    seg = detect_task((Head("m", (2, 2, 2), "softmax"),), (2, 2, 1))
    truth = np.array([[[0, 1], [1, 1]]])
    pred = np.eye(2)[[[[0, 1], [0, 1]]]]
    score = seg.score(pred, truth, pred, None)
    assert score.metric == "mean IoU" and score.value == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_detect_is_scored_by_its_worst_head():
    task = detect_task((Head("cls", (4,), "softmax"), Head("box", (4,), "linear")), (8, 8, 1))
    rng = np.random.default_rng(2)
    t_cls, t_box = np.eye(4)[rng.integers(0, 4, 50)], rng.random((50, 4))
    s = task.score([t_cls, t_box + rng.normal(scale=0.05, size=t_box.shape)], None, [t_cls, t_box], None)
    assert s.details["cls: top-1 agreement"] == 1.0 and 0.8 < s.details["box: R^2"] < 1.0
    assert s.value == s.details["box: R^2"]
    assert task.distill_task == "regression" and task.training_labels(np.zeros(50)) is None


def test_custom_metric_from_a_file_and_its_errors(tmp_path):
    (tmp_path / "mymetric.py").write_text("import numpy as np\n"
                                          "def hits(outputs, y, teacher):\n"
                                          "    return float(np.mean(np.argmax(outputs, -1) == 1))\n"
                                          "def broken(outputs, y, teacher):\n"
                                          "    raise RuntimeError('nope')\n")
    fn = load_metric(f"{tmp_path / 'mymetric.py'}:hits")
    task = detect_task((Head("p", (3,), "softmax"),), (4,), custom=fn)
    assert task.name == "custom" and task.score(np.eye(3)[[1, 1, 0, 2]], None, None, None).value == 0.5
    bad = detect_task((Head("p", (3,), "softmax"),), (4,), custom=load_metric(f"{tmp_path / 'mymetric.py'}:broken"))
    with pytest.raises(BadInputError, match="raised RuntimeError: nope"):
        bad.score(np.eye(3), None, None, None)
    for spec, message in (("nocolon", "expected module:function"), ("no_such_module_xyz:f", "cannot import"),
                          (f"{tmp_path / 'mymetric.py'}:missing", "no function missing"),
                          (f"{tmp_path / 'nofile.py'}:f", "no such file")):
        with pytest.raises(BadInputError, match=message):
            load_metric(spec)
