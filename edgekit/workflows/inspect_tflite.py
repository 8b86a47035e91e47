"""`inspect` of a .tflite file: everything read from the flatbuffer itself, the arena measured by TFLM."""

from __future__ import annotations

import os

from edgekit.costmodel.analysis import Analysis
from edgekit.costmodel.size import ArenaEstimate
from edgekit.costmodel.tflite_costs import analyze_tflite
from edgekit.errors import BadInputError, UnsupportedModelError
from edgekit.ir.from_tflite import from_tflite
from edgekit.model_io.flatbuffer import read_tflite, subgraph_op_names

TFLITE_FORMAT = "tflite"
SAVED_MODEL_FORMAT = "saved_model"   # a TensorFlow SavedModel without Keras metadata
# Measuring bisects the arena in a child process, a few invokes per probe: keep it to models that load fast.
MEASURE_ARENA_MAX_FILE_BYTES = 4 << 20


def analyze_tflite_file(path) -> Analysis:
    """Params, MACs, per-op table, op support and the TFLM arena of a .tflite file (never modified).

    The arena is measured with TFLite Micro (edgekit.runners.tflm.measure_arena) when every op has a
    TFLM kernel and the file is at most MEASURE_ARENA_MAX_FILE_BYTES; otherwise it is the greedy plan
    of the activations alone.
    """
    label = os.fspath(path)
    try:
        with open(label, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise BadInputError(f"{label}: cannot read the file: {exc.strerror or exc}") from exc
    return analyze_tflite_bytes(data, label)


def analyze_saved_model(path) -> Analysis:
    """The analysis of a non-Keras TensorFlow SavedModel directory, read through its float32 TFLite conversion.

    The conversion (edgekit.export.saved_model) runs in the isolated worker; the directory is never written.
    """
    from edgekit.export.saved_model import convert_saved_model

    label = os.fspath(path).rstrip("/\\") or os.fspath(path)
    return analyze_tflite_bytes(convert_saved_model(label, "float32").tflite_bytes, label,
                                name=os.path.basename(label) or "model")


def analyze_tflite_bytes(data: bytes, label: str, name: str | None = None) -> Analysis:
    """analyze_tflite_file of flatbuffer bytes already in memory; label names them in errors."""
    name = name or os.path.splitext(os.path.basename(label))[0] or "model"
    model = read_tflite(data, label)
    graph, facts = from_tflite(model, subgraph_op_names(model, label), name=name, label=label)
    analysis = analyze_tflite(graph, file_bytes=len(data), constant_bytes=facts.constant_bytes,
                              n_tensors=facts.n_tensors, subgraph_ops=facts.subgraph_ops)
    if analysis.unsupported["tflm"] or len(data) > MEASURE_ARENA_MAX_FILE_BYTES:
        return analysis
    arena = _measured_arena(data)
    if arena is None:
        return analysis
    return analyze_tflite(graph, file_bytes=len(data), constant_bytes=facts.constant_bytes,
                          n_tensors=facts.n_tensors, subgraph_ops=facts.subgraph_ops, arena=arena)


def _measured_arena(data: bytes) -> ArenaEstimate | None:
    from edgekit.runners.tflm import measure_arena

    try:
        measured = measure_arena(data)
    except (BadInputError, UnsupportedModelError):
        return None   # TFLM refuses the model: the table's op support says why; keep the planned estimate
    return ArenaEstimate(measured.arena_bytes, measured.recorded_head_bytes,
                         measured.arena_bytes - measured.recorded_head_bytes)
