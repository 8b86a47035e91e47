"""Distillation losses on tensors: soft-target KL with temperature, hard labels, hints, attention transfer.

Each function returns a scalar averaged over the batch, so weights mean the same at any batch size.
Formulas (t teacher, s student logits, T temperature, y one-hot labels):
    soft_target_kl      T^2 * mean_batch( sum_k p_t,k (log p_t,k - log p_s,k) ),  p = softmax(logits / T)
    hard_cross_entropy  mean_batch( -sum_k y_k log softmax(s)_k )
    classification_loss alpha * CE(y, s) + (1 - alpha) * KL      (KL only when y is None)
    binary_soft_target_kl   the same with Bernoulli distributions sigmoid(logits / T), mean over units
    regression_loss     alpha * MSE(y, s) + (1 - alpha) * MSE(t, s)     (MSE(t, s) only when y is None)
    hint_loss           FitNets: MSE(adapter(F_s), F_t)
    attention_map       Zagoruyko & Komodakis: L2-normalise(mean_c |F|^2), flattened per sample
    attention_loss      mean_batch ||a_s - a_t||_2, pooling the larger feature map to the smaller size

    >>> import numpy as np
    >>> t = np.array([[2.0, 0.0]], np.float32)
    >>> round(float(soft_target_kl(t, t, temperature=4.0)), 6)
    0.0
"""

from __future__ import annotations

from edgekit._tf import tensorflow


def soft_target_kl(teacher_logits, student_logits, temperature: float):
    """KL(softmax(t/T) || softmax(s/T)) * T^2, summed over the last axis, averaged over the rest."""
    tf = tensorflow()
    t = tf.cast(teacher_logits, tf.float32) / temperature
    s = tf.cast(student_logits, tf.float32) / temperature
    log_p_t = tf.nn.log_softmax(t, axis=-1)
    log_p_s = tf.nn.log_softmax(s, axis=-1)
    kl = tf.reduce_sum(tf.exp(log_p_t) * (log_p_t - log_p_s), axis=-1)
    return temperature**2 * tf.reduce_mean(kl)


def hard_cross_entropy(labels_one_hot, student_logits):
    """Cross-entropy of the student's logits against (possibly smoothed) one-hot labels."""
    tf = tensorflow()
    log_p_s = tf.nn.log_softmax(tf.cast(student_logits, tf.float32), axis=-1)
    return tf.reduce_mean(-tf.reduce_sum(tf.cast(labels_one_hot, tf.float32) * log_p_s, axis=-1))


def classification_loss(teacher_logits, student_logits, labels_one_hot=None, *, temperature: float,
                        alpha: float):
    """Returns (total, kd, ce); ce is None and total is the KL term when there are no labels."""
    kd = soft_target_kl(teacher_logits, student_logits, temperature)
    if labels_one_hot is None:
        return kd, kd, None
    ce = hard_cross_entropy(labels_one_hot, student_logits)
    return alpha * ce + (1.0 - alpha) * kd, kd, ce


def binary_soft_target_kl(teacher_logits, student_logits, temperature: float):
    """Bernoulli KL(sigmoid(t/T) || sigmoid(s/T)) * T^2, averaged over units and batch (sigmoid heads)."""
    tf = tensorflow()
    t = tf.cast(teacher_logits, tf.float32) / temperature
    s = tf.cast(student_logits, tf.float32) / temperature
    p_t = tf.sigmoid(t)
    # log sigmoid(z) = -softplus(-z), log(1 - sigmoid(z)) = -softplus(z): stable for large |z|.
    kl = p_t * (tf.nn.softplus(-s) - tf.nn.softplus(-t)) + (1.0 - p_t) * (tf.nn.softplus(s) - tf.nn.softplus(t))
    return temperature**2 * tf.reduce_mean(kl)


def binary_loss(teacher_logits, student_logits, labels=None, *, temperature: float, alpha: float):
    """Returns (total, kd, bce) for sigmoid heads; labels are 0/1 per unit."""
    tf = tensorflow()
    kd = binary_soft_target_kl(teacher_logits, student_logits, temperature)
    if labels is None:
        return kd, kd, None
    bce = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.float32), logits=tf.cast(student_logits, tf.float32)))
    return alpha * bce + (1.0 - alpha) * kd, kd, bce


def regression_loss(teacher_outputs, student_outputs, targets=None, *, alpha: float):
    """Returns (total, mse to teacher, mse to targets or None): regression and autoencoder teachers."""
    tf = tensorflow()
    s = tf.cast(student_outputs, tf.float32)
    kd = tf.reduce_mean(tf.square(s - tf.cast(teacher_outputs, tf.float32)))
    if targets is None:
        return kd, kd, None
    hard = tf.reduce_mean(tf.square(s - tf.cast(targets, tf.float32)))
    return alpha * hard + (1.0 - alpha) * kd, kd, hard


def hint_loss(adapted_student_features, teacher_features):
    """FitNets hint: mean squared error between the adapted student map and the teacher map."""
    tf = tensorflow()
    s, t = match_spatial(tf.cast(adapted_student_features, tf.float32), tf.cast(teacher_features, tf.float32))
    return tf.reduce_mean(tf.square(s - t))


def attention_map(features):
    """Spatial attention of a (N, *spatial, C) map: mean over channels of F^2, flattened, L2-normalised."""
    tf = tensorflow()
    f = tf.cast(features, tf.float32)
    energy = tf.reduce_mean(tf.square(f), axis=-1)
    flat = tf.reshape(energy, (tf.shape(energy)[0], -1))
    return tf.math.l2_normalize(flat, axis=-1, epsilon=1e-12)


def attention_loss(student_features, teacher_features):
    """mean_batch ||a_s - a_t||_2 of the two attention maps (channel counts may differ)."""
    tf = tensorflow()
    s, t = match_spatial(tf.cast(student_features, tf.float32), tf.cast(teacher_features, tf.float32))
    diff = attention_map(s) - attention_map(t)
    squared = tf.reduce_sum(tf.square(diff), axis=-1)
    # sqrt has an infinite derivative at 0: take it only where the maps differ, so identical maps give 0.
    positive = squared > 0.0
    norm = tf.where(positive, tf.sqrt(tf.where(positive, squared, 1.0)), 0.0)
    return tf.reduce_mean(norm)


def match_spatial(a, b):
    """Average-pool the spatially larger of two (N, *spatial, C) maps down to the smaller one's size.

    Sizes must divide evenly (the usual case: both come from stride-2 pyramids); otherwise ValueError.
    """
    a_spatial, b_spatial = tuple(a.shape[1:-1]), tuple(b.shape[1:-1])
    if a_spatial == b_spatial or len(a_spatial) == 0:
        return a, b
    if len(a_spatial) != len(b_spatial):
        raise ValueError(f"feature maps of different rank: {tuple(a.shape)} vs {tuple(b.shape)}")
    if all(x >= y for x, y in zip(a_spatial, b_spatial)):
        return _pool_to(a, b_spatial), b
    if all(y >= x for x, y in zip(a_spatial, b_spatial)):
        return a, _pool_to(b, a_spatial)
    raise ValueError(f"feature maps {tuple(a.shape)} and {tuple(b.shape)}: neither is larger in every "
                     "spatial dimension; pick layers with matching sizes")


def _pool_to(x, target_spatial: tuple):
    tf = tensorflow()
    spatial = tuple(x.shape[1:-1])
    if any(s % t for s, t in zip(spatial, target_spatial)):
        raise ValueError(f"cannot pool spatial size {spatial} evenly down to {target_spatial}; "
                         "pick layers whose sizes divide")
    window = [s // t for s, t in zip(spatial, target_spatial)]
    return tf.nn.avg_pool(x, ksize=window, strides=window, padding="VALID")
