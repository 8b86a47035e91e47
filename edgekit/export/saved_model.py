"""Convert a TensorFlow SavedModel that is not Keras (a tf.Module with a signature) to a TFLite flatbuffer.

`inspect`, `plan` (precision only) and `bench` read such a model through the .tflite it converts to:

    >>> result = convert_saved_model("audio_model/")          # doctest: +SKIP
    >>> result.precision, result.signature, len(result.tflite_bytes) > 0
    ('float32', 'serving_default', True)

The graph is read as data (saved_model.pb parsed as a protobuf) to pick the signature and check its
input shapes before TensorFlow's converter sees it; nothing the model holds is Python (a SavedModel
stores graphs, and graphs calling back into Python, tf.py_function / tf.numpy_function, are refused).
The converter runs in edgekit's worker process (edgekit.runners.isolated), so a native abort is a
one-line UnsupportedModelError naming the directory.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from edgekit.errors import BadInputError, UnsupportedModelError
from edgekit.precisions import PRECISIONS

SERVING_SIGNATURE = "serving_default"
# Ops that call back into the Python process that made the graph: nothing else can run them.
PYTHON_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})
_TF_OP = re.compile(r"\btf\.([A-Z][A-Za-z0-9_]+)")


@dataclass(frozen=True)
class SavedModelConversion:
    """A non-Keras SavedModel converted to TFLite: the flatbuffer, its precision and the signature used."""

    tflite_bytes: bytes
    precision: str
    signature: str


def read_signature(path: str | os.PathLike) -> tuple[str, dict[str, tuple[int, ...]]]:
    """The signature to convert (serving_default, else the only one) and its input shapes (-1: unknown).

    BadInputError naming the directory when there is no signature, several without serving_default, an
    input with an unknown dimension past the batch, or a graph that calls Python.
    """
    label = os.fspath(path)
    meta_graph = _meta_graph(label)
    signatures = {k: v for k, v in meta_graph.signature_def.items() if not k.startswith("__")}
    if not signatures:
        raise BadInputError(f"{label}: the SavedModel has no signature to convert; save it with "
                            "tf.saved_model.save(module, dir, signatures=module.f.get_concrete_function(spec))")
    if SERVING_SIGNATURE in signatures:
        key = SERVING_SIGNATURE
    elif len(signatures) == 1:
        key = next(iter(signatures))
    else:
        raise BadInputError(f"{label}: the SavedModel has signatures {sorted(signatures)} and none is "
                            f"'{SERVING_SIGNATURE}'; re-save it with the one to deploy as '{SERVING_SIGNATURE}'")
    shapes = {}
    for name, tensor in signatures[key].inputs.items():
        if tensor.tensor_shape.unknown_rank:
            raise BadInputError(f"{label}: input '{name}' of signature '{key}' has an unknown rank; re-save it "
                                "with a fixed tf.TensorSpec shape, e.g. [1, 16000]")
        dims = tuple(int(d.size) for d in tensor.tensor_shape.dim)
        if any(d < 0 for d in dims[1:]):
            raise BadInputError(f"{label}: input '{name}' of signature '{key}' has shape "
                                f"[{', '.join('?' if d < 0 else str(d) for d in dims)}] with an unknown dimension "
                                "past the batch; re-save it with a fixed tf.TensorSpec shape")
        shapes[name] = dims
    calls_python = sorted(_op_types(meta_graph) & PYTHON_OPS)
    if calls_python:
        raise BadInputError(f"{label}: the graph calls back into Python ({', '.join(calls_python)}: "
                            "tf.py_function / tf.numpy_function), which only the process that saved it can run; "
                            "rewrite that part with TensorFlow ops and save again")
    return key, shapes


def convert_saved_model(path: str | os.PathLike, precision: str = "float32") -> SavedModelConversion:
    """Convert the SavedModel directory `path` (never modified) to TFLite with builtin ops only.

    precision: float32, float16 or dynamic_int8 (full int8 needs calibration data: export the Keras
    model instead). UnsupportedModelError naming the directory (and the TensorFlow ops TFLite lacks)
    when the converter refuses or crashes.
    """
    label = os.fspath(path)
    if precision not in PRECISIONS or precision == "int8":
        raise BadInputError(f"{label}: a SavedModel converts at float32, float16 or dynamic_int8 here, not "
                            f"{precision!r}; for int8, export the Keras model it came from with --data")
    signature, _ = read_signature(label)
    from edgekit.runners.isolated import call_isolated

    tflite_bytes = call_isolated(_convert_here, label, signature, precision, what=f"SavedModel {label}",
                                 stage=f"TFLite conversion to {precision}")
    return SavedModelConversion(tflite_bytes, precision, signature)


def _convert_here(label: str, signature: str, precision: str) -> bytes:
    """The conversion itself, in the worker process."""
    from edgekit._tf import _stderr_silenced, tensorflow

    tf = tensorflow()
    with _stderr_silenced():
        try:
            converter = tf.lite.TFLiteConverter.from_saved_model(label, signature_keys=[signature])
            if precision != "float32":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
            if precision == "float16":
                converter.target_spec.supported_types = [tf.float16]
            return bytes(converter.convert())
        except Exception as exc:  # noqa: BLE001 - ConverterError, OSError, ValueError from a damaged graph
            raise UnsupportedModelError(_conversion_failure(label, exc)) from None


def _conversion_failure(label: str, exc: Exception) -> str:
    text = str(exc).strip()
    missing = sorted(set(_TF_OP.findall(text)))
    if missing and ("not supported" in text or "neither a custom op nor a flex op" in text):
        return (f"{label}: TFLite has no builtin kernel for the TensorFlow op(s) {', '.join(missing)} this "
                "SavedModel uses; replace them with supported ops (see the TFLite op list) and save again")
    first = text.splitlines()[0] if text else type(exc).__name__
    return f"{label}: TFLite conversion of the SavedModel failed: {first[:300]}"


def _meta_graph(label: str):
    from edgekit._tf import tensorflow

    tensorflow()  # the generated protobuf modules ship with TensorFlow
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    pb_path = os.path.join(label, "saved_model.pb")
    if not os.path.isfile(pb_path):
        raise BadInputError(f"{label}: no saved_model.pb (a text-format saved_model.pbtxt is not read here); "
                            "save the model again with tf.saved_model.save")
    saved_model = saved_model_pb2.SavedModel()
    try:
        with open(pb_path, "rb") as f:
            saved_model.ParseFromString(f.read())
    except (DecodeError, OSError) as exc:
        raise BadInputError(f"{label}: saved_model.pb is damaged ({str(exc).strip()[:120]}); save it again") from None
    if not saved_model.meta_graphs:
        raise BadInputError(f"{label}: saved_model.pb holds no graph; save the model again")
    return saved_model.meta_graphs[0]


def _op_types(meta_graph) -> set[str]:
    """Every op type in the graph and in its function library."""
    graph = meta_graph.graph_def
    ops = {node.op for node in graph.node}
    for function in graph.library.function:
        ops |= {node.op for node in function.node_def}
    return ops
