"""Reading .npz / .npy files safely: headers and member sizes checked before numpy allocates, no pickle."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence

import numpy as np

from edgekit.data.arrays import IN_MEMORY, _as_float_samples, _brief, _check_labels, conform_to_input_shape
from edgekit.errors import BadInputError
from edgekit.model_io.limits import check_array_header, check_zip_members, require_regular_file


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

