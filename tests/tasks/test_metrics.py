"""The task metrics against scikit-learn's reference implementations and hand-checkable cases."""

import numpy as np
import pytest
from sklearn.metrics import f1_score, jaccard_score, r2_score, roc_auc_score

from edgekit.tasks import metrics as m


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def test_roc_auc_matches_sklearn_with_ties(rng):
    scores = np.round(rng.normal(size=300), 1)          # rounding makes many ties
    labels = (scores + rng.normal(scale=1.0, size=300) > 0).astype(int)
    assert m.roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert m.roc_auc(-scores, labels) == pytest.approx(1 - roc_auc_score(labels, scores), abs=1e-12)
    assert np.isnan(m.roc_auc(scores, np.zeros(300)))


def test_multilabel_auc_and_f1_match_sklearn(rng):
    labels = (rng.random((200, 5)) < 0.3).astype(int)
    outputs = labels + rng.normal(scale=0.8, size=labels.shape)
    assert m.multilabel_auc(outputs, labels) == pytest.approx(roc_auc_score(labels, outputs, average="macro"))
    decisions = outputs > 0.5
    assert m.multilabel_f1(decisions, labels) == pytest.approx(f1_score(labels, decisions, average="macro"))


def test_regression_figures(rng):
    y = rng.normal(size=(100, 3))
    p = y + rng.normal(scale=0.3, size=y.shape)
    assert m.r2(p, y) == pytest.approx(r2_score(y, p, multioutput="variance_weighted"))
    assert m.r2(y, y) == 1.0
    assert m.r2(np.full_like(y, y.mean()), y) == pytest.approx(0.0, abs=0.02)
    assert m.mae(p, y) == pytest.approx(np.mean(np.abs(p - y)))
    assert m.relative_error(p, y) == pytest.approx(np.sqrt(np.mean((p - y) ** 2)) / np.std(y))


def test_mean_iou_matches_sklearn_jaccard(rng):
    truth = rng.integers(0, 4, size=(6, 8, 8))
    predicted = np.where(rng.random(truth.shape) < 0.7, truth, rng.integers(0, 4, size=truth.shape))
    expected = jaccard_score(truth.ravel(), predicted.ravel(), average="macro")
    assert m.mean_iou(predicted, truth, 4) == pytest.approx(expected)


def test_rank_agreement_and_reconstruction_error(rng):
    a = rng.normal(size=50)
    assert m.rank_agreement(a, 3 * a + 1) == pytest.approx(1.0)
    assert m.rank_agreement(a, -a) == pytest.approx(-1.0)
    x = rng.normal(size=(4, 10, 1))
    out = x.copy()
    out[2] += 2.0
    err = m.reconstruction_error(x, out)
    assert err.tolist() == pytest.approx([0, 0, 4.0, 0])
