"""Load the user's data (.npz, .npy, or a folder of images) and split it, checked against the model.

No TensorFlow here: numpy, and Pillow for image folders (imported only when a folder is read).

    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "d.npz")
    >>> np.savez(path, x=np.zeros((10, 40)), y=np.arange(10) % 2)
    >>> ds = load_data(path, model_input_shape=(None, 40, 1))
    >>> ds.x.shape, ds.notices[0][:40]
    ((10, 40, 1), 'd.npz: added a trailing channel axis: x ')
    >>> train, val = split(ds, val_fraction=0.2)
    >>> len(train.x), len(val.x)
    (8, 2)
"""

from __future__ import annotations

import dataclasses
import os
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgekit.errors import BadInputError
from edgekit.model_io.limits import (
    MAX_IMAGE_PIXELS,
    check_array_header,
    check_zip_members,
    require_regular_file,
)

# The share of training data held out for validation when none is given (distill, prune, plan, fit).
VAL_FRACTION = 0.1

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
IN_MEMORY = "<arrays>"


@dataclass(frozen=True)
class Dataset:
    """Samples ready for a model: x float32 shaped (N, *model input), y labels/targets or None."""

    x: np.ndarray
    y: np.ndarray | None = None
    source: str = IN_MEMORY
    class_names: tuple[str, ...] | None = None
    notices: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.x.shape[0])


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
    path = os.fspath(path)
    name = os.path.basename(os.path.normpath(path)) or path
    if not os.path.exists(path):
        raise BadInputError(f"{path}: no such file or folder")
    if not os.path.isdir(path):
        require_regular_file(path, "data file")  # a FIFO or device would block the reader forever
    if os.path.isdir(path):
        x, y, class_names = _read_image_folder(path, model_input_shape)
    elif path.endswith(".npz"):
        x, y = _read_npz(path)
        class_names = None
    elif path.endswith(".npy"):
        x, y = _read_npy(path), None
        class_names = None
    else:
        raise BadInputError(f"{path}: unknown data format; use .npz (arrays x and optional y), .npy (x only) "
                            "or a folder of images in class sub-folders")
    x = _as_float_samples(x, name, "x")
    notices: list[str] = []
    if model_input_shape is not None:
        x, notice = conform_to_input_shape(x, model_input_shape, name)
        if notice:
            notices.append(notice)
    if y is not None:
        y = _check_labels(y, len(x), name)
    return Dataset(x=x, y=y, source=path, class_names=class_names, notices=tuple(notices))


def from_arrays(x, y=None, model_input_shape: Sequence[int | None] | None = None,
                source: str = IN_MEMORY) -> Dataset:
    """The same checks as `load_data`, for arrays already in memory (the Python API's path)."""
    x = _as_float_samples(np.asarray(x), source, "x")
    notices: list[str] = []
    if model_input_shape is not None:
        x, notice = conform_to_input_shape(x, model_input_shape, source)
        if notice:
            notices.append(notice)
    if y is not None:
        y = _check_labels(np.asarray(y), len(x), source)
    return Dataset(x=x, y=y, source=source, notices=tuple(notices))


def conform_to_input_shape(x: np.ndarray, model_input_shape: Sequence[int | None],
                           name: str = IN_MEMORY) -> tuple[np.ndarray, str | None]:
    """Return x shaped for the model (adding a lone missing channel axis), and a notice if it did so."""
    want = tuple(model_input_shape)[1:]
    have = tuple(x.shape[1:])
    if _dims_match(have, want):
        return x, None
    if len(want) == len(have) + 1 and want[-1] == 1 and _dims_match(have, want[:-1]):
        notice = (f"{name}: added a trailing channel axis: x {_fmt(x.shape)} -> {_fmt(x.shape + (1,))} "
                  f"to match the model input {_fmt(model_input_shape)}")
        return x[..., None], notice
    raise BadInputError(f"{name}: x has shape {_fmt(x.shape)} but the model expects "
                        f"{_fmt(model_input_shape)}; {_shape_fix_hint(have, want)}")


def as_dataset(value, model_input_shape: Sequence[int | None] | None = None, source: str = "data") -> Dataset | None:
    """A checked Dataset from what the API accepts as data: a path (.npz/.npy/image folder), a Dataset,
    an (x, y) pair or x alone; None stays None. Every form gets the same checks against the model input."""
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        return load_data(value, model_input_shape)
    if isinstance(value, Dataset):
        x, y, source = value.x, value.y, value.source
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        x, y = value
    else:
        x, y = value, None
    return from_arrays(x, y, model_input_shape=model_input_shape, source=source)

def read_npz_arrays(path: str | os.PathLike, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """The arrays named `keys` that an .npz holds (others left out; {} for any other file), with load_data's
    safety checks: extra validation arrays such as detection ground truth (gt_boxes, gt_labels)."""
    path = os.fspath(path)
    if not path.endswith(".npz") or not os.path.isfile(path):
        return {}
    _check_npz(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in keys if key in archive.files}
    except ValueError as e:
        raise BadInputError(f"{path}: cannot read arrays without pickle ({_brief(e)}); save plain numeric arrays"
                            ) from e
    except (OSError, EOFError, zipfile.BadZipFile, NotImplementedError, RuntimeError) as e:
        raise BadInputError(f"{path}: not a readable .npz file ({_brief(e)})") from e


def load_named_arrays(source, input_names: Sequence[str], input_shapes: Sequence[Sequence[int | None]],
                      output_names: Sequence[str] = ()
                      ) -> tuple[list[np.ndarray], dict[str, np.ndarray], tuple[str, ...]]:
    """Samples for a model with several inputs or outputs: (inputs in `input_names` order, labels by output
    name, notices), from an .npz path or a dict of arrays, with load_data's checks per array.

    Layout: one array per input, named after the input or x0, x1, ... in input order (x for a lone
    input); labels y (a lone output) or y_<output name> (any of the outputs). input_shapes are batch first.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        name = os.path.basename(path) or path
        if not os.path.isfile(path) or not path.endswith(".npz"):
            raise BadInputError(f"{path}: a model with inputs {list(input_names)} and outputs {list(output_names)} "
                                "needs an .npz file: one array per input (its name, or x0, x1, ...) and labels "
                                "y_<output name>")
        require_regular_file(path, "data file")
        _check_npz(path)
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {key: archive[key] for key in archive.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, NotImplementedError, RuntimeError) as e:
            raise BadInputError(f"{path}: cannot read the arrays without pickle ({_brief(e)}); save plain numeric "
                                "arrays with np.savez") from e
    else:
        name, arrays = IN_MEMORY, {str(k): np.asarray(v) for k, v in dict(source).items()}
    inputs, notices = [], []
    for i, (input_name, shape) in enumerate(zip(input_names, input_shapes)):
        aliases = [input_name, f"x{i}", *(["x"] if len(input_names) == 1 else [])]
        found = [key for key in dict.fromkeys(aliases) if key in arrays]
        if len(found) != 1:
            raise BadInputError(f"{name}: {'no' if not found else 'more than one'} array for model input "
                                f"{input_name!r} (keys {' or '.join(dict.fromkeys(aliases))}; "
                                f"found {sorted(arrays)[:8]}); "
                                "save one array per input, named after it")
        x, notice = conform_to_input_shape(_as_float_samples(arrays[found[0]], name, found[0]), shape,
                                           f"{name} [{found[0]}]")
        inputs.append(x)
        notices += [notice] if notice else []
    if len({len(x) for x in inputs}) > 1:
        raise BadInputError(f"{name}: the inputs have different sample counts {[len(x) for x in inputs]}; "
                            "give every input the same samples, in the same order")
    label_keys = {f"y_{output}": output for output in output_names}
    if len(output_names) == 1:
        label_keys["y"] = output_names[0]
    stray = sorted(k for k in arrays if k.startswith("y") and k not in label_keys and k not in input_names)
    if stray:
        raise BadInputError(f"{name}: labels {stray} name no model output; use "
                            f"{', '.join(label_keys) or 'no labels'} (outputs {list(output_names)})")
    labels = {output: _check_labels(arrays[key], len(inputs[0]), f"{name} [{key}]")
              for key, output in label_keys.items() if key in arrays}
    return inputs, labels, tuple(notices)


def split(dataset: Dataset, val_fraction: float = VAL_FRACTION, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Split into (train, val); stratified by class when y holds class labels, at least one sample each."""
    n = len(dataset)
    if not 0.0 < val_fraction < 1.0:
        raise BadInputError(f"{dataset.source}: val_fraction must be between 0 and 1, got {val_fraction}")
    if n < 2:
        raise BadInputError(f"{dataset.source}: {n} sample(s) cannot be split into train and validation; "
                            "provide more data or separate validation data")
    rng = np.random.default_rng(seed)
    classes = _class_indices(dataset.y)
    if classes is None:
        order = rng.permutation(n)
        n_val = min(n - 1, max(1, round(n * val_fraction)))
        val_idx = order[:n_val]
    else:
        val_idx = _stratified_val_indices(classes, val_fraction, rng)
    is_val = np.zeros(n, dtype=bool)
    is_val[val_idx] = True
    return _subset(dataset, ~is_val), _subset(dataset, is_val)


def _subset(dataset: Dataset, mask: np.ndarray) -> Dataset:
    y = None if dataset.y is None else dataset.y[mask]
    return dataclasses.replace(dataset, x=dataset.x[mask], y=y)


def _stratified_val_indices(classes: np.ndarray, val_fraction: float, rng) -> np.ndarray:
    picked = []
    for c in np.unique(classes):
        members = rng.permutation(np.flatnonzero(classes == c))
        k = round(len(members) * val_fraction)
        picked.append(members[: min(k, len(members) - 1)])  # keep every class in train
    val_idx = np.concatenate(picked) if picked else np.array([], dtype=int)
    if len(val_idx) == 0:  # tiny data: take one sample of the largest class
        values, counts = np.unique(classes, return_counts=True)
        val_idx = rng.permutation(np.flatnonzero(classes == values[np.argmax(counts)]))[:1]
    if len(val_idx) == len(classes):
        val_idx = val_idx[1:]
    return val_idx


def _class_indices(y: np.ndarray | None) -> np.ndarray | None:
    """Integer class per sample when y looks like class labels (ints or one-hot), else None."""
    if y is None:
        return None
    if y.ndim == 2 and y.shape[1] > 1 and np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1):
        return np.argmax(y, axis=1)
    flat = y.reshape(len(y), -1)
    if flat.shape[1] == 1 and np.all(np.isfinite(flat)) and np.all(flat == np.round(flat)):
        return flat[:, 0].astype(np.int64)
    return None


def _read_npz(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    _check_npz(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.keys())
            if "x" not in keys:
                raise BadInputError(f"{path}: no array named 'x' (found {keys[:5] or 'none'}); "
                                    "save with np.savez(path, x=samples, y=labels)")
            x = archive["x"]
            y = archive["y"] if "y" in keys else None
    except BadInputError:
        raise
    except ValueError as e:  # object arrays need pickle, which we refuse
        raise BadInputError(f"{path}: cannot read arrays without pickle ({_brief(e)}); save plain numeric arrays"
                            ) from e
    except (OSError, EOFError, zipfile.BadZipFile, NotImplementedError, RuntimeError) as e:
        raise BadInputError(f"{path}: not a readable .npz file ({_brief(e)})") from e
    return x, y


def _check_npz(path: str) -> None:
    """Member names and sizes, and each array's header, checked before numpy allocates anything."""
    _require_magic(path, (b"PK\x03\x04", b"PK\x05\x06"), ".npz (a zip of .npy arrays, from np.savez)")
    try:
        with zipfile.ZipFile(path) as archive:
            check_zip_members(path, archive)
            for info in archive.infolist():
                if info.filename.endswith(".npy"):
                    with archive.open(info) as f:
                        shape, dtype, header_bytes = _npy_header(f"{path}: {info.filename}", f)
                    check_array_header(f"{path}: {info.filename}", shape, dtype, info.file_size - header_bytes)
    except BadInputError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, NotImplementedError, RuntimeError,
            ValueError) as e:
        raise BadInputError(f"{path}: not a readable .npz file ({_brief(e)})") from e


def _require_magic(path: str, magics: tuple[bytes, ...], what: str) -> None:
    with open(path, "rb") as f:
        head = f.read(8)
    if not head.startswith(magics):
        found = "an empty file" if not head else "zero bytes" if not head.strip(b"\0") else "other data"
        raise BadInputError(f"{path}: is not a {what}: it starts with {found}; save it with numpy")


def _npy_header(label: str, f) -> tuple[tuple, np.dtype, int]:
    """(shape, dtype, header length in bytes) of the .npy stream `f`, read without the data."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unknown .npy version {version}")
    except (ValueError, OSError, EOFError, SyntaxError) as e:
        raise BadInputError(f"{label}: the array header is damaged ({_brief(e)})") from e
    return tuple(shape), dtype, f.tell()


def _read_npy(path: str) -> np.ndarray:
    _require_magic(path, (b"\x93NUMPY",), ".npy array file (from np.save)")
    with open(path, "rb") as f:
        shape, dtype, header_bytes = _npy_header(path, f)
    if dtype.hasobject:
        raise BadInputError(f"{path}: the array holds Python objects, which cannot be read without pickle; save a "
                            "plain numeric array")
    check_array_header(path, shape, dtype, os.path.getsize(path) - header_bytes)
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as e:
        raise BadInputError(f"{path}: cannot read the array without pickle ({_brief(e)}); save a plain numeric "
                            "array") from e
    except (OSError, EOFError) as e:
        raise BadInputError(f"{path}: not a readable .npy file ({_brief(e)})") from e


def _brief(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:120]


def _as_float_samples(x: np.ndarray, name: str, field: str) -> np.ndarray:
    if x.dtype.kind not in "biuf":
        raise BadInputError(f"{name}: {field} has dtype {x.dtype}, not numbers; save a numeric array")
    if x.ndim == 0:
        raise BadInputError(f"{name}: {field} is a scalar; it needs a leading sample axis (N, ...)")
    if x.shape[0] == 0 or x.size == 0:
        raise BadInputError(f"{name}: {field} is empty (shape {_fmt(x.shape)})")
    x = x.astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        raise BadInputError(f"{name}: {field} contains NaN or infinite values; clean or impute them first")
    return x


def _check_labels(y: np.ndarray, n: int, name: str) -> np.ndarray:
    if y.dtype.kind not in "biuf":
        raise BadInputError(f"{name}: y has dtype {y.dtype}, not numbers; save labels as integers "
                            "(class indices) or floats (targets)")
    if y.ndim == 0 or y.shape[0] != n:
        got = "a scalar" if y.ndim == 0 else f"{y.shape[0]} entries"
        raise BadInputError(f"{name}: x has {n} samples but y has {got}; they must have the same length")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise BadInputError(f"{name}: y contains NaN or infinite values; clean them first")
    return y


def _read_image_folder(path: str, model_input_shape) -> tuple[np.ndarray, np.ndarray | None, tuple | None]:
    from PIL import Image, UnidentifiedImageError

    height = width = channels = None
    if model_input_shape is not None:
        shape = tuple(model_input_shape)
        if len(shape) != 4 or shape[-1] not in (1, 3):
            raise BadInputError(f"{path}: an image folder needs a model with an image input (None, H, W, 1 or 3);"
                                f" this model expects {_fmt(shape)}; save the data as .npz instead")
        height, width, channels = shape[1], shape[2], shape[3]
    class_dirs = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))
    if class_dirs:
        files = [(os.path.join(path, d, f), i) for i, d in enumerate(class_dirs)
                 for f in sorted(os.listdir(os.path.join(path, d))) if f.lower().endswith(IMAGE_SUFFIXES)]
    else:
        files = [(os.path.join(path, f), -1) for f in sorted(os.listdir(path)) if f.lower().endswith(IMAGE_SUFFIXES)]
    if not files:
        raise BadInputError(f"{path}: no images found ({', '.join(IMAGE_SUFFIXES[:3])}, ...); put them in one "
                            "sub-folder per class")
    images = []
    for file, _ in files:
        require_regular_file(file, "image file")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img_file = Image.open(file)
            with img_file as img:
                if img.size[0] * img.size[1] > MAX_IMAGE_PIXELS:
                    raise BadInputError(f"{file}: image is {img.size[0]}x{img.size[1]} pixels, over the limit of "
                                        f"{MAX_IMAGE_PIXELS:,}; resize the images to about the model's input size")
                if channels is None:  # no model given: the first image sets mode and size
                    channels = 1 if img.mode in ("1", "L", "I", "I;16", "F") else 3
                    width, height = img.size
                img = img.convert("L" if channels == 1 else "RGB")
                if img.size != (width, height):
                    if model_input_shape is None:
                        raise BadInputError(f"{file}: image is {img.size[0]}x{img.size[1]} but the first "
                                            f"image is {width}x{height}; pass the model so images are resized")
                    img = img.resize((width, height), Image.BILINEAR)
                array = np.asarray(img, dtype=np.float32) / 255.0
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise BadInputError(f"{file}: image is too large to decode safely ({_brief(e)}); resize the images") from e
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as e:
            raise BadInputError(f"{file}: not a readable image ({_brief(e)})") from e
        images.append(array.reshape(height, width, channels))
    x = np.stack(images)
    if not class_dirs:
        return x, None, None
    return x, np.array([label for _, label in files], dtype=np.int64), tuple(class_dirs)


def _dims_match(have: tuple, want: tuple) -> bool:
    return len(have) == len(want) and all(w is None or h == w for h, w in zip(have, want))


def _shape_fix_hint(have: tuple, want: tuple) -> str:
    known = all(w is not None for w in want)
    if len(want) == len(have) + 1 and _dims_match(have, want[:-1]):
        return f"x has no channel axis but the model expects {want[-1]} channels; add one of size {want[-1]}"
    if len(have) == len(want) + 1 and have[-1] == 1 and _dims_match(have[:-1], want):
        return "drop the trailing axis of size 1 (x[..., 0])"
    if known and int(np.prod(have)) == int(np.prod(want)) and have != want:
        if len(have) == len(want) and len(want) >= 2 and have == (want[-1],) + want[:-1]:
            return "x looks channels-first; move the channel axis last (np.moveaxis(x, 1, -1))"
        return f"reshape x to (N, {', '.join(str(d) for d in want)})"
    if len(have) == len(want):
        return "resize or crop each sample to the model's input size"
    return f"give each sample the model's input shape ({', '.join(str(d) for d in want)})"


def _fmt(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(int(d)) for d in shape) + ")"
