"""save_model: write a tf_keras model atomically (temp file in the target directory, then os.replace)."""

from __future__ import annotations

import os
import uuid
import warnings

from edgekit.errors import BadInputError

SAVE_EXTENSIONS = (".h5", ".hdf5", ".keras")


def save_model(model, path: str | os.PathLike, overwrite: bool = True) -> None:
    """Save a tf_keras model (or a LoadedModel's) as HDF5 (.h5/.hdf5) or a tf_keras .keras archive.

        >>> save_model(pruned_model, "build/pruned.h5")        # doctest: +SKIP

    The file appears complete or not at all: a failed save leaves neither the target nor a temp file.
    A model file loaded by load_model in this process is never overwritten (choose another path);
    another existing file is replaced only if overwrite is True.
    """
    from edgekit.model_io.atomic import loaded_input_paths
    from edgekit.model_io.loading import LoadedModel, require_keras

    target = os.fspath(path)
    protected = set(loaded_input_paths)
    if isinstance(model, LoadedModel):
        protected.add(os.path.realpath(model.path))
        model = require_keras(model, "saving")
    _check_is_tf_keras(model, target)
    extension = os.path.splitext(target)[1].lower()
    if extension not in SAVE_EXTENSIONS:
        raise BadInputError(f"{target}: cannot save a model with extension '{extension or '(none)'}': "
                            "use .h5 or .keras")
    if os.path.realpath(target) in protected:
        raise BadInputError(f"{target}: is the input model; edgekit never overwrites its input: "
                            "choose another output path")
    if os.path.isdir(target):
        raise BadInputError(f"{target}: is a directory; give a file path ending in .h5 or .keras")
    if os.path.exists(target) and not overwrite:
        raise BadInputError(f"{target}: already exists; choose another path or pass overwrite=True")
    directory = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(directory):
        raise BadInputError(f"{target}: the directory {directory} does not exist")
    # Same directory so os.replace is an atomic rename; the extension stays last for the saver's sake.
    stem = os.path.basename(target)[: -len(extension)]
    temp = os.path.join(directory, f".{stem}.tmp-{uuid.uuid4().hex[:8]}{extension}")
    try:
        _write(model, temp, extension)
        os.replace(temp, target)
    except BaseException as exc:
        _remove_quietly(temp)
        if isinstance(exc, Exception) and not isinstance(exc, BadInputError):
            raise BadInputError(f"{target}: could not save the model: {_first_line(exc)}") from exc
        raise


def _check_is_tf_keras(model, target: str) -> None:
    from edgekit._tf import tf_keras

    if not isinstance(model, tf_keras().Model):
        kind = f"{type(model).__module__}.{type(model).__name__}"
        raise BadInputError(f"{target}: save_model needs a tf_keras model, got {kind}; "
                            "load Keras 3 models with edgekit.model_io.load_model to convert them")


def _write(model, temp: str, extension: str) -> None:
    with warnings.catch_warnings():
        # HDF5 is the format edgekit chose on purpose (tfmot and converters read it): no "legacy" nag.
        warnings.filterwarnings("ignore", message=".*HDF5 file.*legacy", category=UserWarning)
        if extension == ".keras":
            model.save(temp, save_format="keras")
        else:
            model.save(temp, save_format="h5")


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
