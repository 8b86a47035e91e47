"""Drop what a microcontroller does not need from a TFLite flatbuffer, and say where the bytes go.

    >>> result = strip_for_mcu(int8_bytes)                                   # doctest: +SKIP
    >>> result.before.overhead_bytes, result.after.overhead_bytes            # doctest: +SKIP

A converted model carries, beside its weights: tensor names (the converter joins every fused TF op's
name, often 100+ characters per tensor), the signature (names of inputs and outputs), metadata
(runtime version, conversion options), the description, min/max calibration ranges kept beside the
scale and zero point, and shape signatures that repeat static shapes. TFLite Micro uses none of them:
it looks tensors up by index and reads only scale / zero point. `strip_for_mcu` removes them, keeps
TFLM's own `OfflineMemoryAllocation` metadata if present, and compacts the buffer list. The MCU
exporter checks that TFLM gives bit-identical outputs before and after.

Per-channel quantisation is most of what is left: every int8 weight and int32 bias tensor stores a
float32 scale and an int64 zero point per output channel (24 bytes a channel for a conv with bias),
and the zero points are all 0. Flatbuffers let any number of tables point at one vector, so
`strip_for_mcu` writes each distinct scale / zero-point vector, quantisation table and shape vector
once, and each distinct operator options table once (`share_vectors`): the values every tensor
and op reads are unchanged. It also drops all-zero biases of
CONV_2D / DEPTHWISE_CONV_2D (a separable conv's depthwise half without BatchNorm gets one from the
converter): TFLM's kernels take the bias as optional (2 inputs) and add nothing without it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekit.model_io.flatbuffer import compact, read_model, write_model

KEPT_METADATA = ("OfflineMemoryAllocation",)  # TFLM reads this one to place tensors


@dataclass(frozen=True)
class SizeBreakdown:
    """Where the bytes of a .tflite file go (the parts do not add up to the total: tables and offsets
    of the flatbuffer itself make up the rest of `overhead_bytes`)."""

    total_bytes: int
    weight_bytes: int        # data of constant tensors: weights, biases, constant shapes
    quantization_bytes: int  # scales (float32), zero points (int64), min/max: distinct vectors stored
    name_bytes: int          # tensor, subgraph and signature names, description
    metadata_bytes: int      # metadata buffers (runtime version, conversion metadata)

    @property
    def overhead_bytes(self) -> int:
        """Everything but the weights."""
        return self.total_bytes - self.weight_bytes


@dataclass(frozen=True)
class StripResult:
    tflite_bytes: bytes
    before: SizeBreakdown
    after: SizeBreakdown
    removed: tuple[str, ...]  # what was dropped, for the export report


def size_breakdown(tflite_bytes: bytes) -> SizeBreakdown:
    """Weight bytes versus the rest of a TFLite file."""
    model = read_model(tflite_bytes)
    metadata_buffers = {m.buffer for m in model.metadata or []}
    weight_buffers = {t.buffer for s in model.subgraphs or [] for t in s.tensors or []} - {0} - metadata_buffers
    weights = sum(_data_len(model.buffers[b]) for b in weight_buffers)
    quantization = _stored_quantization_bytes(tflite_bytes)
    names = _text_len(model.description)
    for subgraph in model.subgraphs or []:
        names += _text_len(subgraph.name) + sum(_text_len(t.name) for t in subgraph.tensors or [])
    for signature in model.signatureDefs or []:
        names += _text_len(signature.signatureKey)
        names += sum(_text_len(m.name) for m in (signature.inputs or []) + (signature.outputs or []))
    metadata = sum(_data_len(model.buffers[b]) + 4 for b in metadata_buffers)
    metadata += sum(_text_len(m.name) for m in model.metadata or [])
    return SizeBreakdown(len(tflite_bytes), weights, quantization, names, metadata)


def strip_for_mcu(tflite_bytes: bytes, share: bool = True) -> StripResult:
    """The same model without names, signatures, metadata, description, min/max and repeated shape signatures."""
    model = read_model(tflite_bytes)
    removed = []
    if model.description:
        removed.append("description")
    model.description = None
    if model.signatureDefs:
        removed.append(f"{len(model.signatureDefs)} signature def(s)")
    model.signatureDefs = None
    dropped = [_decode(m.name) for m in model.metadata or [] if _decode(m.name) not in KEPT_METADATA]
    if dropped:
        removed.append(f"metadata {', '.join(dropped)}")
    model.metadata = [m for m in model.metadata or [] if _decode(m.name) in KEPT_METADATA] or None
    model.metadataBuffer = None
    names = min_max = signatures = 0
    for subgraph in model.subgraphs or []:
        subgraph.name = None
        subgraph.debugMetadataIndex = -1
        for op in subgraph.operators or []:
            op.debugMetadataIndex = -1
        for tensor in subgraph.tensors or []:
            names += tensor.name is not None
            tensor.name = None
            q = tensor.quantization
            if q is not None and (q.min is not None or q.max is not None):
                min_max += 1
                q.min = q.max = None
            if tensor.shapeSignature is not None and list(tensor.shapeSignature) == _ints(tensor.shape):
                signatures += 1
                tensor.shapeSignature = None
    removed += [f"{names} tensor names", f"min/max of {min_max} tensors", f"{signatures} static shape signatures"]
    zero_biases = _drop_zero_biases(model)
    if zero_biases:
        removed.append(f"{zero_biases} all-zero conv bias(es)")
    empty = _point_empty_to_buffer_zero(model)
    if empty:
        removed.append(f"{empty} empty buffer entries of activation tensors")
    tensors_before = [list(s.tensors or []) for s in model.subgraphs or []]
    compact(model)
    _renumber_offline_plan(model, tensors_before)
    stripped = write_model(model)
    if share:
        shared = share_vectors(stripped)
        if len(shared) < len(stripped):
            saved = len(stripped) - len(shared)
            removed.append(f"{saved} bytes of repeated quantisation and shape vectors (now shared)")
            stripped = shared
    return StripResult(stripped, size_breakdown(tflite_bytes), size_breakdown(stripped), tuple(removed))


def share_vectors(tflite_bytes: bytes) -> bytes:
    """The same model with each distinct quantisation vector / table and shape vector stored once."""
    model = read_model(tflite_bytes)
    cache = _PackCache()
    for subgraph in model.subgraphs or []:
        tensors = subgraph.tensors or []
        for tensor in tensors:
            if tensor.quantization is not None and tensor.quantization.details is None:
                tensor.quantization = _SharedQuantization(tensor.quantization, cache)
            if tensor.shape is not None:
                tensor.shape = np.asarray(tensor.shape, dtype=np.int32)
        subgraph.tensors = [_SharedTensor(t, cache) for t in tensors]
        for operator in subgraph.operators or []:
            options = operator.builtinOptions
            if options is not None and all(isinstance(v, (int, float, bool)) for v in vars(options).values()):
                operator.builtinOptions = _SharedTable(options, cache)
    return write_model(model)  # the model is a private copy: no need to restore it


def _drop_zero_biases(model) -> int:
    """Remove all-zero bias inputs of CONV_2D / DEPTHWISE_CONV_2D (TFLM treats a third input as optional)."""
    from edgekit.model_io.flatbuffer import ints, op_name, tensor_bytes

    dropped = 0
    for subgraph in model.subgraphs or []:
        for operator in subgraph.operators or []:
            inputs = ints(operator.inputs)
            if len(inputs) != 3 or inputs[2] < 0 or op_name(model, operator) not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                continue
            data = tensor_bytes(model, subgraph, inputs[2])
            if data is not None and not data.any():
                operator.inputs = inputs[:2]
                dropped += 1
    return dropped


def _renumber_offline_plan(model, tensors_before: list[list]) -> None:
    """Keep an OfflineMemoryAllocation plan (one offset per tensor) valid after tensors were dropped."""
    for metadata in model.metadata or []:
        if _decode(metadata.name) != KEPT_METADATA[0] or len(model.subgraphs or []) != 1:
            continue
        buffer = model.buffers[metadata.buffer]
        values = np.frombuffer(bytes(np.asarray(buffer.data, dtype=np.uint8)), dtype="<i4")
        if len(values) != 3 + len(tensors_before[0]):
            continue  # not a plan for these tensors: leave it, TFLM reports the count mismatch
        old_index = {id(t): i for i, t in enumerate(tensors_before[0])}
        kept = [values[3 + old_index[id(t)]] for t in model.subgraphs[0].tensors or []]
        new = np.array([values[0], values[1], len(kept), *kept], dtype="<i4")
        buffer.data = np.frombuffer(new.tobytes(), dtype=np.uint8).copy()


def _point_empty_to_buffer_zero(model) -> int:
    """Make every tensor without data use buffer 0, the schema's empty sentinel; returns the buffers freed."""
    buffers = model.buffers or []
    empty = {i for i, b in enumerate(buffers) if i > 0 and (b.data is None or len(b.data) == 0)
             and not b.offset and not b.size}
    empty -= {m.buffer for m in model.metadata or []}
    for subgraph in model.subgraphs or []:
        for tensor in subgraph.tensors or []:
            if tensor.buffer in empty:
                tensor.buffer = 0
    return len(empty)


class _CachingBuilder:
    """A flatbuffers Builder whose CreateNumpyVector reuses an identical vector already written."""

    def __init__(self, builder, cache: _PackCache) -> None:
        self._builder, self._cache = builder, cache

    def __getattr__(self, name):
        return getattr(self._builder, name)

    def CreateNumpyVector(self, array):  # the flatbuffers name
        key = ("vector", array.dtype.str, array.tobytes())
        return self._cache.get(self._builder, key, lambda: self._builder.CreateNumpyVector(array))


class _SharedTable:
    """An options table of scalars (Conv2DOptionsT, ...) written once per distinct content."""

    def __init__(self, table, cache: _PackCache) -> None:
        self.table, self.cache = table, cache

    def Pack(self, builder):  # the flatbuffers object-API name
        key = ("table", type(self.table).__name__, tuple(sorted(vars(self.table).items())))
        return self.cache.get(builder, key, lambda: self.table.Pack(builder))


class _SharedTensor:
    """A TensorT stand-in packed through _CachingBuilder (its shape vector is shared)."""

    def __init__(self, tensor, cache: _PackCache) -> None:
        self.tensor, self.cache = tensor, cache

    def Pack(self, builder):  # the flatbuffers object-API name
        return self.tensor.Pack(_CachingBuilder(builder, self.cache))


class _PackCache:
    """Offsets of vectors and tables already written into the current builder, by content."""

    def __init__(self) -> None:
        self.builder = None
        self.offsets: dict = {}

    def get(self, builder, key, make):
        builder = getattr(builder, "_builder", builder)  # a _CachingBuilder proxy: the real builder
        if builder is not self.builder:
            self.builder, self.offsets = builder, {}
        if key not in self.offsets:
            self.offsets[key] = make()
        return self.offsets[key]


class _SharedQuantization:
    """A QuantizationParametersT stand-in whose Pack reuses identical vectors and tables."""

    _FIELDS = (("min", "<f4"), ("max", "<f4"), ("scale", "<f4"), ("zeroPoint", "<i8"))

    def __init__(self, quantization, cache: _PackCache) -> None:
        self.q, self.cache = quantization, cache

    def Pack(self, builder):  # the flatbuffers object-API name
        from ai_edge_litert import schema_py_generated as schema

        vectors = {}
        for field, dtype in self._FIELDS:
            values = getattr(self.q, field)
            if values is not None:
                array = np.asarray(values, dtype=dtype)
                vectors[field] = self.cache.get(builder, ("vector", array.dtype.str, array.tobytes()),
                                                lambda a=array: builder.CreateNumpyVector(a))
        key = ("table", tuple(sorted(vectors.items())), int(self.q.quantizedDimension), int(self.q.detailsType))

        def table():
            schema.QuantizationParametersStart(builder)
            for field, add in (("min", schema.QuantizationParametersAddMin),
                               ("max", schema.QuantizationParametersAddMax),
                               ("scale", schema.QuantizationParametersAddScale),
                               ("zeroPoint", schema.QuantizationParametersAddZeroPoint)):
                if field in vectors:
                    add(builder, vectors[field])
            schema.QuantizationParametersAddDetailsType(builder, self.q.detailsType)
            schema.QuantizationParametersAddQuantizedDimension(builder, self.q.quantizedDimension)
            return schema.QuantizationParametersEnd(builder)

        return self.cache.get(builder, key, table)


def _stored_quantization_bytes(tflite_bytes: bytes) -> int:
    """Bytes of the distinct scale / zero-point / min / max vectors the file stores (shared ones once)."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(bytearray(tflite_bytes), 0)
    seen: dict[int, int] = {}
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for t in range(subgraph.TensorsLength()):
            q = subgraph.Tensors(t).Quantization()
            if q is None:
                continue
            for slot, width, length in ((4, 4, q.MinLength()), (6, 4, q.MaxLength()), (8, 4, q.ScaleLength()),
                                        (10, 8, q.ZeroPointLength())):
                if length:
                    seen[q._tab.Vector(q._tab.Offset(slot))] = width * length
    return sum(seen.values())


def _ints(values) -> list[int]:
    return [] if values is None else [int(v) for v in values]


def _decode(text) -> str:
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else (text or "")


def _text_len(text) -> int:
    return len(text) if text else 0


def _data_len(buffer) -> int:
    return 0 if buffer.data is None else len(buffer.data)
