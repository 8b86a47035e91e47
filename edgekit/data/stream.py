"""Streamed data: a StreamSource knows its samples (count, shape, labels) and builds a tf.data pipeline of them.

Elements are dicts {"x": float32 sample at the model's input shape, "y": its label (labelled sources only),
"index": int64 position of the sample in the whole source}. The index is the key of the on-disk teacher-logit
cache (edgekit.distill.teacher_cache), so the train and validation parts of one source share one cache file.

The pipeline (`elements(shuffle_seed)`): the source's units (blocks of BLOCK_ROWS rows, at most BLOCK_BYTES,
of a stored .npy / .npz array; a whole compressed .npz member; a TFRecord file; an image file) are shuffled,
read and decoded in parallel (map with num_parallel_calls, then unbatch; TFRecord files interleaved), then
mixed by a shuffle buffer of SHUFFLE_BUFFER samples, at most SHUFFLE_BYTES of them (edgekit.data.stream_read).
Without a seed the order is the file order. Arrays are read with positioned reads, not memory maps:
mapped pages of a 2 GB file count in the process's resident set once touched, read() pages do not.

The split (`split(val_fraction, seed)`) is per sample by a fixed pseudo-random mask over the indices
(numpy default_rng(seed) drawn in chunks: sample i is validation when its draw is below val_fraction). It
reads no data, depends only on (number of samples, fraction, seed), and is the same on every run. Unlike the
in-memory split it is not stratified by class; on large data that moves class shares by noise only.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from edgekit.data.arrays import Dataset
from edgekit.data.split import VAL_FRACTION
from edgekit.data.stream_read import ArrayLayout
from edgekit.errors import BadInputError

SAMPLE_BYTES = 32 << 20           # the bounded in-memory sample (`sample()`): planning, calibration, checks
_MASK_CHUNK = 1 << 20


@dataclass(frozen=True)
class StreamSource:
    """Samples read from disk batch by batch, never whole (see the module docstring).

    kind is "arrays" (.npy files, .npz files or a folder of .npz shards), "tfrecord" or "images".
    """

    kind: str
    source: str
    file_samples: tuple[int, ...]
    stored_shape: tuple[int, ...]        # one sample as stored
    element_shape: tuple[int, ...]       # one sample as the model takes it (a lone channel axis may be added)
    x_layouts: tuple[ArrayLayout, ...] = ()
    y_layouts: tuple[ArrayLayout, ...] | None = None
    files: tuple[str, ...] = ()          # tfrecord and image files
    file_labels: tuple[int, ...] | None = None   # images: class index per file
    label_shape: tuple[int, ...] | None = None   # None: unlabelled
    label_dtype: str = "int64"
    x_format: str = ""                   # tfrecord: "bytes" (tf.io.serialize_tensor) or "floats"
    class_names: tuple[str, ...] | None = None
    notices: tuple[str, ...] = ()
    val_fraction: float = 0.0
    split_seed: int = 0
    part: str = "all"                    # "all", "train" or "val"
    samples_per_epoch: int | None = None  # cap on samples per training epoch (None: all of them)
    cache_dir: str | None = None          # where per-sample caches (teacher logits) live; None: temporary

    # ------------------------------------------------------------------------------------- what it holds
    @property
    def total_samples(self) -> int:
        return int(sum(self.file_samples))

    @property
    def num_samples(self) -> int:
        if self.part == "all":
            return self.total_samples
        n_val = int(_val_mask(self.total_samples, self.val_fraction, self.split_seed).sum())
        return n_val if self.part == "val" else self.total_samples - n_val

    def __len__(self) -> int:
        return self.num_samples

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.num_samples, *self.element_shape)

    @property
    def has_labels(self) -> bool:
        return self.label_shape is not None

    @property
    def paths(self) -> tuple[str, ...]:
        return self.files or tuple(dict.fromkeys(layout.path for layout in self.x_layouts))

    def fingerprint(self) -> str:
        """A digest of the whole source (files, sizes, modification times, layout): a cache key for its data."""
        digest = hashlib.sha256(repr((self.kind, self.stored_shape, self.label_shape, self.x_format,
                                      self.file_labels)).encode())
        for path in self.paths:
            stat = os.stat(path)
            digest.update(f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}".encode())
        return digest.hexdigest()

    def split(self, val_fraction: float = VAL_FRACTION, seed: int = 0) -> tuple[StreamSource, StreamSource]:
        """(train, val) parts of this source by the per-sample mask of the module docstring; nothing is read."""
        if self.part != "all":
            raise BadInputError(f"{self.source}: this is already the {self.part} part of a split; split the source")
        if not 0.0 < val_fraction < 1.0:
            raise BadInputError(f"{self.source}: val_fraction must be between 0 and 1, got {val_fraction}")
        if self.total_samples < 2:
            raise BadInputError(f"{self.source}: {self.total_samples} sample(s) cannot be split into train and "
                                "validation; provide more data or separate validation data")
        parts = [dataclasses.replace(self, val_fraction=float(val_fraction), split_seed=int(seed), part=p)
                 for p in ("train", "val")]
        return parts[0], parts[1]

    def selection(self) -> np.ndarray | None:
        """Bool mask over the whole source's indices of the samples in this part (None: all of them)."""
        if self.part == "all":
            return None
        mask = _val_mask(self.total_samples, self.val_fraction, self.split_seed)
        return mask if self.part == "val" else ~mask

    # ---------------------------------------------------------------------------------- numpy reading
    def units(self) -> list[tuple[int, int, int]]:
        """(file number, first row, end row) of each unit the pipeline reads at once."""
        from edgekit.data.stream_read import units

        return units(self)

    def iter_blocks(self, max_rows_per_unit: int | None = None, unit_numbers=None
                    ) -> Iterator[tuple[np.ndarray, np.ndarray | None, np.ndarray]]:
        """(x, y or None, index) numpy blocks of this part in file order: all of it in chunks (a TFRecord
        file chunk by chunk), or up to max_rows_per_unit of each unit in `unit_numbers`."""
        from edgekit.data.stream_read import iter_batches, read_unit

        if max_rows_per_unit is None and unit_numbers is None:
            yield from iter_batches(self)
            return
        all_units = self.units()
        for number in range(len(all_units)) if unit_numbers is None else unit_numbers:
            x, y, index = read_unit(self, all_units[int(number)], max_rows_per_unit)
            if len(index):
                yield x, y, index

    def sample(self, max_bytes: int = SAMPLE_BYTES) -> Dataset:
        """A bounded in-memory Dataset: up to `max_bytes` of samples from units spread evenly over the source
        (so a class-sorted folder gives every class), for the steps that need arrays."""
        per_sample = 4 * math.prod(self.element_shape)
        want = max(1, min(self.num_samples, max_bytes // max(1, per_sample)))
        n_units = len(self.units())
        picked = np.unique(np.linspace(0, n_units - 1, num=min(n_units, max(1, want // 64 + 1))).astype(int))
        per_unit = max(1, math.ceil(want / len(picked)))
        xs, ys = [], []
        taken = 0
        for x, y, _ in self.iter_blocks(max_rows_per_unit=per_unit, unit_numbers=picked):
            xs.append(x[: want - taken])
            ys.append(None if y is None else y[: want - taken])
            taken += len(xs[-1])
            if taken >= want:
                break
        if not xs:
            raise BadInputError(f"{self.source}: the {self.part} part holds no samples; use more data")
        y_all = None if ys[0] is None else np.concatenate(ys)
        return Dataset(x=np.concatenate(xs), y=y_all, source=self.source, class_names=self.class_names,
                       notices=self.notices)

    # --------------------------------------------------------------------------------------- tf.data
    def elements(self, shuffle_seed: int | None = None):
        """An unbatched tf.data.Dataset of {"x", "y" (labelled only), "index"} over this part; shuffled (units,
        then a buffer of SHUFFLE_BUFFER) and reshuffled each epoch when shuffle_seed is given."""
        from edgekit.data.stream_read import element_dataset

        return element_dataset(self, shuffle_seed)

    def with_samples_per_epoch(self, samples: int | None) -> StreamSource:
        if samples is not None and samples < 1:
            raise BadInputError(f"samples per epoch must be >= 1, got {samples}")
        return dataclasses.replace(self, samples_per_epoch=samples)

    def without_labels(self) -> StreamSource:
        return dataclasses.replace(self, label_shape=None, y_layouts=None, file_labels=None)

    def with_cache_dir(self, folder: str | os.PathLike | None) -> StreamSource:
        return dataclasses.replace(self, cache_dir=None if folder is None else os.fspath(folder))


@functools.lru_cache(maxsize=8)
def _val_mask(total: int, fraction: float, seed: int) -> np.ndarray:
    """True at the validation samples' indices; at least one sample on each side."""
    rng = np.random.default_rng(seed)
    mask = np.concatenate([rng.random(min(_MASK_CHUNK, total - start)) < fraction
                           for start in range(0, total, _MASK_CHUNK)]) if total else np.zeros(0, bool)
    if total >= 2 and not mask.any():
        mask[0] = True
    if total >= 2 and mask.all():
        mask[0] = False
    mask.setflags(write=False)
    return mask
