"""Read, edit and write TFLite flatbuffers with the schema's object API (no TensorFlow, no interpreter).

    >>> model = read_model(tflite_bytes)                      # doctest: +SKIP
    >>> model.subgraphs[0].tensors[0].name = None             # doctest: +SKIP
    >>> smaller = write_model(model)                          # doctest: +SKIP

`write_model` places every buffer's data at a 16-byte boundary, as the schema's `force_align: 16`
asks and as the C++ converter does (the generated Python `Pack` aligns to 1 byte only): TFLite
Micro reads int32 biases and float weights in place, and an unaligned word load faults on
Cortex-M0. `compact` drops tensors, buffers and operator codes nothing refers to any more, so
edits that remove ops (stripping, densifying) leave no dead bytes behind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from edgekit.errors import BadInputError

BUFFER_ALIGNMENT = 16
_FILE_IDENTIFIER = b"TFL3"


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def read_model(tflite_bytes: bytes):
    """The model as a mutable `ModelT` (raises BadInputError for bytes that are not a TFLite model)."""
    schema = _schema()
    data = bytearray(tflite_bytes)
    if len(data) < 8 or not schema.Model.ModelBufferHasIdentifier(data, 0):
        raise BadInputError(f"not a TFLite flatbuffer ({len(data)} bytes, no 'TFL3' identifier)")
    return schema.ModelT.InitFromObj(schema.Model.GetRootAs(data, 0))


def write_model(model) -> bytes:
    """Serialise a `ModelT`, every buffer's data 16-byte aligned."""
    import flatbuffers

    schema = _schema()
    originals = model.buffers or []
    model.buffers = [_AlignedBuffer(b.data, b.offset, b.size) for b in originals]
    try:
        builder = flatbuffers.Builder(1 << 16)
        builder.Finish(model.Pack(builder), file_identifier=_FILE_IDENTIFIER)
        out = bytes(builder.Output())
    finally:
        model.buffers = originals
    if not schema.Model.ModelBufferHasIdentifier(bytearray(out), 0):  # pragma: no cover - flatbuffers bug guard
        raise RuntimeError("write_model produced a buffer without the TFL3 identifier")
    return out


class _AlignedBuffer:
    """A BufferT stand-in whose Pack aligns its data vector to BUFFER_ALIGNMENT bytes."""

    def __init__(self, data, offset: int, size: int) -> None:
        self.data, self.offset, self.size = data, offset, size

    def Pack(self, builder):  # the flatbuffers object-API name
        schema = _schema()
        data_offset = None
        if self.data is not None:
            raw = np.asarray(self.data, dtype=np.uint8).tobytes()
            builder.StartVector(1, len(raw), BUFFER_ALIGNMENT)
            builder.head -= len(raw)
            builder.Bytes[builder.head:builder.head + len(raw)] = raw
            data_offset = builder.EndVector(len(raw))
        schema.BufferStart(builder)
        if data_offset is not None:
            schema.BufferAddData(builder, data_offset)
        schema.BufferAddOffset(builder, self.offset)
        schema.BufferAddSize(builder, self.size)
        return schema.BufferEnd(builder)


def buffer_data_offsets(tflite_bytes: bytes) -> list[tuple[int, int]]:
    """(file offset, length) of every non-empty buffer's data, for alignment checks."""
    schema = _schema()
    model = schema.Model.GetRootAs(bytearray(tflite_bytes), 0)
    spans = []
    for i in range(model.BuffersLength()):
        buffer = model.Buffers(i)
        if buffer.DataLength():
            table = buffer._tab
            start = table.Vector(table.Offset(4))
            spans.append((start, buffer.DataLength()))
    return spans


# ----------------------------------------------------------------------------- op names and layers


def builtin_names() -> dict[int, str]:
    schema = _schema()
    return {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}


def op_name(model, operator) -> str:
    """Builtin name of an OperatorT in a ModelT ("CUSTOM:<code>" for custom ops)."""
    schema = _schema()
    opcode = model.operatorCodes[operator.opcodeIndex]
    code = max(opcode.builtinCode, opcode.deprecatedBuiltinCode)
    if code == schema.BuiltinOperator.CUSTOM:
        custom = opcode.customCode
        return f"CUSTOM:{custom.decode('utf-8', 'replace') if isinstance(custom, bytes) else custom or '?'}"
    return builtin_names().get(code, f"BUILTIN_{code}")


@dataclass(frozen=True)
class OpSource:
    """One operator of the main subgraph and the Keras layer(s) its output tensor name mentions."""

    index: int
    op: str
    layers: tuple[str, ...]  # best guess first; () when the name mentions no known layer

    @property
    def layer(self) -> str | None:
        return self.layers[0] if self.layers else None


# Layers the converter fuses into the op before them: name the op after the other layer instead.
_FUSED_LAYER_HINTS = ("relu", "bn", "batch_normalization", "activation", "dropout", "pad", "flatten", "reshape")


def op_sources(tflite_bytes: bytes, layer_names) -> list[OpSource]:
    """Map each op of the main subgraph to the Keras layers named in its output tensor's name.

    The converter names an op's output after the TF ops fused into it, e.g.
    "model/conv1_relu/Relu6;model/conv1/Conv2D": split at ';' and '/', keep the parts that are layer
    names of the Keras model. Layers whose name suggests a fused activation / BatchNorm / pad go last,
    so `OpSource.layer` is the conv, dense, pooling... layer the op computes.
    """
    known = set(layer_names)
    model = read_model(tflite_bytes)
    subgraph = model.subgraphs[0]
    sources = []
    for i, operator in enumerate(subgraph.operators or []):
        mentioned = _layers_named(subgraph, ints(operator.outputs), known)
        if not mentioned:  # a model output is named after the signature: look at the op's weights
            constant = [t for t in ints(operator.inputs) if t >= 0 and _has_data(model, subgraph.tensors[t])]
            mentioned = _layers_named(subgraph, constant, known)
        primary = [m for m in mentioned if not any(h in m.lower() for h in _FUSED_LAYER_HINTS)]
        ordered = tuple(primary + [m for m in mentioned if m not in primary])
        sources.append(OpSource(i, op_name(model, operator), ordered))
    return sources


def _has_data(model, tensor) -> bool:
    data = model.buffers[tensor.buffer].data if 0 < tensor.buffer < len(model.buffers) else None
    return data is not None and len(data) > 0


def _layers_named(subgraph, tensor_indices, known: set[str]) -> list[str]:
    mentioned: list[str] = []
    for t in tensor_indices:
        name = subgraph.tensors[t].name
        text = name.decode("utf-8", "replace") if isinstance(name, bytes) else (name or "")
        for part in re.split(r"[;/]", text):
            if part in known and part not in mentioned:
                mentioned.append(part)
    return mentioned


# ----------------------------------------------------------------------------- compaction


def compact(model) -> None:
    """Drop tensors no op or subgraph I/O uses, buffers no tensor uses, and unused operator codes (in place).

    Buffer 0 stays: by convention it is the empty buffer non-constant tensors point to.
    """
    for subgraph in model.subgraphs or []:
        _compact_tensors(subgraph)
    used_buffers = {0} | {t.buffer for s in model.subgraphs or [] for t in s.tensors or []}
    used_buffers |= {m.buffer for m in model.metadata or []}
    buffer_map = _renumber(len(model.buffers or []), used_buffers)
    model.buffers = [b for i, b in enumerate(model.buffers or []) if i in buffer_map]
    for subgraph in model.subgraphs or []:
        for tensor in subgraph.tensors or []:
            tensor.buffer = buffer_map[tensor.buffer]
    for metadata in model.metadata or []:
        metadata.buffer = buffer_map[metadata.buffer]
    used_codes = {op.opcodeIndex for s in model.subgraphs or [] for op in s.operators or []}
    code_map = _renumber(len(model.operatorCodes or []), used_codes)
    model.operatorCodes = [c for i, c in enumerate(model.operatorCodes or []) if i in code_map]
    for subgraph in model.subgraphs or []:
        for op in subgraph.operators or []:
            op.opcodeIndex = code_map[op.opcodeIndex]


def _compact_tensors(subgraph) -> None:
    used = set(ints(subgraph.inputs)) | set(ints(subgraph.outputs))
    for op in subgraph.operators or []:
        for field in (op.inputs, op.outputs, op.intermediates):
            used |= {t for t in ints(field) if t >= 0}
    tensor_map = _renumber(len(subgraph.tensors or []), used)
    subgraph.tensors = [t for i, t in enumerate(subgraph.tensors or []) if i in tensor_map]

    def remap(indices):
        return None if indices is None else [tensor_map[int(t)] if t >= 0 else -1 for t in indices]

    subgraph.inputs, subgraph.outputs = remap(subgraph.inputs), remap(subgraph.outputs)
    for op in subgraph.operators or []:
        op.inputs, op.outputs, op.intermediates = remap(op.inputs), remap(op.outputs), remap(op.intermediates)


def ints(values) -> list[int]:
    """An index vector of the object API (None, list or numpy array) as a list of ints."""
    return [] if values is None else [int(v) for v in values]


def _renumber(count: int, used: set[int]) -> dict[int, int]:
    return {old: new for new, old in enumerate(i for i in range(count) if i in used)}


def tensor_bytes(model, subgraph, index: int) -> np.ndarray | None:
    """The raw bytes of a constant tensor (uint8 view), or None when it has no data."""
    tensor = subgraph.tensors[index]
    data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
    if data is None or len(data) == 0:
        return None
    return np.asarray(data, dtype=np.uint8)


NUMPY_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 7: np.int16, 9: np.int8}


def tflite_op_list(tflite_bytes: bytes) -> list[str]:
    """Builtin op names of a TFLite model in execution order (no interpreter, no TensorFlow).

    The main subgraph's operators come first, in the order the interpreter runs them, then those
    of any further subgraphs (control-flow bodies), each in order. Custom ops appear as
    "CUSTOM:<custom code>" (e.g. "CUSTOM:FlexCumprod" for a Select TF op).
    """
    from ai_edge_litert import schema_py_generated as schema

    data = bytearray(tflite_bytes)
    if len(data) < 8 or not schema.Model.ModelBufferHasIdentifier(data, 0):
        raise BadInputError(f"not a TFLite flatbuffer ({len(data)} bytes, no 'TFL3' identifier)")
    model = schema.Model.GetRootAs(data, 0)
    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    ops: list[str] = []
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for i in range(subgraph.OperatorsLength()):
            opcode = model.OperatorCodes(subgraph.Operators(i).OpcodeIndex())
            # Codes above 127 live in BuiltinCode; DeprecatedBuiltinCode caps at 127 (PLACEHOLDER_FOR_...).
            code = max(opcode.BuiltinCode(), opcode.DeprecatedBuiltinCode())
            if code == schema.BuiltinOperator.CUSTOM:
                custom = opcode.CustomCode()
                ops.append(f"CUSTOM:{custom.decode('utf-8', 'replace') if custom else '?'}")
            else:
                ops.append(names.get(code, f"BUILTIN_{code}"))
    return ops


def convs_without_bias(tflite_bytes: bytes) -> list[int]:
    """Main-subgraph quantised CONV_2D / DEPTHWISE_CONV_2D ops with no bias input (LiteRT requires one).

    `edgekit.export.strip.strip_for_mcu` drops all-zero biases: TFLite Micro treats them as optional,
    LiteRT's conv kernels do not (it crashes or refuses such files).
    """
    from ai_edge_litert import schema_py_generated as schema

    data = bytearray(tflite_bytes)
    if len(data) < 8 or not schema.Model.ModelBufferHasIdentifier(data, 0) or not schema.Model.GetRootAs(
            data, 0).SubgraphsLength():
        return []
    model = schema.Model.GetRootAs(data, 0)
    subgraph = model.Subgraphs(0)
    convs = (schema.BuiltinOperator.CONV_2D, schema.BuiltinOperator.DEPTHWISE_CONV_2D)
    found = []
    for i in range(subgraph.OperatorsLength()):
        op = subgraph.Operators(i)
        opcode = model.OperatorCodes(op.OpcodeIndex())
        if max(opcode.BuiltinCode(), opcode.DeprecatedBuiltinCode()) not in convs or op.InputsLength() < 1:
            continue
        quantized = subgraph.Tensors(op.Inputs(0)).Type() in (schema.TensorType.INT8, schema.TensorType.INT16)
        if quantized and (op.InputsLength() < 3 or op.Inputs(2) < 0):  # float convs may omit the bias
            found.append(i)
    return found


def infer_precision(tflite_bytes: bytes) -> str:
    """Which of PRECISIONS a converted model looks like, read from its tensor types.

    int8: activations (non-constant tensors) are int8; float16: float16 constants; dynamic_int8: int8
    constants with float activations; float32 otherwise.
    """
    model = read_model(tflite_bytes)
    subgraph = model.subgraphs[0]
    constant, variable = set(), set()
    for tensor in subgraph.tensors or []:
        data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
        (constant if data is not None and len(data) else variable).add(int(tensor.type))
    int8, float16 = 9, 1
    if int8 in variable:
        return "int8"
    if float16 in constant:
        return "float16"
    if int8 in constant:
        return "dynamic_int8"
    return "float32"


def read_tflite(tflite_bytes: bytes, label: str = "model.tflite"):
    """The flatbuffer as a ModelT; BadInputError (one line, naming `label`) for anything unreadable."""
    try:
        model = read_model(tflite_bytes)
        if not model.subgraphs:
            raise ValueError("no subgraphs")
        return model
    except BadInputError as exc:
        raise BadInputError(f"{label}: {exc}") from exc
    except Exception as exc:  # a corrupt flatbuffer raises anything from the generated reader
        raise BadInputError(f"{label}: not a readable TFLite flatbuffer ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else 'corrupt'}); re-export the model") from exc


def subgraph_op_names(model, label: str = "model.tflite") -> list[list[str]]:
    """The builtin names of every subgraph's operators, in order (BadInputError for a missing opcode)."""
    try:
        return [[op_name(model, operator) for operator in subgraph.operators or []] for subgraph in model.subgraphs]
    except (IndexError, AttributeError) as exc:
        raise BadInputError(f"{label}: an operator refers to a missing operator code; re-export the model") from exc
