"""RAM regions in device profiles: parsed, validated with one-line errors, and used to place TFLM's arena parts."""

from __future__ import annotations

import pytest
import yaml

from edgekit.costmodel.placement import WHOLE_ARENA, place_arena
from edgekit.errors import BadInputError, DoesNotFitError
from edgekit.profiles import load_profile
from edgekit.ram_regions import NON_PERSISTENT, PERSISTENT, RamRegion, fastest_first

KIB = 1024
BOTH = (NON_PERSISTENT, PERSISTENT)


def _profile_with(tmp_path, ram_regions, name="board"):
    """The bundled stm32h743 profile with its ram_regions replaced (None: removed), written to tmp_path."""
    data = yaml.safe_load(load_profile("stm32h743").path.read_text())
    data["name"] = name
    if ram_regions is None:
        data.pop("ram_regions", None)
    else:
        data["ram_regions"] = ram_regions
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _regions(*items, source="test board"):
    return {"regions": list(items), "source": source}


def test_stm32h743_regions_match_the_reference_manual_sizes():
    profile = load_profile("stm32h743")
    sizes = {r.name: r.size_bytes // KIB for r in profile.ram_regions}
    assert sizes == {"dtcm": 128, "axi_sram": 512, "sram123": 128 + 128 + 32, "sram4": 64}
    assert sum(sizes.values()) * KIB <= profile.ram_bytes  # ITCM and backup SRAM are not data regions
    assert [r.name for r in fastest_first(profile.ram_regions)] == ["dtcm", "axi_sram", "sram123", "sram4"]
    assert all(r.section and r.budget_bytes <= r.size_bytes for r in profile.ram_regions)
    # the whole-profile RAM budget still fits the largest region, as before regions existed
    assert profile.budgets.ram_bytes <= max(r.budget_bytes for r in profile.ram_regions)


def test_profiles_without_regions_keep_one_ram_budget(tmp_path):
    assert load_profile("nrf52840").ram_regions == ()
    assert load_profile(_profile_with(tmp_path, None)).ram_regions == ()


def test_a_custom_region_list_loads_with_defaults(tmp_path):
    path = _profile_with(tmp_path, _regions(
        {"name": "tcm", "size_bytes": "16KB", "bandwidth_mb_s": "4G", "holds": ["persistent"], "section": ".tcm"},
        {"name": "sram", "size_bytes": "256KB", "budget_bytes": "200KB", "bandwidth_mb_s": 800}))
    tcm, sram = load_profile(path).ram_regions
    assert (tcm.size_bytes, tcm.budget_bytes, tcm.bandwidth_mb_s, tcm.holds) == (16 * KIB, 16 * KIB, 4e9, (PERSISTENT,))
    assert (sram.budget_bytes, sram.holds, sram.section) == (200 * KIB, BOTH, None)


@pytest.mark.parametrize(("regions", "field", "says"), [
    ([{"name": "a", "size_bytes": "1KB"}], "ram_regions.regions[0].bandwidth_mb_s", "missing"),
    ([{"name": "a", "size_bytes": "1XB", "bandwidth_mb_s": 1}], "ram_regions.regions[0].size_bytes", "not a size"),
    ([{"name": "a", "size_bytes": "1KB", "budget_bytes": "2KB", "bandwidth_mb_s": 1}],
     "ram_regions.regions[0].budget_bytes", "larger than the region's size_bytes"),
    ([{"name": "a", "size_bytes": "1KB", "bandwidth_mb_s": 1, "speed": 3}], "ram_regions.regions[0].speed",
     "unknown field"),
    ([{"name": "a", "size_bytes": "1KB", "bandwidth_mb_s": 1, "holds": ["weights"]}],
     "ram_regions.regions[0].holds", "'weights' is not one of"),
    ([{"name": "a", "size_bytes": "1KB", "bandwidth_mb_s": 1, "section": "dtcm bss"}],
     "ram_regions.regions[0].section", "not a linker section name"),
    ([{"name": "Fast-RAM", "size_bytes": "1KB", "bandwidth_mb_s": 1}], "ram_regions.regions[0].name", "lower-case"),
    ([{"name": "a", "size_bytes": "1KB", "bandwidth_mb_s": 1}, {"name": "a", "size_bytes": "2KB", "bandwidth_mb_s": 1}],
     "ram_regions.regions[1].name", "also used by regions[0]"),
    ([{"name": "a", "size_bytes": "1KB", "bandwidth_mb_s": 1, "holds": ["persistent"]}], "ram_regions.regions",
     "no region may hold TFLM's non_persistent"),
    ([], "ram_regions.regions", "non-empty list"),
])
def test_a_bad_region_is_a_one_line_error_naming_file_and_field(tmp_path, regions, field, says):
    path = _profile_with(tmp_path, _regions(*regions))
    with pytest.raises(BadInputError) as err:
        load_profile(path)
    message = str(err.value)
    assert message.split(": ")[0].endswith("board.yaml") and f"board.yaml: {field}: " in message, message
    assert says in message and "\n" not in message


def test_regions_need_a_source_like_every_section_with_numbers(tmp_path):
    path = _profile_with(tmp_path, {"regions": [{"name": "a", "size_bytes": "1KB", "bandwidth_mb_s": 1}]})
    with pytest.raises(BadInputError, match=r"ram_regions\.source: missing"):
        load_profile(path)


# ------------------------------------------------------------------------------------------ placement


def _region(name, kib, bandwidth, holds=BOTH, section=None, budget_kib=None):
    return RamRegion(name, kib * KIB, (budget_kib or kib) * KIB, bandwidth, holds, section)


def test_both_parts_in_the_fastest_region_that_holds_them_make_one_arena():
    regions = (_region("slow", 512, 100), _region("fast", 64, 1000, section=".fast"))
    placement = place_arena(30 * KIB, 4 * KIB, regions, single_arena_bytes=34 * KIB + 16)
    assert [(p.part, p.region, p.size_bytes, p.section) for p in placement.parts] == [
        (WHOLE_ARENA, "fast", 34 * KIB + 16, ".fast")]
    assert [(u.region, u.used_bytes, u.fits) for u in placement.regions] == [("fast", 34 * KIB + 16, True),
                                                                             ("slow", 0, True)]


def test_a_tiny_fast_region_keeps_the_persistent_part_and_the_activations_go_to_the_big_one():
    regions = (_region("dtcm", 8, 3840, section=".dtcm_bss"), _region("axi", 512, 1920, section=".axi_bss"))
    placement = place_arena(40 * KIB, 3 * KIB, regions)
    assert placement.split
    assert [(p.part, p.region) for p in placement.parts] == [(NON_PERSISTENT, "axi"), (PERSISTENT, "dtcm")]
    # the activations alone do not fit dtcm; the tail does not fit what is left of it either when larger
    too_big_tail = place_arena(40 * KIB, 9 * KIB, regions)
    assert [(p.part, p.region) for p in too_big_tail.parts] == [(WHOLE_ARENA, "axi")]


def test_holds_restricts_what_a_region_may_take():
    regions = (_region("tcm", 64, 4000, holds=(PERSISTENT,)), _region("sram", 256, 900))
    placement = place_arena(10 * KIB, 2 * KIB, regions)
    assert [(p.part, p.region) for p in placement.parts] == [(NON_PERSISTENT, "sram"), (PERSISTENT, "tcm")]


def test_a_part_that_fits_no_region_names_the_closest_region_and_the_overflow():
    regions = (_region("dtcm", 64, 3840, budget_kib=32), _region("axi", 128, 1920))
    with pytest.raises(DoesNotFitError) as err:
        place_arena(130 * KIB, 2 * KIB, regions, profile_name="stm32h743")
    message = str(err.value)
    assert "non-persistent part" in message and "region 'axi'" in message
    assert f"{130 * KIB - 128 * KIB:,} B over" in message and "stm32h743" in message
    with pytest.raises(DoesNotFitError, match=r"persistent part .* region 'dtcm', 32,768 B of its 32,768 B budget"):
        place_arena(128 * KIB, 40 * KIB, regions)
