"""RAM regions of a device: separate on-chip memories (TCM, AXI SRAM, PSRAM ...) with their own size and speed.

A profile may list them under ``ram_regions:`` (schema in ``device_profiles/README.md``); the MCU export then
places TFLite Micro's two arena parts, the non-persistent head (activations, kernel scratch) and the
persistent tail (tensor structs, per-op data), in the fastest region each fits (``edgekit.costmodel.placement``)
and the generated C sources put each array in the region's linker section. A profile without regions has
one RAM budget, as before. Pure: no TensorFlow.

    >>> from edgekit.profiles import load_profile
    >>> [(r.name, r.size_bytes // 1024) for r in load_profile("stm32h743").ram_regions][:2]
    [('dtcm', 128), ('axi_sram', 512)]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from edgekit.units import parse_bytes, parse_count, parse_rate

PERSISTENT = "persistent"            # TFLM's tail: allocator objects, tensor structs, op data
NON_PERSISTENT = "non_persistent"    # TFLM's head: planned activations, kernel scratch, prepare-time temporaries
ARENA_PARTS = (NON_PERSISTENT, PERSISTENT)
HOLDS_SHORTHAND = {"arena": ARENA_PARTS}  # `holds: [arena]`: either part (or one whole arena)
REGION_KEYS = ("name", "size_bytes", "budget_bytes", "bandwidth_mb_s", "wait_states", "holds", "section", "note")
_REQUIRED = ("name", "size_bytes", "bandwidth_mb_s")
_SECTION_NAME = re.compile(r"^\.?[A-Za-z_][A-Za-z0-9_.$]*$")
_REGION_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class RamRegion:
    """One contiguous RAM region a TFLM arena part may be placed in."""

    name: str                  # lower-case C-identifier-like: dtcm, axi_sram, psram
    size_bytes: int            # the region's size (datasheet)
    budget_bytes: int          # how much of it the model's arena may take (default: all of it)
    bandwidth_mb_s: float      # sustained data bandwidth (10^6 B/s): regions are tried fastest first
    holds: tuple[str, ...]     # ARENA_PARTS allowed here
    section: str | None        # linker output section the arrays go to (None: the toolchain's default .bss)
    wait_states: int | None = None

    def may_hold(self, part: str) -> bool:
        return part in self.holds


def fastest_first(regions) -> list[RamRegion]:
    """Regions by bandwidth, fastest first; ties by fewer wait states, then as listed."""
    indexed = list(enumerate(regions))
    indexed.sort(key=lambda item: (-item[1].bandwidth_mb_s, item[1].wait_states or 0, item[0]))
    return [region for _, region in indexed]


def parse_ram_regions(parser, raw: Any) -> tuple[RamRegion, ...]:
    """The regions of a profile's ``ram_regions`` section, () when absent. ``parser`` is the profile loader's
    validator (its fail / value / positive / text / provenance methods), so every error names the file and
    the dotted field. The section needs ``source:`` or ``estimate:`` like every section with numbers."""
    if raw is None:
        return ()
    where = "ram_regions"
    allowed = ("regions", "source", "estimate", "note")
    if not isinstance(raw, dict):
        raise parser.fail(where, "expected a mapping with `regions:` and `source:`/`estimate:`, got "
                                 f"{type(raw).__name__}")
    for key in raw:
        if key not in allowed:
            raise parser.fail(f"{where}.{key}", f"unknown field (allowed here: {', '.join(allowed)})")
    parser.provenance(raw, where)
    items = raw.get("regions")
    if not isinstance(items, list) or not items:
        raise parser.fail(f"{where}.regions", f"{items!r} must be a non-empty list of regions (name, size_bytes, "
                                              "bandwidth_mb_s, ...)")
    regions = tuple(_region(parser, item, f"{where}.regions[{i}]") for i, item in enumerate(items))
    _check_unique(parser, regions, where)
    for part in ARENA_PARTS:
        if not any(r.may_hold(part) for r in regions):
            raise parser.fail(f"{where}.regions", f"no region may hold TFLM's {part} arena part: add it to one "
                                                  "region's `holds:`")
    return regions


def _region(parser, item: Any, where: str) -> RamRegion:
    if not isinstance(item, dict):
        raise parser.fail(where, f"expected a mapping (name, size_bytes, bandwidth_mb_s ...), got {item!r}")
    for key in item:
        if key not in REGION_KEYS:
            raise parser.fail(f"{where}.{key}", f"unknown field (allowed here: {', '.join(REGION_KEYS)})")
    for key in _REQUIRED:
        if key not in item:
            raise parser.fail(f"{where}.{key}", "missing required field")
    name = parser.text(item["name"], f"{where}.name")
    if not _REGION_NAME.match(name):
        raise parser.fail(f"{where}.name", f"{name!r} must be lower-case letters, digits and '_', starting with a "
                                           "letter (it names C identifiers)")
    size = parser.positive(parse_bytes, item["size_bytes"], f"{where}.size_bytes")
    budget = parser.positive(parse_bytes, item.get("budget_bytes", size), f"{where}.budget_bytes")
    if budget > size:
        raise parser.fail(f"{where}.budget_bytes", f"{budget} bytes is larger than the region's size_bytes ({size})")
    bandwidth = parser.positive(parse_rate, item["bandwidth_mb_s"], f"{where}.bandwidth_mb_s")
    wait_states = (parser.value(lambda v, f: parse_count(v, f, minimum=0), item["wait_states"], f"{where}.wait_states")
                   if "wait_states" in item else None)
    if "note" in item:
        parser.text(item["note"], f"{where}.note")
    return RamRegion(name, size, budget, bandwidth, _holds(parser, item.get("holds", ["arena"]), f"{where}.holds"),
                     _section(parser, item.get("section"), f"{where}.section"), wait_states)


def _holds(parser, raw: Any, where: str) -> tuple[str, ...]:
    allowed = (*ARENA_PARTS, *HOLDS_SHORTHAND)
    if not isinstance(raw, list) or not raw:
        raise parser.fail(where, f"{raw!r} must be a non-empty list of {', '.join(allowed)}")
    parts: list[str] = []
    for value in raw:
        if value not in allowed:
            raise parser.fail(where, f"{value!r} is not one of {', '.join(allowed)}")
        parts += HOLDS_SHORTHAND.get(value, (value,))
    return tuple(p for p in ARENA_PARTS if p in parts)


def _section(parser, raw: Any, where: str) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not _SECTION_NAME.match(raw):
        raise parser.fail(where, f"{raw!r} is not a linker section name (letters, digits, '_', '.', e.g. .dtcm_bss)")
    return raw


def _check_unique(parser, regions: tuple[RamRegion, ...], where: str) -> None:
    for field in ("name", "section"):
        seen: dict[str, int] = {}
        for i, region in enumerate(regions):
            value = getattr(region, field)
            if value is None:
                continue
            if value in seen:
                raise parser.fail(f"{where}.regions[{i}].{field}", f"{value!r} is also used by regions[{seen[value]}]")
            seen[value] = i
