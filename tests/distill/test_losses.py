"""Distillation losses against hand computation in numpy."""

import numpy as np
import pytest

from edgekit.distill import losses

RNG = np.random.default_rng(0)
T_LOGITS = RNG.normal(size=(5, 4)).astype(np.float32) * 3
S_LOGITS = RNG.normal(size=(5, 4)).astype(np.float32)
LABELS = np.eye(4, dtype=np.float32)[[0, 3, 1, 1, 2]]


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _kl(t, s, temperature):
    p, q = _softmax(t / temperature), _softmax(s / temperature)
    return temperature**2 * np.mean(np.sum(p * np.log(p / q), axis=-1))


def _ce(y, s):
    return np.mean(-np.sum(y * np.log(_softmax(s)), axis=-1))


@pytest.mark.parametrize("temperature", [1.0, 4.0, 10.0])
def test_soft_target_kl_includes_t_squared(temperature):
    got = float(losses.soft_target_kl(T_LOGITS, S_LOGITS, temperature))
    assert got == pytest.approx(_kl(T_LOGITS, S_LOGITS, temperature), rel=1e-5)
    assert got > 0
    assert float(losses.soft_target_kl(T_LOGITS, T_LOGITS + 7.0, temperature)) == pytest.approx(0, abs=1e-5)


def test_alpha_mixes_hard_cross_entropy_and_kl():
    total, _, ce = losses.classification_loss(T_LOGITS, S_LOGITS, LABELS, temperature=4.0, alpha=0.3)
    assert float(ce) == pytest.approx(_ce(LABELS, S_LOGITS), rel=1e-5)
    assert float(total) == pytest.approx(0.3 * _ce(LABELS, S_LOGITS) + 0.7 * _kl(T_LOGITS, S_LOGITS, 4.0), rel=1e-5)


def test_unlabelled_loss_is_the_kl_term_alone():
    total, kd, ce = losses.classification_loss(T_LOGITS, S_LOGITS, None, temperature=2.0, alpha=0.5)
    assert ce is None
    assert float(total) == float(kd) == pytest.approx(_kl(T_LOGITS, S_LOGITS, 2.0), rel=1e-5)


def test_binary_kl_matches_bernoulli_kl_and_bce():
    t, s, y = T_LOGITS[:, :2], S_LOGITS[:, :2], LABELS[:, :2]
    temperature = 3.0
    p, q = 1 / (1 + np.exp(-t / temperature)), 1 / (1 + np.exp(-s / temperature))
    kl = temperature**2 * np.mean(p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q)))
    sig = 1 / (1 + np.exp(-s))
    bce = np.mean(-(y * np.log(sig) + (1 - y) * np.log(1 - sig)))
    total, kd, hard = losses.binary_loss(t, s, y, temperature=temperature, alpha=0.25)
    assert float(kd) == pytest.approx(kl, rel=1e-5)
    assert float(hard) == pytest.approx(bce, rel=1e-5)
    assert float(total) == pytest.approx(0.25 * bce + 0.75 * kl, rel=1e-5)


def test_regression_loss_is_mse_to_teacher_mixed_with_targets():
    t, s, y = RNG.normal(size=(6, 3)), RNG.normal(size=(6, 3)), RNG.normal(size=(6, 3))
    total, kd, hard = losses.regression_loss(t, s, y, alpha=0.2)
    assert float(kd) == pytest.approx(np.mean((s - t) ** 2), rel=1e-5)
    assert float(total) == pytest.approx(0.2 * np.mean((s - y) ** 2) + 0.8 * np.mean((s - t) ** 2), rel=1e-5)
    total, kd, hard = losses.regression_loss(t, s, None, alpha=0.2)
    assert hard is None and float(total) == pytest.approx(np.mean((s - t) ** 2), rel=1e-5)


def test_attention_map_is_normalised_mean_square_over_channels():
    f = RNG.normal(size=(2, 4, 3, 8)).astype(np.float32)
    a = np.asarray(losses.attention_map(f))
    assert a.shape == (2, 12)
    expected = np.mean(f**2, axis=-1).reshape(2, -1)
    expected /= np.linalg.norm(expected, axis=-1, keepdims=True)
    np.testing.assert_allclose(a, expected, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(a, axis=-1), 1.0, rtol=1e-6)


def test_attention_loss_zero_for_identical_maps_and_channel_independent():
    f = RNG.normal(size=(3, 6, 5)).astype(np.float32)
    assert float(losses.attention_loss(f, f)) == 0.0
    # Same spatial energy with other channel counts: a teacher map of 2x the channels, duplicated.
    assert float(losses.attention_loss(f, np.concatenate([f, f], axis=-1))) == pytest.approx(0, abs=1e-6)
    g = RNG.normal(size=(3, 6, 16)).astype(np.float32)
    a_f, a_g = np.asarray(losses.attention_map(f)), np.asarray(losses.attention_map(g))
    expected = np.mean(np.linalg.norm(a_f - a_g, axis=-1))
    assert float(losses.attention_loss(f, g)) == pytest.approx(expected, rel=1e-5)


def test_attention_loss_has_finite_gradient_at_zero():
    from edgekit._tf import tensorflow

    tf = tensorflow()

    f = tf.Variable(RNG.normal(size=(2, 4, 4, 3)).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = losses.attention_loss(f, tf.identity(f))
    grad = tape.gradient(loss, f)
    assert np.all(np.isfinite(grad.numpy()))


def test_larger_map_is_average_pooled_to_the_smaller():
    big = RNG.normal(size=(2, 8, 8, 4)).astype(np.float32)
    small = big.reshape(2, 4, 2, 4, 2, 4).mean(axis=(2, 4))
    a, _ = losses.match_spatial(big, small)
    np.testing.assert_allclose(np.asarray(a), small, rtol=1e-5)
    assert float(losses.hint_loss(big, small)) == pytest.approx(0, abs=1e-10)
    with pytest.raises(ValueError, match="evenly"):
        losses.match_spatial(np.zeros((1, 7, 7, 2)), np.zeros((1, 2, 2, 2)))


def test_hint_loss_is_mse():
    s, t = RNG.normal(size=(2, 5, 3)), RNG.normal(size=(2, 5, 3))
    assert float(losses.hint_loss(s, t)) == pytest.approx(np.mean((s - t) ** 2), rel=1e-5)
