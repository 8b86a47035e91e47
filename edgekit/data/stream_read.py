"""Reading a StreamSource: its units, numpy blocks of them (positioned reads), and its tf.data pipeline.

`source` arguments are edgekit.data.stream.StreamSource values (not imported here: that module imports this one).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from edgekit.data.arrays import _brief
from edgekit.errors import BadInputError

BLOCK_ROWS = 2048                 # rows an .npy / stored .npz array is read in, at most BLOCK_BYTES of them
BLOCK_BYTES = 8 << 20
SHUFFLE_BUFFER = 8192             # samples in the shuffle buffer, at most SHUFFLE_BYTES of them (at least 64)
SHUFFLE_BYTES = 32 << 20
READ_PARALLEL = 2                 # units read at once (a fixed number: AUTOTUNE buffers more than it needs)


def rows_within(limit_rows: int, limit_bytes: int, element_shape) -> int:
    """limit_rows, or fewer so that that many float32 samples take at most limit_bytes (at least 1)."""
    return max(1, min(limit_rows, limit_bytes // max(1, 4 * math.prod(element_shape))))


@dataclass(frozen=True)
class ArrayLayout:
    """Where one array of an .npy / .npz file lies: `offset` of its C-order data in the file, or -1 when it
    must be read with np.load (a compressed .npz member or a Fortran-order array)."""

    path: str
    key: str | None               # .npz member name; None for an .npy file
    shape: tuple[int, ...]
    dtype: str
    offset: int


def read_error(path: str, exc: BaseException, what: str = "data") -> BadInputError:
    """The one-line error for a file that fails while being streamed."""
    return BadInputError(f"{path}: cannot read the {what} ({_brief(exc)}); check the file or regenerate it")


IMAGE_UNIT_FILES = 256            # image files per unit (numpy reading decodes them in one small pipeline)


def units(source) -> list[tuple[int, int, int]]:
    if source.kind == "tfrecord":
        return [(i, 0, n) for i, n in enumerate(source.file_samples)]
    if source.kind == "images":
        n = source.total_samples
        return [(0, start, min(n, start + IMAGE_UNIT_FILES)) for start in range(0, n, IMAGE_UNIT_FILES)]
    out = []
    for i, (layout, n) in enumerate(zip(source.x_layouts, source.file_samples)):
        step = rows_within(BLOCK_ROWS, BLOCK_BYTES, source.element_shape) if layout.offset >= 0 else max(1, n)
        out += [(i, start, min(n, start + step)) for start in range(0, n, step)]
    return out


def file_offsets(source) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(source.file_samples)]).astype(np.int64)


def read_unit(source, unit: tuple[int, int, int], max_rows: int | None = None):
    """(x float32 at the element shape, y or None, global index) of one unit's samples in this part."""
    file_number, start, stop = unit
    offset = int(file_offsets(source)[file_number])
    index = np.arange(offset + start, offset + stop, dtype=np.int64)
    selection = source.selection()
    keep = np.ones(len(index), bool) if selection is None else selection[index]
    if max_rows is not None:
        keep &= np.cumsum(keep) <= max_rows
    if source.kind == "arrays":
        rows = np.flatnonzero(keep)
        if len(rows) == 0:
            return _empty(source)
        first, last = start + int(rows[0]), start + int(rows[-1]) + 1
        x = read_rows(source.x_layouts[file_number], first, last)[rows - rows[0]]
        y = None if source.y_layouts is None else read_rows(source.y_layouts[file_number], first, last)[rows - rows[0]]
        return _conform(source, x, y, index[keep])
    if source.kind == "images":
        return _decode_images(source, index[keep])
    return _read_tfrecord(source, file_number, index, keep)


def read_rows(layout: ArrayLayout, start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) of an array file, read (not mapped) at its data offset; np.load for the others."""
    row_shape = layout.shape[1:]
    dtype = np.dtype(layout.dtype)
    where = f"{layout.path}" + (f" [{layout.key}]" if layout.key else "")
    try:
        if layout.offset < 0:
            with np.load(layout.path, allow_pickle=False) as archive:
                return archive[layout.key][start:stop]
        row_bytes = dtype.itemsize * math.prod(row_shape)
        fd = os.open(layout.path, os.O_RDONLY)
        try:
            data = os.pread(fd, (stop - start) * row_bytes, layout.offset + start * row_bytes)
        finally:
            os.close(fd)
    except (OSError, ValueError, EOFError, KeyError) as e:
        raise read_error(where, e, "array") from e
    if len(data) != (stop - start) * row_bytes:
        raise BadInputError(f"{where}: the file ends before row {stop}; it is truncated, regenerate it")
    return np.frombuffer(data, dtype=dtype).reshape((stop - start, *row_shape))


def _conform(source, x, y, index):
    x = np.asarray(x, dtype=np.float32).reshape((len(index), *source.element_shape))
    if y is not None:
        y = np.asarray(y).astype(source.label_dtype, copy=False).reshape((len(index), *source.label_shape))
    return x, y, index


def _empty(source):
    y = None if source.label_shape is None else np.zeros((0, *source.label_shape), source.label_dtype)
    return np.zeros((0, *source.element_shape), np.float32), y, np.zeros(0, np.int64)


# ----------------------------------------------------------------------------------- TF-decoded kinds


def _read_tfrecord(source, file_number: int, index: np.ndarray, keep: np.ndarray):
    chunks = list(_tfrecord_batches(source, file_number, index, keep))
    if not chunks:
        return _empty(source)
    y = np.concatenate([c[1] for c in chunks]) if source.has_labels else None
    return np.concatenate([c[0] for c in chunks]), y, np.concatenate([c[2] for c in chunks])


def _tfrecord_batches(source, file_number: int, index: np.ndarray, keep: np.ndarray):
    from edgekit.data.tfrecord import record_parser

    tf = _tf()
    path = source.files[file_number]
    parse = record_parser(source)
    keep_t = tf.constant(keep)
    ds = tf.data.TFRecordDataset(path).enumerate().filter(lambda i, _: tf.gather(keep_t, i))
    ds = ds.map(lambda i, rec: (*parse(rec), i), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(rows_within(BLOCK_ROWS, BLOCK_BYTES, source.element_shape))
    first = int(index[0]) if len(index) else 0
    try:
        for x, y, i in ds:
            yield _conform(source, x.numpy(), y.numpy() if source.has_labels else None, i.numpy() + first)
    except tf.errors.OpError as e:
        raise read_error(path, e, "records") from None


def iter_batches(source):
    """(x, y or None, index) numpy chunks of this part in file order; TFRecord files chunk by chunk."""
    selection = source.selection()
    offsets = file_offsets(source)
    for unit in units(source):
        if source.kind == "tfrecord":
            file_number, start, stop = unit
            index = np.arange(offsets[file_number] + start, offsets[file_number] + stop, dtype=np.int64)
            keep = np.ones(len(index), bool) if selection is None else selection[index]
            yield from _tfrecord_batches(source, file_number, index, keep)
            continue
        x, y, index = read_unit(source, unit)
        if len(index):
            yield x, y, index


def _decode_images(source, index: np.ndarray):
    tf = _tf()
    if len(index) == 0:
        return _empty(source)
    decode = image_decoder(source)
    paths = [source.files[i] for i in index]
    ds = tf.data.Dataset.from_tensor_slices(paths).map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    try:
        x = np.stack([img.numpy() for img in ds])
    except tf.errors.OpError as e:
        for path in paths:  # find the file at fault, to name it
            try:
                decode(tf.constant(path))
            except tf.errors.OpError:
                raise read_error(path, e, "image") from None
        raise read_error(source.source, e, "images") from None
    y = None if source.file_labels is None else np.asarray([source.file_labels[i] for i in index], np.int64)
    return _conform(source, x, y, index)


def image_decoder(source):
    """path tensor -> float32 image in [0, 1] at the model's (H, W, C), decoded by tf.io, bilinear resize."""
    tf = _tf()
    height, width, channels = source.element_shape

    def decode(path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
        image.set_shape((None, None, channels))
        image = tf.image.resize(tf.cast(image, tf.float32), (height, width), method="bilinear")
        return tf.reshape(image / 255.0, (height, width, channels))

    return decode


# ------------------------------------------------------------------------------------------- tf.data


def element_dataset(source, shuffle_seed: int | None):
    tf = _tf()
    shuffle = shuffle_seed is not None
    if source.kind == "images":
        ds = _image_elements(source, shuffle_seed)
    elif source.kind == "tfrecord":
        ds = _tfrecord_elements(source, shuffle_seed)
    else:
        ds = _array_elements(source, shuffle_seed)
    if shuffle:
        buffer = max(64, rows_within(SHUFFLE_BUFFER, SHUFFLE_BYTES, source.element_shape))
        ds = ds.shuffle(buffer, seed=shuffle_seed, reshuffle_each_iteration=True)
    labelled = source.has_labels

    def as_dict(x, y, index):
        return {"x": x, "y": y, "index": index} if labelled else {"x": x, "index": index}

    return ds.map(as_dict, num_parallel_calls=tf.data.AUTOTUNE)


def _array_elements(source, shuffle_seed):
    tf = _tf()
    all_units = units(source)
    label_dtype = tf.as_dtype(source.label_dtype)
    label_shape = source.label_shape if source.has_labels else ()

    def read(number):
        x, y, index = read_unit(source, all_units[int(number)])
        if y is None:
            y = np.zeros(len(index), np.int64)
        return x, y, index

    def unit_block(number):
        x, y, index = tf.numpy_function(read, [number], [tf.float32, label_dtype if source.has_labels else tf.int64,
                                                         tf.int64], stateful=False)
        x.set_shape((None, *source.element_shape))
        y.set_shape((None, *label_shape))
        index.set_shape((None,))
        return x, y, index

    # Units are read READ_PARALLEL at a time and unbatched into samples. Not interleave over
    # from_tensor_slices: its samples are slices that keep their whole unit alive, so a shuffle buffer of
    # them held hundreds of MB of units (measured: +400 MB against +120 MB this way on 460 MB of shards).
    ds = tf.data.Dataset.range(len(all_units))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(all_units), seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.map(unit_block, num_parallel_calls=READ_PARALLEL, deterministic=shuffle_seed is None).unbatch()


def _tfrecord_elements(source, shuffle_seed):
    from edgekit.data.tfrecord import record_parser

    tf = _tf()
    parse = record_parser(source)
    offsets = file_offsets(source)[:-1]
    selection = source.selection()
    files = tf.data.Dataset.from_tensor_slices((list(source.files), offsets))
    if shuffle_seed is not None:
        files = files.shuffle(len(source.files), seed=shuffle_seed, reshuffle_each_iteration=True)

    def records(path, offset):
        return tf.data.TFRecordDataset(path).enumerate().map(lambda i, rec: (offset + i, rec))

    ds = files.interleave(records, cycle_length=min(4, len(source.files)), num_parallel_calls=tf.data.AUTOTUNE,
                          deterministic=shuffle_seed is None)
    if selection is not None:
        keep = tf.constant(selection)
        ds = ds.filter(lambda index, rec: tf.gather(keep, index))

    def parsed(index, rec):
        x, y = parse(rec)
        return tf.reshape(x, source.element_shape), y, index

    return ds.map(parsed, num_parallel_calls=tf.data.AUTOTUNE)


def _image_elements(source, shuffle_seed):
    tf = _tf()
    selection = source.selection()
    index = np.arange(source.total_samples, dtype=np.int64)
    if selection is not None:
        index = index[selection]
    labels = (np.asarray(source.file_labels, np.int64) if source.file_labels is not None
              else np.zeros(source.total_samples, np.int64))[index]
    paths = np.asarray(source.files)[index]
    ds = tf.data.Dataset.from_tensor_slices((paths, labels, index))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(index), seed=shuffle_seed, reshuffle_each_iteration=True)
    decode = image_decoder(source)
    return ds.map(lambda p, y, i: (decode(p), y, i), num_parallel_calls=tf.data.AUTOTUNE,
                  deterministic=shuffle_seed is None)


def _tf():
    from edgekit._tf import tensorflow

    return tensorflow()
