"""Data augmentation for distillation, per input kind, as seeded TensorFlow ops inside the training step.

Consistent teaching (Beyer et al. 2022, "Knowledge distillation: a good teacher is patient and consistent"):
the teacher and the student see the same augmented batch, so the teacher's outputs are computed on it in the
training step rather than cached. Kinds and what they do to a batch x (labels y follow mixup only):
    signal       (N, length, channels): shift in time by up to SIGNAL_SHIFT of the length (zero-padded),
                 scale the amplitude by U(1 - SIGNAL_SCALE, 1 + SIGNAL_SCALE), add Gaussian noise of
                 SIGNAL_NOISE times the sample's standard deviation
    image        (N, height, width, channels): pad by IMAGE_PAD of the side (edge values) and crop back at a
                 random offset; a horizontal flip only with flip=True (digits and text must not be mirrored)
    spectrogram  (N, time, frequency, 1): SpecAugment masking, SPEC_MASKS time and SPEC_MASKS frequency
                 bands of up to SPEC_MASK_FRACTION of the axis each, filled with the sample's mean
    mixup        any kind (mixup=alpha > 0): x = lam x + (1 - lam) x[perm], y likewise, lam ~ Beta(alpha, alpha)
                 per sample; the teacher labels the mixed input, so its targets mix consistently

    >>> resolve_augmentation("auto", (None, 40, 1)).kind         # doctest: +SKIP
    'signal'
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.errors import BadInputError

KINDS = ("signal", "image", "spectrogram")
CHOICES = ("auto", "none") + KINDS
SIGNAL_SHIFT = 0.1
SIGNAL_SCALE = 0.2
SIGNAL_NOISE = 0.05
IMAGE_PAD = 0.125
SPEC_MASKS = 2
SPEC_MASK_FRACTION = 0.15


@dataclass(frozen=True)
class Augmentation:
    """What to do to each training batch: kind ('none', 'signal', 'image', 'spectrogram'), mixup's Beta alpha
    (0: off) and whether images may be mirrored."""

    kind: str = "none"
    mixup: float = 0.0
    flip: bool = False
    note: str = ""

    @property
    def active(self) -> bool:
        return self.kind != "none" or self.mixup > 0


def infer_kind(input_shape) -> str:
    """The input kind from a (None, ...) input shape: rank 2 a signal, rank 3 an image (or a spectrogram when
    it has one channel and is not square), anything else 'none'."""
    dims = tuple(input_shape)[1:]
    if len(dims) == 2:
        return "signal"
    if len(dims) == 3:
        height, width, channels = dims
        if channels == 1 and None not in (height, width) and height != width:
            return "spectrogram"
        return "image"
    return "none"


def resolve_augmentation(augment: str, input_shape, *, mixup: float = 0.0, flip: bool = False,
                         task: str = "classification") -> Augmentation:
    """Check the options and pick the kind ('auto': from `input_shape`, and only for classification: a shifted
    input would no longer match per-position targets); raises BadInputError naming the field."""
    if augment not in CHOICES:
        raise BadInputError(f"augment must be one of {', '.join(CHOICES)}, got {augment!r}")
    if not isinstance(mixup, (int, float)) or mixup < 0:
        raise BadInputError(f"mixup must be a number >= 0 (the Beta distribution's alpha, 0 = off), got {mixup!r}")
    kind = (infer_kind(input_shape) if task == "classification" else "none") if augment == "auto" else augment
    rank = len(tuple(input_shape)) - 1
    needed = {"signal": 2, "image": 3, "spectrogram": 3}.get(kind)
    if needed is not None and rank != needed:
        raise BadInputError(f"augment={kind!r} needs inputs of rank {needed} (without the batch axis), the model "
                            f"takes {tuple(input_shape)}; pick another kind or augment='none'")
    if needed is not None and None in tuple(input_shape)[1:-1]:
        if augment == "auto":
            kind = "none"
        else:
            raise BadInputError(f"augment={kind!r} needs a fixed input size, the model takes {tuple(input_shape)}; "
                                "use augment='none'")
    if flip and kind != "image":
        raise BadInputError(f"flip applies to augment='image', not {kind!r}")
    note = f"augmentation: {kind}" + (f" + mixup {mixup:g}" if mixup else "") + (" + flip" if flip else "")
    if augment == "auto":
        note += " (from the input shape; pass augment=... to choose)"
    return Augmentation(kind, float(mixup), bool(flip), note if kind != "none" or mixup else "")


def augment_batch(x, y, augmentation: Augmentation, seed):
    """(x, y) augmented; y may be None (then not mixed). `seed`: shape-[2] integer tensor, e.g. (user seed,
    optimizer step): stateless draws, so a run repeats exactly and no random-state variable is needed."""
    tf = _tf()
    generator = _Draws(seed)
    x = tf.convert_to_tensor(x)
    dtype = x.dtype
    x = tf.cast(x, tf.float32)
    if augmentation.kind == "signal":
        x = _signal(x, generator)
    elif augmentation.kind == "image":
        x = _image(x, generator, augmentation.flip)
    elif augmentation.kind == "spectrogram":
        x = _spectrogram(x, generator)
    if augmentation.mixup > 0:
        x, y = _mixup(x, y, augmentation.mixup, generator)
    return tf.cast(x, dtype), y


def _tf():
    from edgekit._tf import tensorflow

    return tensorflow()


class _Draws:
    """Stateless random draws from one seed: each call folds a new counter into it."""

    def __init__(self, seed) -> None:
        tf = _tf()
        self.seed, self.count = tf.cast(seed, tf.int64), 0

    def _next(self):
        self.count += 1
        return _tf().random.experimental.stateless_fold_in(self.seed, self.count)

    def uniform(self, shape, minval=0.0, maxval=1.0, dtype=None):
        tf = _tf()
        dtype = dtype or tf.float32
        return tf.random.stateless_uniform(shape, self._next(), minval, maxval, dtype=dtype)

    def normal(self, shape):
        return _tf().random.stateless_normal(shape, self._next())

    def gamma(self, shape, alpha: float):
        return _tf().random.stateless_gamma(shape, self._next(), alpha=alpha)


def _shift(x, generator, axis: int, pad: int, mode: str):
    """Each sample moved along `axis` (1 or 2) by its own offset in [-pad, pad], padded with zeros or edges."""
    tf = _tf()
    if pad <= 0:
        return x
    size = tf.shape(x)[axis]
    paddings = [[0, 0]] * len(x.shape)
    paddings[axis] = [pad, pad]
    padded = tf.pad(x, paddings, mode=mode)
    offsets = generator.uniform([tf.shape(x)[0]], 0, 2 * pad + 1, dtype=tf.int32)
    index = offsets[:, None] + tf.range(size)[None, :]
    return tf.gather(padded, index, axis=axis, batch_dims=1)


def _signal(x, generator):
    tf = _tf()
    n = tf.shape(x)[0]
    x = _shift(x, generator, 1, max(1, round(SIGNAL_SHIFT * int(x.shape[1]))), "CONSTANT")
    scale = generator.uniform([n, 1, 1], 1.0 - SIGNAL_SCALE, 1.0 + SIGNAL_SCALE)
    std = tf.math.reduce_std(x, axis=[1, 2], keepdims=True)
    return x * scale + SIGNAL_NOISE * std * generator.normal(tf.shape(x))


def _image(x, generator, flip: bool):
    tf = _tf()
    height, width = int(x.shape[1]), int(x.shape[2])
    x = _shift(x, generator, 1, max(1, round(IMAGE_PAD * height)), "SYMMETRIC")
    x = _shift(x, generator, 2, max(1, round(IMAGE_PAD * width)), "SYMMETRIC")
    if flip:
        mirror = generator.uniform([tf.shape(x)[0], 1, 1, 1]) < 0.5
        x = tf.where(mirror, tf.reverse(x, axis=[2]), x)
    return x


def _band_mask(generator, n, size: int, axis_shape):
    """(n, ...) boolean: True inside one random band of up to SPEC_MASK_FRACTION of `size` per sample."""
    tf = _tf()
    max_width = max(1, int(SPEC_MASK_FRACTION * size))
    width = generator.uniform([n], 0, max_width + 1, dtype=tf.int32)
    start = tf.cast(generator.uniform([n]) * tf.cast(size - width + 1, tf.float32), tf.int32)
    positions = tf.range(size)[None, :]
    band = (positions >= start[:, None]) & (positions < (start + width)[:, None])
    return tf.reshape(band, axis_shape)


def _spectrogram(x, generator):
    tf = _tf()
    n = tf.shape(x)[0]
    time, freq = int(x.shape[1]), int(x.shape[2])
    masked = tf.zeros(tf.shape(x), tf.bool)
    for _ in range(SPEC_MASKS):
        masked |= _band_mask(generator, n, time, [n, time, 1, 1])
        masked |= _band_mask(generator, n, freq, [n, 1, freq, 1])
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    return tf.where(masked, mean * tf.ones_like(x), x)


def _mixup(x, y, alpha: float, generator):
    tf = _tf()
    n = tf.shape(x)[0]
    a, b = generator.gamma([n], alpha), generator.gamma([n], alpha)
    lam = a / (a + b + 1e-12)
    perm = tf.argsort(generator.uniform([n]))
    lam_x = tf.reshape(lam, tf.concat([[n], tf.ones([tf.rank(x) - 1], tf.int32)], 0))
    x = lam_x * x + (1.0 - lam_x) * tf.gather(x, perm)
    if y is not None:
        y = tf.cast(y, tf.float32)
        lam_y = tf.reshape(lam, tf.concat([[n], tf.ones([tf.rank(y) - 1], tf.int32)], 0))
        y = lam_y * y + (1.0 - lam_y) * tf.gather(y, perm)
    return x, y
