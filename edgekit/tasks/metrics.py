"""Task metrics on numpy arrays (pure: no TensorFlow): what `edgekit fit` scores a model by.

Every function takes plain arrays with the sample axis first and returns a float; none of them
trains or runs a model.

    >>> import numpy as np
    >>> roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
    0.75
    >>> round(mean_iou(np.array([[0, 1], [1, 1]]), np.array([[0, 1], [0, 1]]), 2), 4)
    0.5833
"""

from __future__ import annotations

import numpy as np


def top1(outputs: np.ndarray, classes: np.ndarray) -> float:
    """Share of samples whose arg-max over the last axis is the given class index."""
    predicted = np.argmax(outputs, axis=-1).reshape(len(outputs), -1)
    return float(np.mean(predicted == np.asarray(classes).reshape(predicted.shape)))


def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given their average rank."""
    values = np.asarray(values, np.float64).reshape(-1)
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), np.float64)
    sorted_values = values[order]
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start:end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return ranks


def roc_auc(scores: np.ndarray, positives: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U; ties count half); NaN when only one class is present."""
    scores = np.asarray(scores, np.float64).reshape(-1)
    positive = np.asarray(positives).reshape(-1).astype(bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _ranks(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def multilabel_auc(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Mean ROC AUC over the label columns that hold both classes (NaN when none does)."""
    outputs = np.asarray(outputs).reshape(len(outputs), -1)
    labels = np.asarray(labels).reshape(outputs.shape)
    aucs = [roc_auc(outputs[:, k], labels[:, k]) for k in range(outputs.shape[1])]
    aucs = [a for a in aucs if not np.isnan(a)]
    return float(np.mean(aucs)) if aucs else float("nan")


def multilabel_f1(decisions: np.ndarray, labels: np.ndarray) -> float:
    """Macro F1 over label columns of 0/1 decisions (a column with no positives anywhere scores 1)."""
    d = np.asarray(decisions).reshape(len(decisions), -1).astype(bool)
    t = np.asarray(labels).reshape(d.shape).astype(bool)
    tp = (d & t).sum(axis=0)
    denom = d.sum(axis=0) + t.sum(axis=0)
    f1 = np.where(denom > 0, 2.0 * tp / np.maximum(denom, 1), 1.0)
    return float(np.mean(f1))


def r2(outputs: np.ndarray, targets: np.ndarray) -> float:
    """Coefficient of determination 1 - SSE / SST over all output values (1: exact; 0: no better than the mean)."""
    y = np.asarray(targets, np.float64).reshape(len(targets), -1)
    p = np.asarray(outputs, np.float64).reshape(y.shape)
    sst = float(np.sum((y - y.mean(axis=0)) ** 2))
    sse = float(np.sum((y - p) ** 2))
    if sst == 0.0:
        return 1.0 if sse == 0.0 else 0.0
    return 1.0 - sse / sst


def mse(outputs: np.ndarray, targets: np.ndarray) -> float:
    return float(np.mean((np.asarray(outputs, np.float64) - np.asarray(targets,
                                                                       np.float64).reshape(np.shape(outputs))) ** 2))


def mae(outputs: np.ndarray, targets: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(outputs, np.float64)
                                - np.asarray(targets, np.float64).reshape(np.shape(outputs)))))


def relative_error(outputs: np.ndarray, targets: np.ndarray) -> float:
    """Root mean squared error over the targets' standard deviation (0: exact; 1: as bad as predicting the mean)."""
    spread = float(np.std(np.asarray(targets, np.float64)))
    return float(np.sqrt(mse(outputs, targets)) / spread) if spread > 0 else float("inf")


def reconstruction_error(x: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """Per-sample mean squared difference between input and reconstruction: an autoencoder's anomaly score."""
    diff = np.asarray(outputs, np.float64).reshape(len(outputs), -1) - np.asarray(x, np.float64).reshape(len(x), -1)
    return np.mean(diff ** 2, axis=1)


def rank_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two score vectors (1: same order)."""
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = float(np.sqrt(np.sum(ra ** 2) * np.sum(rb ** 2)))
    return float(np.sum(ra * rb) / denom) if denom > 0 else 1.0


def mean_iou(predicted: np.ndarray, truth: np.ndarray, n_classes: int) -> float:
    """Mean intersection over union of per-pixel class maps, over the classes present in either map."""
    p = np.asarray(predicted).reshape(-1).astype(np.int64)
    t = np.asarray(truth).reshape(-1).astype(np.int64)
    ious = []
    for k in range(n_classes):
        union = np.sum((p == k) | (t == k))
        if union:
            ious.append(np.sum((p == k) & (t == k)) / union)
    return float(np.mean(ious)) if ious else 1.0
