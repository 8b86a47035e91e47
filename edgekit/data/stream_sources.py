"""Opening a streamed source: find its files, check every file's layout up front, describe it as a StreamSource.

- a folder of .npz shards (sorted by name): each with `x` and optional `y` (all shards alike), the
  headers checked without reading the data; stored (np.savez) members are read in blocks at their
  offset, compressed ones (np.savez_compressed) one whole shard at a time (keep such shards small);
- one .npy (x only) or .npz file: the same, as a single shard;
- .tfrecord / .tfrecords / .tfrec files (one file, or a folder of them): the layout of
  edgekit.data.tfrecord; every record is parsed once here (count and check), so a damaged record is
  reported now with its file, not in the middle of training;
- an image folder (class sub-folders or images directly): png, jpeg, bmp or gif, decoded by tf.io in the
  pipeline and resized to the model input; each header is checked here against MAX_IMAGE_PIXELS.
"""

from __future__ import annotations

import dataclasses
import math
import os
import struct
import zipfile

import numpy as np

from edgekit.data.arrays import _brief, _fmt, conform_to_input_shape
from edgekit.data.files import _check_npz, _npy_header, _require_magic
from edgekit.data.stream import StreamSource
from edgekit.data.stream_read import ArrayLayout
from edgekit.data.tfrecord import TFRECORD_SUFFIXES, inspect_first_record
from edgekit.errors import BadInputError
from edgekit.model_io.limits import MAX_IMAGE_PIXELS, check_array_header, require_regular_file

STREAM_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")   # what tf.io.decode_image reads
_STREAMED_ARRAY_MAX_BYTES = 1 << 40   # a streamed .npy is read in blocks, never whole


def stream_only_kind(path: str) -> str | None:
    """'TFRecord' or '.npz shard folder' for the formats that are always streamed; None for the others."""
    if os.path.isfile(path) and path.lower().endswith(TFRECORD_SUFFIXES):
        return "TFRecord"
    if os.path.isdir(path):
        names = os.listdir(path)
        if any(n.lower().endswith(TFRECORD_SUFFIXES) for n in names):
            return "TFRecord"
        if any(n.endswith(".npz") for n in names):
            return ".npz shard folder"
    return None


def in_memory_bytes(path: str, model_input_shape) -> int:
    """Bytes the samples of a single .npy / .npz / image folder take as float32 (0 when unknown: load_data
    then reads it and reports any fault)."""
    try:
        if os.path.isdir(path):
            from edgekit.data.images import list_image_files

            files, _ = list_image_files(path)
            per_image = (math.prod(d for d in tuple(model_input_shape)[1:] if d) if model_input_shape
                         else max(os.path.getsize(f) for f, _ in files[:16]))
            return len(files) * 4 * per_image
        if path.endswith(".npy"):
            with open(path, "rb") as f:
                shape, _, _ = _npy_header(path, f)
            return 4 * math.prod(shape)
        if path.endswith(".npz"):
            with zipfile.ZipFile(path) as archive, archive.open("x.npy") as f:
                shape, _, _ = _npy_header(path, f)
            return 4 * math.prod(shape)
    except (BadInputError, OSError, KeyError, ValueError, zipfile.BadZipFile):
        return 0
    return 0


def open_stream(path: str | os.PathLike, model_input_shape=None, samples_per_epoch: int | None = None
                ) -> StreamSource:
    """A StreamSource over `path` (see the module docstring), checked against the model's input shape."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise BadInputError(f"{path}: no such file or folder")
    kind = stream_only_kind(path)
    if kind == "TFRecord":
        source = _open_tfrecords(path, model_input_shape)
    elif kind is not None or path.endswith((".npz", ".npy")):
        source = _open_arrays(path, model_input_shape)
    elif os.path.isdir(path):
        source = _open_images(path, model_input_shape)
    else:
        raise BadInputError(f"{path}: unknown data format; use .tfrecord files, a folder of .npz shards, an "
                            ".npz / .npy file or a folder of images in class sub-folders")
    return source.with_samples_per_epoch(samples_per_epoch)


def _element_shape(stored: tuple, model_input_shape, name: str) -> tuple[tuple, tuple[str, ...]]:
    if model_input_shape is None:
        return stored, ()
    x, notice = conform_to_input_shape(np.empty((0, *stored), np.float32), model_input_shape, name)
    return tuple(x.shape[1:]), (notice.replace("(0, ", "(N, "),) if notice else ()


# --------------------------------------------------------------------------------------------- arrays


def _open_arrays(path: str, model_input_shape) -> StreamSource:
    if os.path.isdir(path):
        shards = sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".npz"))
    else:
        require_regular_file(path, "data file")
        shards = [path]
    x_layouts, y_layouts = [], []
    for shard in shards:
        require_regular_file(shard, "data shard")
        x, y = _shard_layouts(shard)
        first = x_layouts[0] if x_layouts else x
        if x.shape[1:] != first.shape[1:]:
            raise BadInputError(f"{shard}: x samples have shape {_fmt(x.shape[1:])} but {first.path} has "
                                f"{_fmt(first.shape[1:])}; every shard needs the same sample shape")
        if y_layouts and (y is None) != (y_layouts[0] is None):
            raise BadInputError(f"{shard}: {'has no' if y is None else 'has a'} y array but {first.path} "
                                f"{'has one' if y is None else 'has none'}; give every shard labels, or none")
        if y is not None and y_layouts and y.shape[1:] != y_layouts[0].shape[1:]:
            raise BadInputError(f"{shard}: y has shape {_fmt(y.shape)} per sample unlike {first.path}; "
                                "every shard needs the same label shape")
        x_layouts.append(x)
        y_layouts.append(y)
    if not x_layouts:
        raise BadInputError(f"{path}: no .npz shards found; save shards with np.savez(path, x=..., y=...)")
    stored = tuple(x_layouts[0].shape[1:])
    element, notices = _element_shape(stored, model_input_shape, os.path.basename(os.path.normpath(path)))
    y0 = y_layouts[0]
    return StreamSource(
        kind="arrays", source=path, file_samples=tuple(layout.shape[0] for layout in x_layouts),
        stored_shape=stored, element_shape=element, x_layouts=tuple(x_layouts),
        y_layouts=None if y0 is None else tuple(y_layouts),
        label_shape=None if y0 is None else tuple(y0.shape[1:]),
        label_dtype="float32" if y0 is not None and np.dtype(y0.dtype).kind == "f" else "int64", notices=notices)


def _shard_layouts(path: str) -> tuple[ArrayLayout, ArrayLayout | None]:
    if path.endswith(".npy"):
        _require_magic(path, (b"\x93NUMPY",), ".npy array file (from np.save)")
        with open(path, "rb") as f:
            shape, fortran, dtype = _npy_full_header(path, f)
            offset = f.tell()
        check_array_header(path, shape, dtype, os.path.getsize(path) - offset, _STREAMED_ARRAY_MAX_BYTES)
        return _checked(ArrayLayout(path, None, shape, dtype.str, -1 if fortran else offset), "x"), None
    _check_npz(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = {info.filename: info for info in archive.infolist()}
            if "x.npy" not in names:
                found = [n.removesuffix(".npy") for n in names][:5]
                raise BadInputError(f"{path}: no array named 'x' (found {found or 'none'}); save each shard with "
                                    "np.savez(path, x=samples, y=labels)")
            x = _member_layout(path, archive, names["x.npy"])
            y = _member_layout(path, archive, names["y.npy"]) if "y.npy" in names else None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, struct.error) as e:
        raise BadInputError(f"{path}: not a readable .npz file ({_brief(e)})") from None
    if y is not None and y.shape[:1] != x.shape[:1]:
        raise BadInputError(f"{path}: x has {x.shape[0]} samples but y has {y.shape[0] if y.shape else 'none'}; "
                            "they must have the same length")
    return _checked(x, "x"), None if y is None else _checked(y, "y")


def _member_layout(path: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> ArrayLayout:
    key = info.filename.removesuffix(".npy")
    with archive.open(info) as f:
        shape, fortran, dtype = _npy_full_header(f"{path} [{key}]", f)
        header_bytes = f.tell()
    offset = -1
    if info.compress_type == zipfile.ZIP_STORED and not fortran:
        with open(path, "rb") as raw:  # the member's data follows its local header: 30 bytes + name + extra
            raw.seek(info.header_offset)
            local = raw.read(30)
        if local[:4] != b"PK\x03\x04":
            raise BadInputError(f"{path} [{key}]: the zip entry header is damaged; regenerate the file")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        offset = info.header_offset + 30 + name_len + extra_len + header_bytes
    return ArrayLayout(path, key, shape, dtype.str, offset)


def _npy_full_header(label: str, f) -> tuple[tuple, bool, np.dtype]:
    try:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
    except (ValueError, OSError, EOFError, SyntaxError) as e:
        raise BadInputError(f"{label}: the array header is damaged ({_brief(e)})") from None
    return tuple(shape), bool(fortran), dtype


def _checked(layout: ArrayLayout, field: str) -> ArrayLayout:
    where = f"{layout.path}" + (f" [{layout.key}]" if layout.key else "")
    if np.dtype(layout.dtype).kind not in "biuf":
        raise BadInputError(f"{where}: {field} has dtype {np.dtype(layout.dtype)}, not numbers; save numeric arrays")
    if len(layout.shape) == 0:
        raise BadInputError(f"{where}: {field} has shape {_fmt(layout.shape)}; it needs a sample axis (N, ...)")
    return layout


# ------------------------------------------------------------------------------------------- TFRecord


def _open_tfrecords(path: str, model_input_shape) -> StreamSource:
    from edgekit.data.stream_read import _tf
    from edgekit.data.tfrecord import record_parser

    tf = _tf()
    files = ([path] if os.path.isfile(path) else
             sorted(os.path.join(path, n) for n in os.listdir(path) if n.lower().endswith(TFRECORD_SUFFIXES)))
    for file in files:
        require_regular_file(file, "TFRecord file")
    layout = inspect_first_record(files[0])
    stored = layout.stored_shape
    if stored is None:  # a float_list without 'shape': the model's input shape, when it holds as many values
        want = tuple(model_input_shape or ())[1:]
        if not want or None in want or math.prod(want) != layout.x_values:
            raise BadInputError(f"{files[0]}: feature 'x' holds {layout.x_values} floats and no 'shape' feature "
                                f"says how to arrange them for the model input {_fmt(model_input_shape or ())}; "
                                "add an int64 'shape' feature")
        stored = want
    source = StreamSource(kind="tfrecord", source=path, file_samples=(0,) * len(files), stored_shape=stored,
                          element_shape=stored, files=tuple(files), label_shape=layout.label_shape,
                          label_dtype=layout.label_dtype, x_format=layout.x_format)
    parse = record_parser(source)
    counts = []
    for file in files:  # every record parsed once: counts, and damaged records reported with their file
        try:
            n = int(tf.data.TFRecordDataset(file).map(lambda r: parse(r)[0][:0], num_parallel_calls=tf.data.AUTOTUNE)
                    .reduce(np.int64(0), lambda c, _: c + 1))
        except tf.errors.OpError as e:
            raise BadInputError(f"{file}: a record is damaged or not in the layout of the first record of "
                                f"{os.path.basename(files[0])} ({_brief(e)})") from None
        counts.append(n)
    element, notices = _element_shape(stored, model_input_shape, os.path.basename(os.path.normpath(path)))
    return dataclasses.replace(source, file_samples=tuple(counts), element_shape=element, notices=notices)


# --------------------------------------------------------------------------------------------- images


def _open_images(path: str, model_input_shape) -> StreamSource:
    from PIL import Image, UnidentifiedImageError

    from edgekit.data.images import IMAGE_SUFFIXES, list_image_files

    shape = tuple(model_input_shape or ())
    if len(shape) != 4 or shape[-1] not in (1, 3) or None in shape[1:]:
        raise BadInputError(f"{path}: a streamed image folder needs a model with a fixed image input (None, H, W, "
                            f"1 or 3); this model expects {_fmt(shape)}; save the data as .npz shards instead")
    files, class_dirs = list_image_files(path)
    for file, _ in files:
        if not file.lower().endswith(STREAM_IMAGE_SUFFIXES):
            raise BadInputError(f"{file}: large image folders are decoded by TensorFlow, which reads "
                                f"{', '.join(STREAM_IMAGE_SUFFIXES)} only; convert the other "
                                f"{', '.join(s for s in IMAGE_SUFFIXES if s not in STREAM_IMAGE_SUFFIXES)} files")
        require_regular_file(file, "image file")
        try:
            with Image.open(file) as img:  # reads the header only
                width, height = img.size
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as e:
            raise BadInputError(f"{file}: not a readable image ({_brief(e)})") from None
        if width * height > MAX_IMAGE_PIXELS:
            raise BadInputError(f"{file}: image is {width}x{height} pixels, over the limit of {MAX_IMAGE_PIXELS:,}; "
                                "resize the images to about the model's input size")
    labelled = bool(class_dirs)
    return StreamSource(kind="images", source=path, file_samples=(len(files),), stored_shape=shape[1:],
                        element_shape=shape[1:], files=tuple(f for f, _ in files),
                        file_labels=tuple(label for _, label in files) if labelled else None,
                        label_shape=() if labelled else None, class_names=class_dirs or None)
