"""Tell what a model path holds from its bytes, and read its architecture JSON without deserialising it.

Nothing here builds a layer or runs code from the file: HDF5 attributes, zip members and protobuf
fields are read as plain data, so the safety check can look at the config before any loader does.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass

from edgekit.errors import BadInputError
from edgekit.model_io.limits import (
    MAX_CONFIG_BYTES,
    check_archived_weights,
    check_hdf5_datasets,
    check_zip_members,
    read_member,
    require_regular_file,
)

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")
HDF5_EXTENSIONS = (".h5", ".hdf5")
TFLITE_IDENTIFIER = b"TFL3"   # a TFLite flatbuffer's file identifier, bytes 4..8
KERAS_ZIP_EXTENSION = ".keras"

NOT_A_MODEL = (
    "not a Keras model file (expected an HDF5 .h5 written by Keras, a .keras archive or a SavedModel "
    "directory)"
)

FORMATS = ("tf_keras_h5", "keras3_h5", "tf_keras_keras", "keras3_keras", "keras_saved_model", "saved_model")


@dataclass(frozen=True)
class DetectedModel:
    """What a path holds, before any loader has touched it.

    configs: the architecture JSON objects to vet (one for a file; one per Keras object for a Keras
    SavedModel, whose keras_metadata.pb stores each layer's config separately). Empty for a plain
    SavedModel.
    """

    path: str
    format: str
    keras_version: str | None
    configs: tuple[dict, ...]


def detect_model(path: str | os.PathLike) -> DetectedModel:
    """Detect the model format of `path` from its contents; BadInputError with a one-line reason if unusable."""
    label = os.fspath(path)
    if not os.path.exists(label):
        raise BadInputError(f"{label}: no such file or directory")
    if os.path.isdir(label):
        return _detect_directory(label)
    require_regular_file(label, "model file")
    return _detect_file(label)


def _not_a_model(label: str, reason: str) -> BadInputError:
    return BadInputError(f"{label}: {NOT_A_MODEL}: {reason}")


def is_tflite_file(path) -> bool:
    """Whether `path` is a regular file holding a TFLite flatbuffer (identifier 'TFL3' at byte 4)."""
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        return False
    try:
        with open(path, "rb") as f:
            return f.read(8)[4:8] == TFLITE_IDENTIFIER
    except OSError:
        return False


def is_plain_saved_model(path) -> bool:
    """Whether `path` is a TensorFlow SavedModel directory without Keras metadata (e.g. a saved tf.Module)."""
    if not isinstance(path, (str, os.PathLike)) or not os.path.isdir(path):
        return False
    return (os.path.isfile(os.path.join(path, "saved_model.pb"))
            and not os.path.isfile(os.path.join(path, "keras_metadata.pb")))


def _detect_file(label: str) -> DetectedModel:
    extension = os.path.splitext(label)[1].lower()
    try:
        size = os.path.getsize(label)
        with open(label, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise BadInputError(f"{label}: cannot read the file: {exc.strerror or exc}") from exc
    if size == 0:
        raise _not_a_model(label, "file is empty")
    if head.startswith(HDF5_SIGNATURE):
        if extension == KERAS_ZIP_EXTENSION:
            raise BadInputError(
                f"{label}: the file is HDF5 but is named .keras (a .keras model is a zip archive): "
                "rename it to .h5")
        _require_extension(label, extension, HDF5_EXTENSIONS, "an HDF5 model", ".h5")
        return _detect_hdf5(label)
    if head.startswith(ZIP_SIGNATURES):
        if extension in HDF5_EXTENSIONS:
            raise BadInputError(
                f"{label}: the file is a zip archive, not HDF5, but is named {extension}: "
                "if it is a Keras .keras archive, rename it to .keras")
        _require_extension(label, extension, (KERAS_ZIP_EXTENSION,), "a .keras archive", ".keras")
        return _detect_keras_zip(label)
    if head[4:8] == TFLITE_IDENTIFIER:
        raise BadInputError(f"{label}: a converted .tflite model: only `edgekit inspect` reads it; this command "
                            "needs the Keras model it was converted from")
    if os.path.basename(label) == "saved_model.pb":
        raise BadInputError(f"{label}: pass the SavedModel directory that holds saved_model.pb, not the file")
    if extension in HDF5_EXTENSIONS:
        raise _not_a_model(label, "the file does not start with the HDF5 signature")
    if extension == KERAS_ZIP_EXTENSION:
        raise _not_a_model(label, "the file is not a zip archive")
    raise _not_a_model(label, f"unrecognised contents and extension '{extension or '(none)'}'")


def _require_extension(label: str, extension: str, allowed: tuple[str, ...], what: str, hint: str) -> None:
    # Loaders pick their code path from the name, so a content/name mismatch would be loaded wrongly.
    if extension not in allowed:
        raise BadInputError(
            f"{label}: the file looks like {what} but is named '{extension or '(no extension)'}': "
            f"rename it to {hint}")


def _decode(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _parse_json(label: str, text: str, what: str) -> dict:
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise _not_a_model(label, f"{what} is not valid JSON ({_first_line(exc)[:120]})") from exc
    except RecursionError:
        raise _not_a_model(label, f"{what} is nested too deeply to be a model config") from None
    if not isinstance(parsed, dict):
        raise _not_a_model(label, f"{what} is not a JSON object")
    return parsed


def _detect_hdf5(label: str) -> DetectedModel:
    import h5py

    try:
        with h5py.File(label, "r") as h5:
            for key in ("model_config", "keras_version", "backend"):
                if key in h5.attrs and h5.attrs.get_id(key).get_storage_size() > MAX_CONFIG_BYTES:
                    raise _not_a_model(label, f"the {key} attribute is over {MAX_CONFIG_BYTES:,} bytes")
            attrs = {key: h5.attrs[key] for key in ("model_config", "keras_version", "backend") if key in h5.attrs}
            check_hdf5_datasets(label, h5)
            # save_weights writes `layer_names` (legacy .h5) or `layers` + `vars` groups (.weights.h5).
            has_weight_layers = "layer_names" in h5.attrs or "model_weights" in h5 or (
                "layers" in h5 and "vars" in h5)
    except BadInputError:
        raise
    except Exception as exc:  # h5py raises OSError, KeyError or RuntimeError on damaged files
        raise _not_a_model(label, f"the HDF5 file is damaged or truncated ({_first_line(exc)})") from exc
    if "model_config" not in attrs:
        reason = "the HDF5 file holds no model config"
        if has_weight_layers:
            reason += " (weights only, from save_weights?); save the whole model with model.save('model.h5')"
        raise _not_a_model(label, reason)
    config = _parse_json(label, _decode(attrs["model_config"]), "the model_config attribute")
    version = _decode(attrs["keras_version"]) if "keras_version" in attrs else None
    keras3 = version.startswith("3") if version else _looks_like_keras3_config(config)
    return DetectedModel(label, "keras3_h5" if keras3 else "tf_keras_h5", version, (config,))


def _looks_like_keras3_config(config: dict) -> bool:
    """Keras 3 writes InputLayer `batch_shape` and DTypePolicy dicts; tf_keras writes neither."""
    text = json.dumps(config)
    return '"batch_shape"' in text or '"DTypePolicy"' in text


def _detect_keras_zip(label: str) -> DetectedModel:
    try:
        with zipfile.ZipFile(label, "r") as archive:
            check_zip_members(label, archive)
            names = set(archive.namelist())
            if "config.json" not in names:
                raise _not_a_model(label, "the zip archive has no config.json")
            config_text = read_member(label, archive, "config.json", MAX_CONFIG_BYTES).decode("utf-8")
            metadata_text = (read_member(label, archive, "metadata.json", 1 << 20).decode("utf-8")
                             if "metadata.json" in names else None)
            if "model.weights.h5" in names:
                check_archived_weights(label, archive, "model.weights.h5")
    except BadInputError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, UnicodeDecodeError, EOFError, ValueError,
            NotImplementedError, RuntimeError) as exc:
        raise _not_a_model(label, f"the zip archive is damaged or truncated ({_first_line(exc)})") from exc
    config = _parse_json(label, config_text, "config.json")
    version = None
    if metadata_text is not None:
        version = _parse_json(label, metadata_text, "metadata.json").get("keras_version")
    keras3 = str(version).startswith("3") if version else True
    return DetectedModel(label, "keras3_keras" if keras3 else "tf_keras_keras", version, (config,))


def _detect_directory(label: str) -> DetectedModel:
    has_graph = any(os.path.isfile(os.path.join(label, name)) for name in ("saved_model.pb", "saved_model.pbtxt"))
    if not has_graph:
        raise _not_a_model(label, "the directory has no saved_model.pb, so it is not a SavedModel")
    metadata_path = os.path.join(label, "keras_metadata.pb")
    if not os.path.isfile(metadata_path):
        _check_saved_model_graph(label)
        return DetectedModel(label, "saved_model", None, ())
    configs = _read_keras_metadata(label, metadata_path)
    return DetectedModel(label, "keras_saved_model", None, configs)


# Keras objects in keras_metadata.pb that a model load with compile=False still revives as layers.
_METADATA_LAYER_IDENTIFIERS = ("_tf_keras_layer", "_tf_keras_input_layer", "_tf_keras_network",
                               "_tf_keras_model", "_tf_keras_sequential", "_tf_keras_rnn_layer")


def _read_keras_metadata(label: str, metadata_path: str) -> tuple[dict, ...]:
    from edgekit._tf import tf_keras

    tf_keras()  # the generated protobuf module lives in the tf_keras package
    from google.protobuf.message import DecodeError
    from tf_keras.protobuf import saved_metadata_pb2

    metadata = saved_metadata_pb2.SavedMetadata()
    try:
        with open(metadata_path, "rb") as f:
            metadata.ParseFromString(f.read())
    except (DecodeError, OSError) as exc:
        raise _not_a_model(label, f"keras_metadata.pb is damaged ({_first_line(exc)})") from exc
    configs = []
    for node in metadata.nodes:
        if node.identifier in _METADATA_LAYER_IDENTIFIERS and node.metadata:
            configs.append(_parse_json(label, node.metadata, f"keras_metadata.pb node '{node.node_path}'"))
    return tuple(configs)


def _check_saved_model_graph(label: str) -> None:
    """Parse saved_model.pb so a damaged non-Keras SavedModel is reported now, not at export time."""
    pb_path = os.path.join(label, "saved_model.pb")
    if not os.path.isfile(pb_path):
        return  # text-format SavedModel: left to TensorFlow
    from edgekit._tf import tensorflow

    tensorflow()
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    try:
        with open(pb_path, "rb") as f:
            saved_model.ParseFromString(f.read())
    except (DecodeError, OSError) as exc:
        raise _not_a_model(label, f"saved_model.pb is damaged ({_first_line(exc)})") from exc
    if not saved_model.meta_graphs:
        raise _not_a_model(label, "saved_model.pb holds no graph")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
