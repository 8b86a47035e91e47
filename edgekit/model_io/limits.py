"""Resource guards run before anything is allocated: a small hostile file must not take gigabytes.

    >>> require_regular_file("data.npz", "data file")          # doctest: +SKIP

The ceilings are the constants below (this docstring is their documentation), far above any model
edgekit can fit to a phone or microcontroller, and far below what would exhaust a small host:

- a model config: at most MAX_CONFIG_BYTES of JSON, MAX_NESTING_DEPTH levels, MAX_LAYERS layers,
  strings of MAX_STRING_CHARS, any size field (units, filters, dims) at most MAX_DIM, an estimated
  MAX_PARAMS parameters and MAX_INPUT_ELEMENTS values per input sample (checked in config_limits);
- archives (.keras, .npz): member names inside the archive, at most MAX_ARCHIVE_BYTES uncompressed;
- .h5 weights: MAX_WEIGHT_BYTES declared over all datasets (unwritten chunks cost nothing on disk);
- arrays (.npy, .npz members): at most MAX_ARRAY_BYTES, and no more than the file can hold;
- images: MAX_IMAGE_PIXELS each.

Every refusal is a one-line BadInputError naming the file and the field. Pure Python, no TensorFlow.
"""

from __future__ import annotations

import math
import os
import stat
import zipfile

from edgekit.errors import BadInputError

MAX_CONFIG_BYTES = 32 << 20
MAX_NESTING_DEPTH = 64
MAX_LAYERS = 20_000
MAX_STRING_CHARS = 1 << 20
MAX_DIM = 1 << 24
MAX_PARAMS = 100_000_000          # 400 MB of float32 weights
MAX_INPUT_ELEMENTS = 1 << 26      # 64 M values per sample (a 4096 x 4096 x 3 image is 50 M)
MAX_ARCHIVE_BYTES = 2 << 30
MAX_ARRAY_BYTES = 1 << 30
MAX_WEIGHT_BYTES = 1 << 30        # all datasets of an .h5 together (a loader reads each one whole)
MAX_HDF5_OBJECTS = 200_000
MAX_ARCHIVED_WEIGHTS_CHECK_BYTES = 64 << 20
MAX_IMAGE_PIXELS = 64_000_000



def require_regular_file(path: str | os.PathLike, what: str) -> None:
    """Refuse FIFOs, devices, sockets and folders where a file is expected (opening a FIFO would block)."""
    label = os.fspath(path)
    try:
        mode = os.stat(label).st_mode
    except FileNotFoundError:
        raise BadInputError(f"{label}: no such file") from None
    except OSError as exc:
        raise BadInputError(f"{label}: cannot read the {what} ({exc.strerror or exc})") from None
    if stat.S_ISREG(mode):
        return
    kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "not a regular file")
    raise BadInputError(f"{label}: is {kind}, not a {what}; give the path of a regular file")


def check_hdf5_datasets(label: str, h5) -> None:
    """Refuse an HDF5 file whose datasets declare more bytes than the ceiling, before any is read."""
    import h5py

    total, count = 0, 0

    def visit(name, obj):
        nonlocal total, count
        count += 1
        if count > MAX_HDF5_OBJECTS:
            raise BadInputError(f"{label}: the HDF5 file holds more than {MAX_HDF5_OBJECTS:,} objects")
        if isinstance(obj, h5py.Dataset):
            total += int(obj.size or 0) * int(obj.dtype.itemsize)
            if total > MAX_WEIGHT_BYTES:
                raise BadInputError(f"{label}: the HDF5 datasets declare more than {MAX_WEIGHT_BYTES:,} bytes "
                                    f"(at '{short(name)}'); refusing the file")

    h5.visititems(visit)


def check_archived_weights(label: str, archive: zipfile.ZipFile, name: str) -> None:
    """check_hdf5_datasets for the weights file inside a .keras archive, read in place (small members only:
    a member of more than MAX_ARCHIVED_WEIGHTS_CHECK_BYTES is a real model's weights, its own size bounds it)."""
    import h5py

    if archive.getinfo(name).file_size > MAX_ARCHIVED_WEIGHTS_CHECK_BYTES:
        return
    with archive.open(name) as member:
        try:
            h5 = h5py.File(member, "r")
        except (OSError, ValueError) as exc:
            raise BadInputError(f"{label}: {name} in the archive is not a readable HDF5 file ({exc})") from exc
        with h5:
            check_hdf5_datasets(f"{label}: {name}", h5)


def check_zip_members(label: str, archive: zipfile.ZipFile, max_total_bytes: int = MAX_ARCHIVE_BYTES) -> None:
    """Refuse member names that leave the archive and uncompressed totals over the ceiling, before reading."""
    total = 0
    for info in archive.infolist():
        name = info.filename
        if name.startswith(("/", "\\")) or ".." in name.replace("\\", "/").split("/") or ":" in name:
            raise BadInputError(f"{label}: the archive member name '{short(name)}' points outside the archive; "
                                "refusing the file")
        total += info.file_size
        if total > max_total_bytes:
            raise BadInputError(f"{label}: the archive unpacks to more than {max_total_bytes:,} bytes "
                                f"(member '{short(name)}'); refusing it")


def read_member(label: str, archive: zipfile.ZipFile, name: str, max_bytes: int) -> bytes:
    """A member's bytes, refused when its size (declared or actual) is over `max_bytes`."""
    info = archive.getinfo(name)
    if info.file_size > max_bytes:
        raise BadInputError(f"{label}: {name} unpacks to {info.file_size:,} bytes, over the limit of "
                            f"{max_bytes:,}; refusing the file")
    with archive.open(info) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise BadInputError(f"{label}: {name} unpacks to more than {max_bytes:,} bytes; refusing the file")
    return data


def check_array_header(label: str, shape: tuple, dtype, available_bytes: int | None,
                       max_bytes: int = MAX_ARRAY_BYTES) -> None:
    """Refuse an array whose header asks for more than the ceiling, or more than the file holds."""
    if not all(isinstance(d, int) and d >= 0 for d in shape):
        raise BadInputError(f"{label}: the array header has an invalid shape {short(str(shape))}")
    nbytes = math.prod(shape) * max(1, int(getattr(dtype, "itemsize", 1)))
    if nbytes > max_bytes:
        raise BadInputError(f"{label}: the array header declares shape {short(str(shape))} ({nbytes:,} bytes), "
                            f"over the limit of {max_bytes:,}; split the data or use fewer samples")
    if available_bytes is not None and nbytes > available_bytes:
        raise BadInputError(f"{label}: the array header declares shape {short(str(shape))} ({nbytes:,} bytes) "
                            f"but the file holds {available_bytes:,} bytes of data: it is truncated or damaged")


def short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


MAX_YAML_BYTES = 1 << 20
MAX_YAML_DEPTH = 32
MAX_YAML_NODES = 100_000         # after expanding aliases: a "billion laughs" file expands to 10^9
MAX_YAML_SCALAR_CHARS = 10_000
MAX_NUMBER_CHARS = 40


def read_yaml_text(path: str | os.PathLike, label: str) -> str:
    """A YAML file's text, refused before parsing when it is not a regular file or would expand too far."""
    import yaml

    require_regular_file(path, "YAML file")
    with open(path, "rb") as f:
        data = f.read(MAX_YAML_BYTES + 1)
    if len(data) > MAX_YAML_BYTES:
        raise BadInputError(f"{label}: the file is over {MAX_YAML_BYTES:,} bytes; a profile is a few KB")
    text = data.decode("utf-8")
    depth = total = 0
    open_anchors: list[tuple[str | None, int]] = []
    sizes: dict[str, int] = {}
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        where = f"line {event.start_mark.line + 1}" if event.start_mark is not None else "the file"
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise BadInputError(f"{label}: nested more than {MAX_YAML_DEPTH} levels deep at {where}")
            open_anchors.append((event.anchor, total))
            total += 1
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1
            anchor, start = open_anchors.pop()
            if anchor is not None:
                sizes[anchor] = total - start
        elif isinstance(event, yaml.AliasEvent):
            total += sizes.get(event.anchor, 1)
        elif isinstance(event, yaml.ScalarEvent):
            total += 1
            _check_scalar(label, event.value, bool(event.implicit and event.implicit[0]), where)
            if event.anchor is not None:
                sizes[event.anchor] = 1
        if total > MAX_YAML_NODES:
            raise BadInputError(f"{label}: expands to more than {MAX_YAML_NODES:,} values (aliases repeating "
                                f"aliases, at {where}); write the profile out plainly")
    return text


def _check_scalar(label: str, value: str, plain: bool, where: str) -> None:
    if len(value) > MAX_YAML_SCALAR_CHARS:
        raise BadInputError(f"{label}: a value of {len(value):,} characters at {where} (limit "
                            f"{MAX_YAML_SCALAR_CHARS:,})")
    digits = sum(ch.isdigit() for ch in value)
    if plain and digits > MAX_NUMBER_CHARS and all(ch in "0123456789+-_.eE:xXoObBabcdefABCDEF" for ch in value):
        raise BadInputError(f"{label}: a number with {digits:,} digits at {where}; write sizes like 256KB or "
                            "a plain byte count")
