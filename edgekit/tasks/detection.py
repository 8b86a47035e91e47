"""Detection mAP on numpy arrays (pure: no TensorFlow): boxes are [y1, x1, y2, x2].

Model outputs in the documented layout are a box head (N, A, 4) and a class head (N, A, C) with the same A
(probabilities or logits; background class none). Each anchor is one detection: class = arg-max, score = its
probability; the top `TOP_K` per image are kept. Ground truth: `gt_boxes` (N, M, 4), `gt_labels` (N, M) ints,
-1 marks padding.

    >>> import numpy as np
    >>> gt_b, gt_l = np.array([[[0, 0, 1, 1.]]]), np.array([[0]])
    >>> mean_average_precision(np.array([[[0, 0, 1, 1.]]]), np.array([[0.9]]), gt_b, gt_l, pred_labels=np.array([[0]]))
    1.0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekit.errors import BadInputError

TOP_K = 100  # detections kept per image
GT_KEYS = ("gt_boxes", "gt_labels")


@dataclass(frozen=True)
class DetectionLabels:
    """Validation ground truth for `detect`: boxes (N, M, 4) [y1, x1, y2, x2], labels (N, M) int, -1 = padding."""

    boxes: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index) -> DetectionLabels:
        return DetectionLabels(self.boxes[index], self.labels[index])


def detection_labels(boxes, labels, source: str = "data", n: int | None = None) -> DetectionLabels:
    """Checked ground truth; BadInputError naming `source` and the field when the layout is wrong."""
    boxes, labels = np.asarray(boxes), np.asarray(labels)
    layout = "gt_boxes (N, M, 4) [y1, x1, y2, x2] and gt_labels (N, M) ints with -1 for padding"
    if boxes.ndim != 3 or boxes.shape[-1] != 4 or boxes.dtype.kind not in "iuf":
        raise BadInputError(f"{source}: gt_boxes has shape {boxes.shape} ({boxes.dtype}); save {layout}")
    if labels.shape != boxes.shape[:2] or labels.dtype.kind not in "iu":
        raise BadInputError(f"{source}: gt_labels has shape {labels.shape} ({labels.dtype}), gt_boxes "
                            f"{boxes.shape}; save {layout}")
    if not np.all(np.isfinite(boxes)) or (labels.size and labels.min() < -1):
        raise BadInputError(f"{source}: gt_boxes must be finite and gt_labels >= -1 (-1 = padding); save {layout}")
    if n is not None and len(labels) != n:
        raise BadInputError(f"{source}: gt_labels has {len(labels)} rows for {n} samples of x; give one row per "
                            "sample (pad with -1)")
    return DetectionLabels(boxes.astype(np.float64), labels.astype(np.int64))


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one [y1, x1, y2, x2] box with each row of `boxes` (0 where the union is empty)."""
    box, boxes = np.asarray(box, np.float64), np.asarray(boxes, np.float64).reshape(-1, 4)
    h = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    w = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = h * w
    area = max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def class_probabilities(class_out: np.ndarray) -> np.ndarray:
    """The class head as probabilities: kept when rows are non-negative and sum to 1, else softmax (logits)."""
    p = np.asarray(class_out, np.float64)
    if np.all(p >= 0) and np.allclose(p.sum(axis=-1), 1.0, atol=1e-3):
        return p
    e = np.exp(p - p.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """All-point interpolated AP: the area under the monotone (right-maximum) precision envelope."""
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def mean_average_precision(pred_boxes, pred_scores, gt_boxes, gt_labels, iou_threshold: float = 0.5, *,
                           pred_labels=None, top_k: int = TOP_K) -> float:
    """mAP at `iou_threshold` over the classes that have ground truth (NaN when none has).

    pred_boxes (N, D, 4); pred_scores (N, D, C) class probabilities (class = arg-max, score = its
    probability) or, with pred_labels (N, D), the score of each detection. Per class, detections are sorted
    by score over all images and each is matched greedily to the unmatched ground truth box of its class
    with the highest IoU >= iou_threshold; a second detection of a matched box is a false positive.
    """
    pred_boxes = np.asarray(pred_boxes, np.float64)
    scores = np.asarray(pred_scores, np.float64)
    if pred_labels is None:
        classes, scores = np.argmax(scores, axis=-1), np.max(scores, axis=-1)
    else:
        classes = np.asarray(pred_labels).astype(np.int64)
    gt = detection_labels(gt_boxes, gt_labels, "ground truth", n=len(pred_boxes))
    keep = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
    rows = np.arange(len(scores))[:, None]
    pred_boxes, scores, classes = pred_boxes[rows, keep], scores[rows, keep], classes[rows, keep]
    aps = []
    for c in np.unique(gt.labels[gt.labels >= 0]):
        n_gt = int(np.sum(gt.labels == c))
        image, det = np.nonzero(classes == c)
        order = np.argsort(-scores[image, det], kind="stable")
        matched = gt.labels != c  # padding and other classes count as already taken
        tp = np.zeros(len(order))
        for i, k in enumerate(order):
            img = image[k]
            overlaps = np.where(matched[img], -1.0, iou(pred_boxes[img, det[k]], gt.boxes[img]))
            best = int(np.argmax(overlaps)) if overlaps.size else -1
            if best >= 0 and overlaps[best] >= iou_threshold:
                matched[img, best], tp[i] = True, 1.0
        hits = np.cumsum(tp)
        precision = hits / np.arange(1, len(tp) + 1)
        aps.append(average_precision(hits / n_gt, precision) if len(tp) else 0.0)
    return float(np.mean(aps)) if aps else float("nan")


def split_heads(outputs, heads=None) -> tuple[np.ndarray, np.ndarray] | None:
    """(box head (N, A, 4), class head (N, A, C)) from a model's outputs, or None when they are not in that
    layout. The box head is the first (N, A, 4) output that is not a softmax; the class head another output
    with the same N and A (so a 4-class logits head must come after the box head)."""
    outs = [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]
    activations = [getattr(h, "activation", None) for h in (heads or ())] + [None] * len(outs)
    for b, box in enumerate(outs):
        if box.ndim != 3 or box.shape[-1] != 4 or activations[b] == "softmax":
            continue
        for c, cls in enumerate(outs):
            if c != b and cls.ndim == 3 and cls.shape[:2] == box.shape[:2]:
                return box, cls
    return None


def detection_map(outputs, truth: DetectionLabels, heads=None, iou_threshold: float = 0.5) -> float | None:
    """mAP of model outputs in the documented layout against `truth`; None when the outputs are not in it."""
    pair = split_heads(outputs, heads)
    if pair is None or len(pair[0]) != len(truth):
        return None
    boxes, class_out = pair
    return mean_average_precision(boxes, class_probabilities(class_out), truth.boxes, truth.labels, iou_threshold)
