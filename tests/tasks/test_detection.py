"""Detection mAP (hand-computed cases), decoding of box/class heads, Task scoring and the fit data wiring."""

from types import SimpleNamespace

import numpy as np
import pytest

from edgekit.errors import BadInputError
from edgekit.tasks import Head, detect_task
from edgekit.tasks.detection import DetectionLabels, class_probabilities, iou, mean_average_precision
from edgekit.workflows.fit.context import load_fit_data

BOX_A, BOX_B = [0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]
FAR = [50.0, 50.0, 60.0, 60.0]


def _map(dets, gt_boxes, gt_labels, **kw):
    """dets: per image a list of (box, class, score)."""
    d = max(len(x) for x in dets)
    boxes, labels, scores = np.zeros((len(dets), d, 4)), np.full((len(dets), d), -1), np.zeros((len(dets), d))
    for i, image in enumerate(dets):
        for j, (box, cls, score) in enumerate(image):
            boxes[i, j], labels[i, j], scores[i, j] = box, cls, score
    return mean_average_precision(boxes, scores, np.array(gt_boxes), np.array(gt_labels), pred_labels=labels, **kw)


def test_iou_of_y1_x1_y2_x2_boxes():
    assert iou(BOX_A, np.array([[0, 0, 10, 5], [5, 5, 15, 15], BOX_B])).tolist() == pytest.approx([0.5, 25 / 175, 0])


def test_perfect_detector_scores_one():
    gt = [[BOX_A, BOX_B], [BOX_B, FAR]]
    labels = [[0, 1], [1, -1]]  # -1: padding, its box ignored
    dets = [[(BOX_A, 0, 0.9), (BOX_B, 1, 0.8)], [(BOX_B, 1, 0.7)]]
    assert _map(dets, gt, labels) == 1.0


def test_false_positive_ranked_first():
    # class 0, two boxes: FP (0.9), TP (0.8), TP (0.7): precision 1/2, 2/3 at recall 1/2, 1 -> envelope 2/3 all along
    dets = [[(FAR, 0, 0.9), (BOX_A, 0, 0.8), (BOX_B, 0, 0.7)]]
    assert _map(dets, [[BOX_A, BOX_B]], [[0, 0]]) == pytest.approx(2 / 3)


def test_duplicate_detection_is_a_false_positive():
    # image 0: two detections of the one box (0.9 TP, 0.8 duplicate FP); image 1: TP at 0.7.
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> AP = 0.5 * 1 + 0.5 * 2/3
    dets = [[(BOX_A, 0, 0.9), (BOX_A, 0, 0.8)], [(BOX_B, 0, 0.7)]]
    assert _map(dets, [[BOX_A], [BOX_B]], [[0], [0]]) == pytest.approx(0.5 + 1 / 3)


def test_class_without_ground_truth_is_ignored_and_missed_class_scores_zero():
    dets = [[(BOX_A, 0, 0.9), (FAR, 2, 0.95)]]  # class 2 has no ground truth: not averaged in
    assert _map(dets, [[BOX_A]], [[0]]) == 1.0
    # class 1 has ground truth but no detection: AP 0, mean (1 + 0) / 2
    assert _map(dets, [[BOX_A, BOX_B]], [[0, 1]]) == 0.5


@pytest.mark.parametrize("width,expected", [(4.99, 0.0), (5.0, 1.0), (5.01, 1.0)])
def test_iou_threshold_is_inclusive(width, expected):
    # IoU of [0, 0, 10, w] with [0, 0, 10, 10] is w / 10
    assert _map([[([0, 0, 10, width], 0, 0.9)]], [[BOX_A]], [[0]], iou_threshold=0.5) == expected


def test_wrong_class_does_not_match_and_top_k_drops_low_scores():
    assert _map([[(BOX_A, 1, 0.9)]], [[BOX_A]], [[0]]) == 0.0
    dets = [[(FAR, 0, 0.9), (BOX_A, 0, 0.5)]]
    assert _map(dets, [[BOX_A]], [[0]], top_k=1) == 0.0
    assert _map(dets, [[BOX_A]], [[0]], top_k=2) == 0.5


def test_class_scores_are_decoded_by_argmax_and_logits_get_softmax():
    logits = np.array([[[0.0, np.log(3.0)]]])  # softmax: [0.25, 0.75]
    assert class_probabilities(logits)[0, 0].tolist() == pytest.approx([0.25, 0.75])
    probs = np.array([[[0.2, 0.8], [0.6, 0.4]]])
    assert class_probabilities(probs) is not None and np.allclose(class_probabilities(probs), probs)
    boxes = np.array([[BOX_A, BOX_B]])
    # anchor 0 -> class 1 (0.8) on BOX_A, anchor 1 -> class 0 (0.6) on BOX_B
    assert mean_average_precision(boxes, probs, np.array([[BOX_A, BOX_B]]), np.array([[1, 0]])) == 1.0
    assert mean_average_precision(boxes, probs, np.array([[BOX_A, BOX_B]]), np.array([[0, 1]])) == 0.0


def test_bad_ground_truth_layout_names_the_field():
    with pytest.raises(BadInputError, match="gt_labels"):
        mean_average_precision(np.zeros((1, 1, 4)), np.ones((1, 1, 2)), np.zeros((1, 2, 4)), np.zeros((1, 3), int))
    with pytest.raises(BadInputError, match="gt_boxes"):
        mean_average_precision(np.zeros((1, 1, 4)), np.ones((1, 1, 2)), np.zeros((1, 2, 3)), np.zeros((1, 2), int))


def _two_head_outputs():
    boxes = np.array([[BOX_A, FAR], [BOX_B, FAR]])  # (N=2, A=2, 4)
    classes = np.array([[[0.9, 0.1], [0.5, 0.5]], [[0.2, 0.8], [0.5, 0.5]]])  # (2, 2, C=2), softmax-like
    return [boxes, classes]


def test_detect_task_scores_map_when_boxes_and_labels_are_given():
    heads = (Head("boxes", (2, 4), "linear"), Head("classes", (2, 2), "softmax"))
    outs = _two_head_outputs()
    truth = DetectionLabels(np.array([[BOX_A], [BOX_B]]), np.array([[0], [1]]))
    task = detect_task(heads, (8,), truth, outs)
    assert task.name == "detect" and task.metric == "mAP@0.5"
    score = task.score(outs, truth, outs, None)
    # per class one TP at top rank; the FAR anchors are FPs ranked lower -> AP 1 for both classes
    assert (score.metric, score.value) == ("mAP@0.5", 1.0)
    assert score.details["worst-head fidelity"] == 1.0
    missed = DetectionLabels(np.array([[BOX_B], [BOX_B]]), np.array([[0], [1]]))  # class 0's box is elsewhere
    assert task.score(outs, missed, outs, None).value == 0.5
    plain = detect_task(heads, (8,), None, outs)
    assert plain.metric == "worst-head fidelity to the teacher"
    assert plain.score(outs, None, outs, None).metric == "worst-head fidelity to the teacher"


def test_fit_data_carries_ground_truth_through_val_file_and_split(tmp_path):
    model = SimpleNamespace(input_shape=(None, 3), outputs=[0, 1])
    n = 40
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    gt_boxes = np.arange(n, dtype=np.float32)[:, None, None] * np.ones((n, 1, 4), np.float32)
    gt_labels = np.arange(n)[:, None] % 3
    path = tmp_path / "d.npz"
    np.savez(path, x=x, gt_boxes=gt_boxes, gt_labels=gt_labels)
    data = load_fit_data(str(path), None, model, seed=0)
    truth = data.y_val
    assert isinstance(truth, DetectionLabels) and len(truth) == len(data.x_val) == 4
    rows = (data.x_val[:, 0] / 3).astype(int)  # which samples were held out
    assert truth.boxes[:, 0, 0].tolist() == rows.tolist() and truth.labels[:, 0].tolist() == (rows % 3).tolist()
    val = tmp_path / "v.npz"
    np.savez(val, x=x[:5], gt_boxes=gt_boxes[:5], gt_labels=gt_labels[:5])
    assert load_fit_data(str(path), str(val), model, seed=0).y_val.labels[:, 0].tolist() == [0, 1, 2, 0, 1]
    single = SimpleNamespace(input_shape=(None, 3), outputs=[0])
    assert load_fit_data(str(path), str(val), single, seed=0).y_val is None
    np.savez(val, x=x[:5], gt_boxes=gt_boxes[:5])
    with pytest.raises(BadInputError, match="no gt_labels"):
        load_fit_data(str(path), str(val), model, seed=0)
    np.savez(val, x=x[:5], gt_boxes=gt_boxes[:4], gt_labels=gt_labels[:4])
    with pytest.raises(BadInputError, match="4 rows for 5 samples"):
        load_fit_data(str(path), str(val), model, seed=0)
