"""Load the user's data: in memory (`load_data`, `as_dataset`) or streamed when large (`open_data`).

`open_data` decides: TFRecord files and folders of .npz shards are always streamed (edgekit.data.stream); a
single .npz / .npy or an image folder is read into memory when its samples take at most STREAM_ABOVE_BYTES
as float32 at the model's input size, and streamed above that. Commands that need whole arrays (prune, plan,
export, bench...) use `load_data` / `as_dataset`, which refuse streamed-only formats with one line.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from edgekit.data.arrays import Dataset, from_arrays
from edgekit.data.files import _read_npy, _read_npz
from edgekit.data.images import _read_image_folder
from edgekit.errors import BadInputError
from edgekit.model_io.limits import require_regular_file

# A single file or image folder whose samples take more than this (float32, at the model input size) is
# streamed by `open_data` instead of loaded whole: 256 MiB keeps a fit's peak well under 1.5 GB.
STREAM_ABOVE_BYTES = 256 << 20


def load_data(path: str | os.PathLike, model_input_shape: Sequence[int | None] | None = None) -> Dataset:
    """Read `.npz` (x, optional y), `.npy` (x only) or an image folder, checked against the model's input.

    Args:
        path: the data file or folder. Image folders hold one sub-folder per class (labels are the sorted
            folder names), or images directly (unlabelled).
        model_input_shape: the model's input shape with the batch axis first, e.g. `(None, 40, 1)`
            (Keras' `model.input_shape`). When given, x must match it; a missing trailing channel axis of
            size 1 is added (and said in `notices`), any other mismatch is an error that says how to fix it.
    Raises:
        BadInputError: one line naming the file and the fault.
    """
    from edgekit.data.stream_sources import stream_only_kind

    path = os.fspath(path)
    name = os.path.basename(os.path.normpath(path)) or path
    if not os.path.exists(path):
        raise BadInputError(f"{path}: no such file or folder")
    if not os.path.isdir(path):
        require_regular_file(path, "data file")  # a FIFO or device would block the reader forever
    kind = stream_only_kind(path)
    if kind is not None:
        raise BadInputError(f"{path}: {kind} data is streamed, which only `edgekit fit` and `edgekit distill` "
                            "support; give this command a single .npz file")
    if os.path.isdir(path):
        x, y, class_names = _read_image_folder(path, model_input_shape)
    elif path.endswith(".npz"):
        x, y = _read_npz(path)
        class_names = None
    elif path.endswith(".npy"):
        x, y = _read_npy(path), None
        class_names = None
    else:
        raise BadInputError(f"{path}: unknown data format; use .npz (arrays x and optional y), .npy (x only), "
                            "a folder of images in class sub-folders, .tfrecord files or a folder of .npz shards")
    checked = from_arrays(x, y, model_input_shape, source=name)  # messages name the file, not its folder
    return Dataset(x=checked.x, y=checked.y, source=path, class_names=class_names, notices=checked.notices)


def as_dataset(value, model_input_shape: Sequence[int | None] | None = None, source: str = "data") -> Dataset | None:
    """A checked Dataset from what the API accepts as data: a path (.npz/.npy/image folder), a Dataset,
    an (x, y) pair or x alone; None stays None. Every form gets the same checks against the model input.
    A StreamSource (or an (stream, None) pair) gives a bounded in-memory sample of it (edgekit.data.stream)."""
    from edgekit.data.stream import StreamSource

    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        return load_data(value, model_input_shape)
    if isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[0], StreamSource):
        value = value[0]
    if isinstance(value, StreamSource):
        return value.sample()
    if isinstance(value, Dataset):
        x, y, source = value.x, value.y, value.source
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        x, y = value
    else:
        x, y = value, None
    return from_arrays(x, y, model_input_shape=model_input_shape, source=source)


def open_data(value, model_input_shape: Sequence[int | None] | None, source: str = "data"):
    """Data for the commands that stream (fit, distill): a StreamSource for TFRecord files, .npz shard folders
    and files or image folders over STREAM_ABOVE_BYTES; otherwise a Dataset as `as_dataset` gives."""
    from edgekit.data.stream import StreamSource
    from edgekit.data.stream_sources import in_memory_bytes, open_stream, stream_only_kind

    if isinstance(value, StreamSource) or value is None:
        return value
    if not isinstance(value, (str, os.PathLike)):
        return as_dataset(value, model_input_shape, source)
    path = os.fspath(value)
    if not os.path.exists(path):
        raise BadInputError(f"{path}: no such file or folder")
    if stream_only_kind(path) is not None or in_memory_bytes(path, model_input_shape) > STREAM_ABOVE_BYTES:
        return open_stream(path, model_input_shape)
    return load_data(path, model_input_shape)
