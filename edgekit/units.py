"""Parse and format the quantities device profiles and CLI options are written in.

Pure functions, no third-party imports.

Sizes (``parse_bytes``)
    KB, MB, GB, TB are powers of 1024 and mean exactly the same as KiB, MiB, GiB, TiB. This is the JEDEC
    memory convention that microcontroller datasheets use: an nRF52840's "256 KB RAM" is 262144 bytes.
    ``K``/``M``/``G``/``T`` alone are accepted too. A plain number, or one suffixed ``B``, is a byte count.
    Suffixes are case-insensitive and may be separated from the number by spaces: ``"1 GB"``, ``"64kB"``.
    Fractional results are rounded to the nearest byte (``"1.1MB"`` -> 1153434).

Durations (``parse_ms`` returns ms, ``parse_us`` returns µs)
    ``s``, ``ms``, ``us`` (or ``µs``). A plain number is in the function's own unit.

Energy (``parse_mj``, mJ) and power (``parse_mw``, mW)
    ``J``, ``mJ``, ``uJ`` and ``W``, ``mW``, ``uW``. A plain number is in mJ / mW.

Rates (``parse_rate``, per second)
    ``k``, ``M``, ``G``, ``T`` are *decimal* here (10^3 ... 10^12), as throughput is always quoted:
    ``"30M"`` MACs/s is 3e7. A plain number or scientific notation (``"3e7"``) is taken as is.

Every parser rejects negatives, unknown suffixes, booleans and non-numbers with a ``ValueError`` whose
message starts with the field name (when given) and shows the accepted forms, e.g.
``budgets.ram_bytes: '12XB' is not a size (use 256KB, 1.5MB, 2MiB or a byte count)``.
"""

from __future__ import annotations

import math
import re

__all__ = [
    "format_bytes",
    "parse_bytes",
    "parse_count",
    "parse_mj",
    "parse_ms",
    "parse_mw",
    "parse_rate",
    "parse_us",
]

_NUMBER_WITH_SUFFIX = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-zµ]*)$")

_KIB = 1024
_BYTE_FACTORS = {
    "": 1, "b": 1,
    "k": _KIB, "kb": _KIB, "kib": _KIB,
    "m": _KIB**2, "mb": _KIB**2, "mib": _KIB**2,
    "g": _KIB**3, "gb": _KIB**3, "gib": _KIB**3,
    "t": _KIB**4, "tb": _KIB**4, "tib": _KIB**4,
}
_MS_FACTORS = {"ms": 1.0, "s": 1e3, "us": 1e-3, "µs": 1e-3}
_US_FACTORS = {"us": 1.0, "µs": 1.0, "ms": 1e3, "s": 1e6}
_MJ_FACTORS = {"mj": 1.0, "j": 1e3, "uj": 1e-3, "µj": 1e-3}
_MW_FACTORS = {"mw": 1.0, "w": 1e3, "uw": 1e-3, "µw": 1e-3}
_RATE_FACTORS = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}

_BYTES_FORMS = "use 256KB, 1.5MB, 2MiB or a byte count"
_MS_FORMS = "use 20, 20ms, 0.5s or 500us"
_US_FORMS = "use 30, 30us, 0.03ms or 1s"
_MJ_FORMS = "use 2, 2mJ, 500uJ or 0.01J"
_MW_FORMS = "use 120, 120mW, 2.5W or 30uW"
_RATE_FORMS = "use 30M, 1.2G, 500k, 3e7 or a plain number"
_COUNT_FORMS = "use a whole number such as 1, 4 or 8"


def _prefix(field: str) -> str:
    return f"{field}: " if field else ""


def _split(value: object, field: str, what: str, forms: str) -> tuple[float, str]:
    """Split ``value`` into (number, lower-case suffix); raise the shared error for anything else."""
    bad = ValueError(f"{_prefix(field)}{value!r} is not {what} ({forms})")
    if isinstance(value, bool) or value is None:
        raise bad
    if isinstance(value, (int, float)):
        number, suffix = float(value), ""
    elif isinstance(value, str):
        match = _NUMBER_WITH_SUFFIX.match(value.strip())
        if not match:
            raise bad
        number, suffix = float(match.group(1)), match.group(2).lower()
    else:
        raise bad
    if not math.isfinite(number):
        raise bad
    if number < 0:
        raise ValueError(f"{_prefix(field)}{value!r} is negative ({what} must be >= 0)")
    return number, suffix


def _parse(value: object, field: str, what: str, forms: str, factors: dict[str, float], plain: float) -> float:
    number, suffix = _split(value, field, what, forms)
    if suffix == "":
        return number * plain
    if suffix not in factors:
        raise ValueError(f"{_prefix(field)}{value!r} is not {what} ({forms})")
    return number * factors[suffix]


def parse_bytes(value: str | float, field: str = "") -> int:
    """A size in bytes from ``"256KB"``, ``"1.5MB"``, ``"2MiB"``, ``"1 GB"``, ``"512"`` or ``1024``.

    KB/MB/GB are powers of 1024 (see module docstring).

    >>> parse_bytes("256KB")
    262144
    >>> parse_bytes("1.5MB")
    1572864
    """
    number = _parse(value, field, "a size", _BYTES_FORMS, _BYTE_FACTORS, 1)
    return round(number)


def parse_ms(value: str | float, field: str = "") -> float:
    """A duration in milliseconds from ``20``, ``"20ms"``, ``"0.5s"`` or ``"500us"``.

    >>> parse_ms("0.5s")
    500.0
    """
    return _parse(value, field, "a duration", _MS_FORMS, _MS_FACTORS, 1.0)


def parse_us(value: str | float, field: str = "") -> float:
    """A duration in microseconds from ``30``, ``"30us"``, ``"0.03ms"`` or ``"1s"``."""
    return _parse(value, field, "a duration", _US_FORMS, _US_FACTORS, 1.0)


def parse_mj(value: str | float, field: str = "") -> float:
    """An energy in millijoules from ``2``, ``"2mJ"``, ``"500uJ"`` or ``"0.01J"``.

    >>> parse_mj("500uJ")
    0.5
    """
    return _parse(value, field, "an energy", _MJ_FORMS, _MJ_FACTORS, 1.0)


def parse_mw(value: str | float, field: str = "") -> float:
    """A power in milliwatts from ``120``, ``"120mW"``, ``"2.5W"`` or ``"30uW"``."""
    return _parse(value, field, "a power", _MW_FORMS, _MW_FACTORS, 1.0)


def parse_rate(value: str | float, field: str = "") -> float:
    """A per-second rate from ``"30M"`` (3e7), ``"1.2G"``, ``"500k"``, ``"3e7"`` or ``3e7``; prefixes are decimal."""
    return _parse(value, field, "a rate", _RATE_FORMS, _RATE_FACTORS, 1.0)


def parse_count(value: object, field: str = "", minimum: int = 1) -> int:
    """A whole number >= ``minimum`` (core counts, thread counts, channel multiples)."""
    if isinstance(value, bool) or not isinstance(value, int):
        # ValueError, not TypeError: callers treat every unusable input the same way.
        raise ValueError(f"{_prefix(field)}{value!r} is not a whole number ({_COUNT_FORMS})")  # noqa: TRY004
    if value < minimum:
        raise ValueError(f"{_prefix(field)}{value!r} is too small (must be >= {minimum})")
    return value


def format_bytes(n: float) -> str:
    """A size for tables: ``"512 B"``, ``"256.0 KiB"``, ``"1.50 MiB"``, ``"8.00 GiB"``.

    >>> format_bytes(262144)
    '256.0 KiB'
    """
    if n < _KIB:
        return f"{int(n)} B"
    if n < _KIB**2:
        return f"{n / _KIB:.1f} KiB"
    if n < _KIB**3:
        return f"{n / _KIB**2:.2f} MiB"
    return f"{n / _KIB**3:.2f} GiB"
