"""Small, offline example data sets: MNIST-1D (generated) and scikit-learn's bundled 8x8 digits.

Nothing here touches the network: MNIST-1D is generated from its templates with
`mnist1d.data.make_dataset` (the package's `get_dataset` would try to download a pickle), and the
digits ship inside scikit-learn. Results are cached per process and their arrays are read-only.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

import numpy as np

from edgekit.data import VAL_FRACTION

# MNIST-1D: the generator's own split is 80 % train / 20 % test; we carve validation from train.
MNIST1D_VAL_FRACTION = VAL_FRACTION
# Digits: 1797 images in total.
DIGITS_TEST_FRACTION = 0.2
DIGITS_VAL_FRACTION = VAL_FRACTION


@dataclass(frozen=True, eq=False)  # eq=False: holds numpy arrays
class Split:
    """Train / validation / test arrays: x float32 shaped (N, *input_shape), y int64 class labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_val.max(), self.y_test.max())) + 1


def load_mnist1d(n_samples: int = 10000, seed: int = 42) -> Split:
    """MNIST-1D generated offline: x shaped (N, 40, 1) float32, labels 0..9.

    Sizes for n_samples=10000: 7200 train, 800 validation, 2000 test. In general the generator keeps
    `n_samples // 10` per class, puts 80 % of them in train and 20 % in test (its own split), and the
    last 10 % of train becomes validation. The same (n_samples, seed) always gives the same arrays.

    >>> split = load_mnist1d(n_samples=1000)
    >>> split.x_train.shape, split.x_val.shape, split.x_test.shape
    ((720, 40, 1), (80, 40, 1), (200, 40, 1))
    """
    if n_samples < 20:
        raise ValueError(f"load_mnist1d: n_samples={n_samples} is too small; use at least 20 (2 per class)")
    return _mnist1d_cached(int(n_samples), int(seed))


@functools.lru_cache(maxsize=4)
def _mnist1d_cached(n_samples: int, seed: int) -> Split:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = n_samples
    args.seed = seed
    # make_dataset reseeds numpy's and Python's global generators; give callers theirs back.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)

    x = np.asarray(data["x"], dtype=np.float32)[..., None]
    y = np.asarray(data["y"], dtype=np.int64)
    n_train = len(y) - round(len(y) * MNIST1D_VAL_FRACTION)
    return _frozen_split(
        x[:n_train], y[:n_train],
        x[n_train:], y[n_train:],
        np.asarray(data["x_test"], dtype=np.float32)[..., None], np.asarray(data["y_test"], dtype=np.int64),
    )


def load_digits_split(seed: int = 0) -> Split:
    """scikit-learn's bundled 8x8 digits as (N, 8, 8, 1) float32 in [0, 1], labels 0..9.

    Sizes: 1797 images -> 360 test (20 %), 144 validation (10 % of the rest), 1293 train;
    stratified by class, deterministic for a given seed.

    >>> split = load_digits_split()
    >>> split.x_train.shape, split.x_val.shape, split.x_test.shape
    ((1293, 8, 8, 1), (144, 8, 8, 1), (360, 8, 8, 1))
    """
    return _digits_cached(int(seed))


@functools.lru_cache(maxsize=4)
def _digits_cached(seed: int) -> Split:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int64)
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=DIGITS_TEST_FRACTION, random_state=seed, stratify=y
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=DIGITS_VAL_FRACTION, random_state=seed, stratify=y_rest
    )
    return _frozen_split(x_train, y_train, x_val, y_val, x_test, y_test)


def _frozen_split(*arrays: np.ndarray) -> Split:
    # Cached arrays are shared between callers: make accidental in-place edits fail loudly.
    copies = []
    for array in arrays:
        array = np.ascontiguousarray(array).copy()
        array.setflags(write=False)
        copies.append(array)
    return Split(*copies)


# Shapes32: a generated colour image task (edgekit's own generator; same licence as edgekit, no download).
SHAPES32_CLASSES = ("circle", "square", "triangle", "ring", "plus", "cross", "horizontal stripes",
                    "vertical stripes")
SHAPES32_SIZE = 32
SHAPES32_NOISE = 0.12  # per-pixel Gaussian noise (std) on [0, 1] colours: keeps a good classifier under 100 %


def load_shapes32(n_samples: int = 6000, seed: int = 0) -> Split:
    """Shapes32: (N, 32, 32, 3) float32 colour images in [0, 1] of 8 shapes (SHAPES32_CLASSES), labels 0..7.

    Generated by edgekit (numpy only, no download; same licence as edgekit): one shape per image, random
    centre (+-6 px), size (radius 5-9 px; stripes 3-4 px apart), foreground and background colours (at least
    0.4 apart in mean brightness, either way round), a low-frequency background texture and SHAPES32_NOISE
    pixel noise. Mirroring left-right keeps every class, so augment='image' with flip=True is safe here.
    20 % test, 10 % of the rest validation; the same (n_samples, seed) always gives the same arrays.

    >>> split = load_shapes32(n_samples=500)
    >>> split.x_train.shape, split.x_val.shape, split.x_test.shape
    ((360, 32, 32, 3), (40, 32, 32, 3), (100, 32, 32, 3))
    """
    if n_samples < 50:
        raise ValueError(f"load_shapes32: n_samples={n_samples} is too small; use at least 50")
    return _shapes32_cached(int(n_samples), int(seed))


@functools.lru_cache(maxsize=2)
def _shapes32_cached(n_samples: int, seed: int) -> Split:
    rng = np.random.default_rng(seed)
    y = np.arange(n_samples) % len(SHAPES32_CLASSES)
    rng.shuffle(y)
    x = _shapes32_images(y, rng)
    n_test = round(0.2 * n_samples)
    n_val = round(VAL_FRACTION * (n_samples - n_test))
    n_train = n_samples - n_test - n_val
    return _frozen_split(x[:n_train], y[:n_train], x[n_train:n_train + n_val], y[n_train:n_train + n_val],
                         x[n_train + n_val:], y[n_train + n_val:])


def _shapes32_images(y: np.ndarray, rng) -> np.ndarray:
    n, size = len(y), SHAPES32_SIZE
    grid = np.arange(size, dtype=np.float32)
    centre = size / 2 + rng.uniform(-6, 6, (n, 2)).astype(np.float32)
    radius = rng.uniform(5.0, 9.0, n).astype(np.float32)[:, None, None]
    dy = grid[None, :, None] - centre[:, 1, None, None]
    dx = grid[None, None, :] - centre[:, 0, None, None]
    dist, box = np.hypot(dx, dy), np.maximum(np.abs(dx), np.abs(dy))
    period = rng.integers(3, 5, n)[:, None, None]
    thin = 0.28 * radius
    masks = [
        dist <= radius,
        box <= 0.85 * radius,
        (np.abs(dy) <= 0.85 * radius) & (np.abs(dx) <= (dy + 0.85 * radius) / 2),
        (dist <= radius) & (dist >= 0.55 * radius),
        ((np.abs(dx) <= thin) & (np.abs(dy) <= radius)) | ((np.abs(dy) <= thin) & (np.abs(dx) <= radius)),
        ((np.abs(dx - dy) <= thin) | (np.abs(dx + dy) <= thin)) & (box <= 0.85 * radius),
        (box <= radius) & (np.floor((dy + radius) / period) % 2 == 0),
        (box <= radius) & (np.floor((dx + radius) / period) % 2 == 0),
    ]
    mask = np.choose(y[:, None, None], masks)[..., None].astype(np.float32)
    fg = rng.uniform(0, 1, (n, 1, 1, 3)).astype(np.float32)
    shift = rng.uniform(0.4, 0.7, (n, 1, 1, 1)) * np.where(fg.mean(axis=-1, keepdims=True) > 0.5, -1, 1)
    bg = np.clip(fg + shift + rng.uniform(-0.15, 0.15, (n, 1, 1, 3)), 0, 1).astype(np.float32)
    texture = 0.1 * np.sin(grid[None, :, None, None] * rng.uniform(0.2, 0.6, (n, 1, 1, 1))
                           + grid[None, None, :, None] * rng.uniform(0.2, 0.6, (n, 1, 1, 1)))
    image = mask * fg + (1 - mask) * (bg + texture) + SHAPES32_NOISE * rng.normal(size=(n, size, size, 3))
    return np.clip(image, 0, 1).astype(np.float32)
