"""Where TFLite Micro's arena parts go on a device with several RAM regions, and the RAM check per region (pure).

TFLM's arena has two parts (tflite-micro micro_allocator.h): the non-persistent head (planned activation
buffers, kernel scratch, temporaries while the model is prepared) and the persistent tail (allocator and
planner objects, tensor structs, per-op data). One buffer holds both (`MicroInterpreter(model, resolver,
arena, size)`), or two separate buffers do (`MicroAllocator::Create(persistent, persistent_size,
non_persistent, non_persistent_size)` passed to `MicroInterpreter(model, resolver, allocator)`).

`place_arena` puts the head, which every inference reads and writes, in the fastest region it fits, then the
tail in the fastest region with room left; when both land in the same region they stay one arena. A part that
fits no region raises DoesNotFitError (exit 3) naming the region that comes closest and the overflow.

    >>> from edgekit.ram_regions import RamRegion
    >>> fast = RamRegion("dtcm", 8192, 8192, 3840.0, ("non_persistent", "persistent"), ".dtcm_bss")
    >>> big = RamRegion("axi_sram", 524288, 524288, 1920.0, ("non_persistent", "persistent"), ".axisram_bss")
    >>> placement = place_arena(40_000, 3_000, (fast, big))
    >>> [(p.part, p.region) for p in placement.parts]
    [('non_persistent', 'axi_sram'), ('persistent', 'dtcm')]
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.errors import DoesNotFitError
from edgekit.ram_regions import NON_PERSISTENT, PERSISTENT, RamRegion, fastest_first
from edgekit.units import format_bytes

WHOLE_ARENA = "arena"
PART_LABELS = {NON_PERSISTENT: "non-persistent part (activations, scratch)",
               PERSISTENT: "persistent part (tensor structs, op data)", WHOLE_ARENA: "arena"}


@dataclass(frozen=True)
class PartPlacement:
    """One arena buffer: which part(s) it holds, its size and the region and linker section it goes to."""

    part: str              # NON_PERSISTENT, PERSISTENT or WHOLE_ARENA (both in one buffer)
    size_bytes: int
    region: str
    section: str | None    # None: the toolchain's default .bss


@dataclass(frozen=True)
class RegionUse:
    """The RAM check of one region: what the arena puts there against the region's budget."""

    region: str
    used_bytes: int
    budget_bytes: int
    size_bytes: int
    parts: tuple[str, ...]

    @property
    def fits(self) -> bool:
        return self.used_bytes <= self.budget_bytes


@dataclass(frozen=True)
class ArenaPlacement:
    parts: tuple[PartPlacement, ...]   # one buffer (WHOLE_ARENA) or two (non-persistent first)
    regions: tuple[RegionUse, ...]     # every region of the profile, fastest first

    @property
    def split(self) -> bool:
        return len(self.parts) > 1

    def note(self) -> str:
        """One line for the export / fit report."""
        where = "; ".join(f"{PART_LABELS[p.part]} {p.size_bytes:,} B in {p.region}"
                          + (f" ({p.section})" if p.section else " (default .bss)") for p in self.parts)
        used = ", ".join(f"{r.region} {format_bytes(r.used_bytes)} of {format_bytes(r.budget_bytes)}"
                         for r in self.regions if r.used_bytes)
        return f"RAM regions: {where}; per region: {used}"

    def to_dict(self) -> dict:
        return {"split": self.split,
                "parts": [{"part": p.part, "size_bytes": p.size_bytes, "region": p.region, "section": p.section}
                          for p in self.parts],
                "regions": [{"region": r.region, "used_bytes": r.used_bytes, "budget_bytes": r.budget_bytes,
                             "size_bytes": r.size_bytes, "parts": list(r.parts), "fits": r.fits}
                            for r in self.regions]}


def place_arena(non_persistent_bytes: int, persistent_bytes: int, regions, single_arena_bytes: int | None = None,
                profile_name: str = "the profile") -> ArenaPlacement:
    """Place TFLM's two arena parts (sizes with any margin already added) in `regions` (edgekit.ram_regions).

    single_arena_bytes: the size one buffer holding both needs (default: the sum); used when both parts
    land in the same region. Raises DoesNotFitError naming the closest region and the overflow.
    """
    ordered = fastest_first(regions)
    free = {r.name: r.budget_bytes for r in ordered}
    head = _first_fit(ordered, free, NON_PERSISTENT, non_persistent_bytes, profile_name)
    free[head.name] -= non_persistent_bytes
    tail = _first_fit(ordered, free, PERSISTENT, persistent_bytes, profile_name)
    whole = single_arena_bytes if single_arena_bytes is not None else non_persistent_bytes + persistent_bytes
    if tail.name == head.name and whole <= head.budget_bytes:
        parts = (PartPlacement(WHOLE_ARENA, whole, head.name, head.section),)
    else:
        parts = (PartPlacement(NON_PERSISTENT, non_persistent_bytes, head.name, head.section),
                 PartPlacement(PERSISTENT, persistent_bytes, tail.name, tail.section))
    uses = tuple(RegionUse(r.name, sum(p.size_bytes for p in parts if p.region == r.name), r.budget_bytes,
                           r.size_bytes, tuple(p.part for p in parts if p.region == r.name)) for r in ordered)
    return ArenaPlacement(parts, uses)


def _first_fit(ordered: list[RamRegion], free: dict[str, int], part: str, size: int, profile_name: str) -> RamRegion:
    allowed = [r for r in ordered if r.may_hold(part)]
    for region in allowed:
        if free[region.name] >= size:
            return region
    closest = max(allowed, key=lambda r: free[r.name])
    left = free[closest.name]
    taken = f" ({format_bytes(closest.budget_bytes - left)} of it already taken)" if left < closest.budget_bytes else ""
    raise DoesNotFitError(
        f"TFLM's {PART_LABELS[part]} needs {size:,} B but no RAM region of {profile_name} holds it: the largest "
        f"room is in region {closest.name!r}, {left:,} B of its {closest.budget_bytes:,} B budget{taken}, "
        f"{size - left:,} B over; shrink the model (a lower --max-ram) or raise that region's budget_bytes")


@dataclass(frozen=True)
class RegionCheck:
    """The RAM check per region of a predicted arena: its placement, or why no placement exists."""

    placement: ArenaPlacement | None
    problem: str = ""  # the DoesNotFitError message when a part fits no region

    @property
    def fits(self) -> bool:
        return self.placement is not None and all(u.fits for u in self.placement.regions)

    def note(self) -> str:
        return self.placement.note() if self.placement is not None else f"RAM regions: {self.problem}"

    def to_dict(self) -> dict:
        return {"fits": self.fits, "placement": self.placement.to_dict() if self.placement else None,
                "problem": self.problem or None}


def check_regions(analysis, profile, memory_opt: bool = True) -> RegionCheck | None:
    """`predicted_placement` that reports instead of raising (for inspect and check); None without regions."""
    try:
        placement = predicted_placement(analysis, profile, memory_opt)
    except DoesNotFitError as err:
        return RegionCheck(None, str(err))
    return None if placement is None else RegionCheck(placement)


def predicted_placement(analysis, profile, memory_opt: bool = True) -> ArenaPlacement | None:
    """The placement of the predicted int8 TFLM arena (edgekit.costmodel.predict), None without regions.

    Raises DoesNotFitError like `place_arena`.
    """
    if not getattr(profile, "ram_regions", ()) or analysis.tflm_arena is None:
        return None
    from edgekit.costmodel.predict import planned_arena_saving_bytes

    estimate = analysis.tflm_arena
    saving = planned_arena_saving_bytes(analysis) if memory_opt else 0
    head = max(0, estimate.arena_bytes - estimate.tail_bytes - saving)
    return place_arena(head, estimate.tail_bytes, profile.ram_regions, estimate.arena_bytes - saving, profile.name)
