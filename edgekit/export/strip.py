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
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.model_io.flatbuffer import compact, read_model, write_model

KEPT_METADATA = ("OfflineMemoryAllocation",)  # TFLM reads this one to place tensors


@dataclass(frozen=True)
class SizeBreakdown:
    """Where the bytes of a .tflite file go (the parts do not add up to the total: tables and offsets
    of the flatbuffer itself make up the rest of `overhead_bytes`)."""

    total_bytes: int
    weight_bytes: int        # data of constant tensors: weights, biases, constant shapes
    quantization_bytes: int  # scales (float32) and zero points (int64) per tensor / channel, min/max
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
    quantization = sum(_quantization_len(t.quantization) for s in model.subgraphs or [] for t in s.tensors or [])
    names = _text_len(model.description)
    for subgraph in model.subgraphs or []:
        names += _text_len(subgraph.name) + sum(_text_len(t.name) for t in subgraph.tensors or [])
    for signature in model.signatureDefs or []:
        names += _text_len(signature.signatureKey)
        names += sum(_text_len(m.name) for m in (signature.inputs or []) + (signature.outputs or []))
    metadata = sum(_data_len(model.buffers[b]) + 4 for b in metadata_buffers)
    metadata += sum(_text_len(m.name) for m in model.metadata or [])
    return SizeBreakdown(len(tflite_bytes), weights, quantization, names, metadata)


def strip_for_mcu(tflite_bytes: bytes) -> StripResult:
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
    compact(model)
    stripped = write_model(model)
    return StripResult(stripped, size_breakdown(tflite_bytes), size_breakdown(stripped), tuple(removed))


def _ints(values) -> list[int]:
    return [] if values is None else [int(v) for v in values]


def _decode(text) -> str:
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else (text or "")


def _text_len(text) -> int:
    return len(text) if text else 0


def _data_len(buffer) -> int:
    return 0 if buffer.data is None else len(buffer.data)


def _quantization_len(q) -> int:
    if q is None:
        return 0
    lengths = (len(q.scale) * 4 if q.scale is not None else 0, len(q.zeroPoint) * 8 if q.zeroPoint is not None else 0,
               len(q.min) * 4 if q.min is not None else 0, len(q.max) * 4 if q.max is not None else 0)
    return sum(lengths)
