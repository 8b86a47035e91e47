"""Check a .tflite flatbuffer in Python before a native interpreter sees it: truncated or fuzzed files.

    >>> validate_tflite("model.tflite", data)        # doctest: +SKIP

Every offset and vector length is bounds-checked before it is followed, and indices between tables
(tensor -> buffer, operator -> opcode, operator -> tensor) are checked against the counts, so a damaged
file gets one BadInputError naming it instead of a crash in LiteRT or TFLite Micro. Pure Python.
"""

from __future__ import annotations

import math
import struct

from edgekit.errors import BadInputError

MAX_TENSOR_ELEMENTS = 1 << 31
MAX_ENTRIES = 1 << 20          # tensors, operators, buffers per model
# Bytes per element of TensorType 0..17 (schema.fbs); 0 for strings and variable-size types.
_TYPE_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 5: 0, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 13: 0,
               14: 0, 15: 4, 16: 2, 17: 1}


class _Reader:
    def __init__(self, label: str, data: bytes) -> None:
        self.label, self.data, self.size = label, data, len(data)

    def fail(self, what: str) -> BadInputError:
        return BadInputError(f"{self.label}: not a valid .tflite model ({what}); re-export it with "
                             "`edgekit export`")

    def unpack(self, fmt: str, pos: int):
        width = struct.calcsize(fmt)
        if pos < 0 or pos + width > self.size:
            raise self.fail(f"an offset points past the end of the {self.size:,}-byte file: truncated?")
        return struct.unpack_from(fmt, self.data, pos)[0]

    def table(self, pos: int) -> tuple[int, int, int]:
        """(table position, vtable position, vtable size)."""
        vtable = pos - self.unpack("<i", pos)
        vt_size = self.unpack("<H", vtable)
        if vt_size < 4 or vt_size % 2 or vtable + vt_size > self.size:
            raise self.fail("a table has a damaged vtable")
        return pos, vtable, vt_size

    def field(self, table: tuple[int, int, int], index: int) -> int | None:
        pos, vtable, vt_size = table
        slot = 4 + 2 * index
        if slot + 2 > vt_size:
            return None
        offset = self.unpack("<H", vtable + slot)
        return pos + offset if offset else None

    def scalar(self, table, index: int, fmt: str, default: int = 0) -> int:
        at = self.field(table, index)
        return default if at is None else self.unpack(fmt, at)

    def vector(self, table, index: int, elem_bytes: int) -> tuple[int, int]:
        """(start, length) of a vector field; (0, 0) when absent."""
        at = self.field(table, index)
        if at is None:
            return 0, 0
        start = at + self.unpack("<I", at)
        length = self.unpack("<I", start)
        if length > MAX_ENTRIES * 64 or start + 4 + length * elem_bytes > self.size:
            raise self.fail(f"a vector of {length:,} entries runs past the end of the file")
        return start + 4, length

    def tables(self, table, index: int) -> list[tuple[int, int, int]]:
        start, length = self.vector(table, index, 4)
        if length > MAX_ENTRIES:
            raise self.fail(f"{length:,} entries in one table list")
        return [self.table(start + 4 * i + self.unpack("<I", start + 4 * i)) for i in range(length)]

    def ints(self, table, index: int) -> list[int]:
        start, length = self.vector(table, index, 4)
        return list(struct.unpack_from(f"<{length}i", self.data, start)) if length else []


def validate_tflite(label: str, data: bytes) -> None:
    """Raise BadInputError (one line naming `label`) unless `data` is a structurally sound TFLite model."""
    r = _Reader(label, data)
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise r.fail("no TFL3 identifier at byte 4" if len(data) >= 8 else "shorter than a flatbuffer header")
    model = r.table(r.unpack("<I", 0))
    opcodes = r.tables(model, 1)
    buffers = r.tables(model, 4)
    subgraphs = r.tables(model, 2)
    if not subgraphs:
        raise r.fail("it has no subgraph")
    buffer_sizes = [_buffer_bytes(r, b) for b in buffers]
    for s_index, subgraph in enumerate(subgraphs):
        tensors = r.tables(subgraph, 0)
        n = len(tensors)
        for t_index, tensor in enumerate(tensors):
            _check_tensor(r, tensor, f"subgraph {s_index} tensor {t_index}", buffer_sizes)
        for name, index in (("input", 1), ("output", 2)):
            if any(not 0 <= i < n for i in r.ints(subgraph, index)):
                raise r.fail(f"subgraph {s_index} names an {name} tensor that does not exist")
        for o_index, op in enumerate(r.tables(subgraph, 3)):
            if not 0 <= r.scalar(op, 0, "<I") < len(opcodes):
                raise r.fail(f"subgraph {s_index} operator {o_index} uses an operator code that does not exist")
            if any(not -1 <= i < n for i in (*r.ints(op, 1), *r.ints(op, 2))):
                raise r.fail(f"subgraph {s_index} operator {o_index} uses a tensor that does not exist")


def _buffer_bytes(r: _Reader, buffer) -> int:
    _, length = r.vector(buffer, 0, 1)
    offset, size = r.scalar(buffer, 1, "<Q"), r.scalar(buffer, 2, "<Q")
    if offset > 1 and (offset + size > r.size):
        raise r.fail("a buffer's external data lies past the end of the file")
    return length or (size if offset > 1 else 0)


def _check_tensor(r: _Reader, tensor, where: str, buffer_sizes: list[int]) -> None:
    shape = r.ints(tensor, 0)
    if any(d < -1 for d in shape):
        raise r.fail(f"{where} has a negative dimension")
    elements = math.prod(max(d, 1) for d in shape)
    if elements > MAX_TENSOR_ELEMENTS:
        raise r.fail(f"{where} has {elements:,} elements")
    dtype = r.scalar(tensor, 1, "<b")
    if dtype not in _TYPE_BYTES:
        raise r.fail(f"{where} has an unknown type {dtype}")
    buffer = r.scalar(tensor, 2, "<I")
    if buffer >= max(len(buffer_sizes), 1):
        raise r.fail(f"{where} refers to buffer {buffer}, but there are {len(buffer_sizes)}")
    held = buffer_sizes[buffer] if buffer_sizes else 0
    need = elements * _TYPE_BYTES[dtype]
    if held and -1 not in shape and _TYPE_BYTES[dtype] and held < need and dtype not in (16, 17):
        raise r.fail(f"{where} needs {need:,} bytes of data but its buffer holds {held:,}")
