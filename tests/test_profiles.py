"""Device profiles: bundled files load and agree with the measurements they cite; every mistake is reported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edgekit import profiles
from edgekit.budgets import Budgets, parse_budget_overrides
from edgekit.errors import BadInputError
from edgekit.profiles import DEFAULT_DEVICE, SOURCED_SECTIONS, list_profiles, load_profile, profile_names

REPO = Path(__file__).resolve().parent.parent
BUNDLED = REPO / "device_profiles"
REQUIRED_NAMES = {
    "pixel7", "pixel4a", "raspberry-pi-4", "stm32h743", "stm32l4r5", "nrf52840", "esp32-s3", "rp2040", "host",
}
KIB, MIB, GIB = 1024, 1024**2, 1024**3


@pytest.fixture(autouse=True)
def _bundled_profiles(monkeypatch):
    monkeypatch.delenv(profiles.PROFILES_DIR_ENV, raising=False)


# ------------------------------------------------------------------------------------------ bundled files


def test_bundled_profiles_are_exactly_the_required_set():
    assert set(profile_names()) == REQUIRED_NAMES
    assert DEFAULT_DEVICE in REQUIRED_NAMES


@pytest.mark.parametrize("name", sorted(REQUIRED_NAMES))
def test_bundled_profile_loads_with_sources_and_consistent_budgets(name):
    profile = load_profile(name)
    assert profile.name == name == profile.path.stem
    assert set(profile.sources) == set(SOURCED_SECTIONS)
    for section in SOURCED_SECTIONS:
        assert len(profile.sources[section]) > 30, f"{name}: {section} source text is too thin"
    assert set(profile.estimated_sections) <= set(SOURCED_SECTIONS)
    assert profile.precision_preferred in profile.precisions_supported
    for key, budget in profile.budgets.as_dict().items():
        assert budget is None or budget > 0, key
    if profile.budgets.ram_bytes is not None:
        assert profile.budgets.ram_bytes <= profile.ram_bytes
    if profile.budgets.flash_bytes is not None:
        assert profile.budgets.flash_bytes <= profile.flash_bytes
    for precision in profile.precisions_supported:
        for op_class in profiles.MAC_OP_CLASSES:
            assert profile.cost_model.macs_per_second(op_class, precision) > 0
        for op_class in profiles.ELEMENT_OP_CLASSES:
            assert profile.cost_model.ops_per_second(op_class, precision) > 0
    json.dumps(profile.as_dict())  # the CLI's --json output must serialise


def test_mcus_use_tflm_and_leave_half_the_sram_to_the_application():
    for profile in list_profiles():
        if profile.kind == "mcu":
            assert profile.runtime == "tflm"
            assert "float16" not in profile.precisions_supported
            assert profile.budgets.ram_bytes <= profile.ram_bytes // 2 + 1
        else:
            assert profile.runtime == "litert"


@pytest.mark.parametrize(
    ("name", "cores", "clock_mhz", "ram_bytes", "flash_bytes"),
    [
        ("pixel7", 8, 2850, 8 * GIB, 128 * GIB),
        ("pixel4a", 8, 2200, 6 * GIB, 128 * GIB),
        ("raspberry-pi-4", 4, 1500, 4 * GIB, 32 * GIB),
        ("stm32h743", 1, 480, 1 * MIB, 2 * MIB),
        ("stm32l4r5", 1, 120, 640 * KIB, 2 * MIB),
        ("nrf52840", 1, 64, 256 * KIB, 1 * MIB),
        ("esp32-s3", 2, 240, 512 * KIB, 8 * MIB),
        ("rp2040", 2, 133, 264 * KIB, 2 * MIB),
        ("host", 2, 2600, 24 * GIB, 252 * GIB),
    ],
)
def test_datasheet_facts(name, cores, clock_mhz, ram_bytes, flash_bytes):
    profile = load_profile(name)
    assert (profile.cpu.cores, profile.cpu.clock_mhz) == (cores, clock_mhz)
    assert (profile.ram_bytes, profile.flash_bytes) == (ram_bytes, flash_bytes)


def _latency_ms(profile, precision, **macs_by_class):
    seconds = sum(macs / profile.cost_model.macs_per_second(cls, precision) for cls, macs in macs_by_class.items())
    return seconds * 1e3


@pytest.mark.parametrize(
    ("name", "precision", "macs", "published_ms"),
    [
        # XNNPACK README, Raspberry Pi 4, MobileNet v1 1.0 224 (569 M MACs, 17.4 M depthwise): 75 ms.
        ("raspberry-pi-4", "float32", {"conv": 551.4e6, "depthwise": 17.4e6}, 75.0),
    ],
)
def test_cost_model_reproduces_the_cited_measurements(name, precision, macs, published_ms):
    # The rates were derived from these measurements; this guards against an edit drifting away from them.
    # MCU profiles are checked against their published TFLM figures with the full latency model in
    # tests/test_latency.py (their rates include per-op costs a MACs / rate formula leaves out).
    assert _latency_ms(load_profile(name), precision, **macs) == pytest.approx(published_ms, rel=0.15)


def test_mcu_int8_conv_rates_follow_core_and_clock():
    rate = {p.name: p.cost_model.macs_per_second("conv", "int8") for p in list_profiles() if p.kind == "mcu"}
    assert rate["stm32h743"] > rate["stm32l4r5"] > rate["nrf52840"]
    assert rate["esp32-s3"] > rate["stm32l4r5"]  # 240 MHz with ESP-NN vs a 120 MHz Cortex-M4F
    assert rate["rp2040"] < rate["stm32l4r5"]  # no SIMD: below the 120 MHz Cortex-M4F


# ---------------------------------------------------------------------------------------- user profiles


def _valid_profile() -> dict:
    return yaml.safe_load((BUNDLED / "stm32l4r5.yaml").read_text())


def _write(tmp_path: Path, data, filename: str = "board.yaml") -> Path:
    path = tmp_path / filename
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def test_user_profile_by_path(tmp_path):
    data = _valid_profile()
    data["name"] = "my-board"
    data["budgets"]["ram_bytes"] = "200KB"
    path = _write(tmp_path, data, "my_board.yaml")
    profile = load_profile(str(path))
    assert profile.name == "my-board"
    assert profile.budgets.ram_bytes == 200 * KIB
    assert profile.path == path


def test_user_profile_by_relative_path_reports_the_path_as_typed(tmp_path, monkeypatch):
    data = _valid_profile()
    data["memory"]["ram_bytes"] = "lots"
    (tmp_path / "boards").mkdir()
    _write(tmp_path / "boards", data, "x.yml")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BadInputError) as info:
        load_profile("boards/x.yml")
    assert str(info.value).startswith("boards/x.yml: memory.ram_bytes: 'lots' is not a size")


def test_profiles_dir_override(tmp_path, monkeypatch):
    data = _valid_profile()
    data["name"] = "lab-board"
    _write(tmp_path, data, "lab-board.yaml")
    monkeypatch.setenv(profiles.PROFILES_DIR_ENV, str(tmp_path))
    assert profile_names() == ["lab-board"]
    assert load_profile("lab-board").cpu.clock_mhz == 120


def test_name_must_match_file_name_when_loaded_by_name(tmp_path, monkeypatch):
    _write(tmp_path, _valid_profile(), "other.yaml")  # name: stm32l4r5
    monkeypatch.setenv(profiles.PROFILES_DIR_ENV, str(tmp_path))
    with pytest.raises(BadInputError, match=r"other\.yaml: name: 'stm32l4r5' must match the file name 'other'"):
        load_profile("other")


def test_unknown_device_lists_known_names():
    with pytest.raises(BadInputError) as info:
        load_profile("pixel9000")
    message = str(info.value)
    assert "unknown device 'pixel9000'" in message
    for name in REQUIRED_NAMES:
        assert name in message


def test_missing_file():
    with pytest.raises(BadInputError, match=r"nowhere/board\.yaml: file not found"):
        load_profile("nowhere/board.yaml")


# ------------------------------------------------------------------------------------------- validation


def _set(data: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        data = data[key]
    data[last] = value


def _delete(data: dict, dotted: str) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        data = data[key]
    del data[last]


@pytest.mark.parametrize(
    ("mutate", "field", "problem"),
    [
        # unknown keys, at every level
        (lambda d: _set(d, "colour", "red"), "colour", "unknown field"),
        (lambda d: _set(d, "cpu.turbo", True), "cpu.turbo", "unknown field"),
        (lambda d: _set(d, "cost_model.macs_per_s.attention", {"int8": "1M"}), "cost_model.macs_per_s.attention",
         "unknown field"),
        # missing required fields
        (lambda d: _delete(d, "kind"), "kind", "missing required field"),
        (lambda d: _delete(d, "memory.ram_bytes"), "memory.ram_bytes", "missing required field"),
        (lambda d: _delete(d, "budgets.energy_mj"), "budgets.energy_mj", "missing required field"),
        (lambda d: _delete(d, "cost_model.macs_per_s.dense"), "cost_model.macs_per_s.dense",
         "missing required field"),
        (lambda d: _delete(d, "cost_model.ops_per_s.pooling.float32"), "cost_model.ops_per_s.pooling.float32",
         "every supported precision needs a rate"),
        # bad units
        (lambda d: _set(d, "budgets.ram_bytes", "12XB"), "budgets.ram_bytes",
         "'12XB' is not a size (use 256KB, 1.5MB, 2MiB or a byte count)"),
        (lambda d: _set(d, "budgets.latency_ms", "5 parsecs"), "budgets.latency_ms", "is not a duration"),
        (lambda d: _set(d, "power.active_mw", "3 horsepower"), "power.active_mw", "is not a power"),
        (lambda d: _set(d, "cost_model.macs_per_s.conv.int8", "fast"), "cost_model.macs_per_s.conv.int8",
         "is not a rate"),
        # negative and zero values
        (lambda d: _set(d, "power.active_mw", -3), "power.active_mw", "negative"),
        (lambda d: _set(d, "memory.flash_bytes", "-1MB"), "memory.flash_bytes", "negative"),
        (lambda d: _set(d, "budgets.latency_ms", 0), "budgets.latency_ms", "must be greater than zero"),
        (lambda d: _set(d, "cpu.cores", 0), "cpu.cores", "too small"),
        # bad enums
        (lambda d: _set(d, "kind", "toaster"), "kind", "'toaster' is not one of phone, sbc, mcu, host"),
        (lambda d: _set(d, "runtime", "onnx"), "runtime", "'onnx' is not one of litert, tflm"),
        (lambda d: _set(d, "precisions.supported", ["int8", "int3"]), "precisions.supported", "'int3' is not one of"),
        (lambda d: _set(d, "precisions.preferred", "float16"), "precisions.preferred", "not in precisions.supported"),
        (lambda d: _set(d, "cost_model.macs_per_s.conv.int4", "1M"), "cost_model.macs_per_s.conv.int4",
         "'int4' is not one of"),
        (lambda d: _set(d, "precisions.supported", ["int8", "float16", "float32"]), "precisions.supported",
         "float16 is not available with runtime tflm"),
        # numeric sections without provenance
        (lambda d: [_delete(d, "cost_model.source"), _delete(d, "cost_model.estimate")], "cost_model.source",
         "every section with numbers needs `source:`"),
        (lambda d: _delete(d, "memory.source"), "memory.source", "every section with numbers needs `source:`"),
        (lambda d: _set(d, "cpu.source", "   "), "cpu.source", "must be a non-empty text"),
        # cross-field checks
        (lambda d: _set(d, "budgets.ram_bytes", "1MB"), "budgets.ram_bytes", "larger than memory.ram_bytes"),
        (lambda d: _set(d, "cpu.threads", 2), "cpu.threads", "2 threads but only 1 cores"),
        (lambda d: _set(d, "name", "My Board"), "name", "lower-case"),
        (lambda d: _set(d, "budgets", [1, 2]), "budgets", "expected a mapping of fields"),
    ],
)
def test_each_mistake_names_the_file_and_the_dotted_field(tmp_path, mutate, field, problem):
    data = _valid_profile()
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(BadInputError) as info:
        load_profile(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}: {field}: "), message
    assert problem in message
    assert "\n" not in message
    assert info.value.exit_code == 2


def test_yaml_syntax_error_names_the_file_and_line(tmp_path):
    path = _write(tmp_path, "name: broken\nkind: mcu\ncpu: [unclosed\n")
    with pytest.raises(BadInputError) as info:
        load_profile(str(path))
    assert str(info.value).startswith(f"{path}: YAML syntax error at line ")


def test_duplicate_keys_are_rejected(tmp_path):
    text = (BUNDLED / "stm32l4r5.yaml").read_text() + "\nkind: phone\n"
    path = _write(tmp_path, text)
    with pytest.raises(BadInputError, match=r"YAML syntax error at line \d+.*duplicate key 'kind'"):
        load_profile(str(path))


def test_top_level_must_be_a_mapping(tmp_path):
    path = _write(tmp_path, "- just\n- a list\n")
    with pytest.raises(BadInputError, match=r"\(top level\): expected a mapping of fields, got list"):
        load_profile(str(path))


def test_null_budget_means_no_budget_and_optional_fields_default(tmp_path):
    data = _valid_profile()
    data["budgets"]["energy_mj"] = None
    del data["channel_multiple"]
    del data["cpu"]["threads"]
    profile = load_profile(str(_write(tmp_path, data)))
    assert profile.budgets.energy_mj is None
    assert profile.channel_multiple == 1
    assert profile.cpu.threads == 1


def test_estimate_only_sections_are_flagged(tmp_path):
    data = _valid_profile()
    del data["power"]["source"]
    profile = load_profile(str(_write(tmp_path, data)))
    assert "power" in profile.estimated_sections
    assert "memory" not in profile.estimated_sections
    assert profile.sources["power"].startswith("estimate: ")


# ----------------------------------------------------------------------------------------- budget overrides


def test_overrides_replace_only_what_is_given():
    budgets = Budgets(flash_bytes=1 * MIB, ram_bytes=512 * KIB, latency_ms=100.0, energy_mj=30.0)
    tighter = budgets.with_overrides(**parse_budget_overrides(max_ram="96KB", max_latency_ms="0.05s"))
    assert tighter == Budgets(flash_bytes=1 * MIB, ram_bytes=96 * KIB, latency_ms=50.0, energy_mj=30.0)
    assert budgets.with_overrides(ram_bytes=None, energy_mj=None) == budgets
    assert budgets.with_overrides() == budgets


def test_parse_budget_overrides_returns_given_options_only():
    assert parse_budget_overrides() == {}
    assert parse_budget_overrides(max_flash="1.5MB", max_energy_mj="500uJ") == {
        "flash_bytes": 1_572_864, "energy_mj": 0.5,
    }
    assert parse_budget_overrides(max_ram=4096, max_latency_ms=20) == {"ram_bytes": 4096, "latency_ms": 20.0}


@pytest.mark.parametrize(
    ("kwargs", "expected_start"),
    [
        ({"max_ram": "12XB"}, "--max-ram: '12XB' is not a size (use 256KB"),
        ({"max_flash": "-1MB"}, "--max-flash: '-1MB' is negative"),
        ({"max_latency_ms": "soon"}, "--max-latency-ms: 'soon' is not a duration"),
        ({"max_energy_mj": "0"}, "--max-energy-mj: '0' must be greater than zero"),
    ],
)
def test_parse_budget_overrides_errors_name_the_option(kwargs, expected_start):
    with pytest.raises(BadInputError) as info:
        parse_budget_overrides(**kwargs)
    assert str(info.value).startswith(expected_start)


def test_budgets_as_dict_keys():
    budgets = load_profile(DEFAULT_DEVICE).budgets
    assert list(budgets.as_dict()) == ["flash_bytes", "ram_bytes", "latency_ms", "energy_mj"]
    assert budgets.as_dict()["ram_bytes"] == 512 * KIB


# ---------------------------------------------------------------------------------------------- hygiene


def test_importing_profiles_does_not_import_tensorflow():
    code = (
        "import sys, edgekit.profiles, edgekit.units\n"
        "edgekit.profiles.list_profiles()\n"
        "print(sorted(m for m in ('tensorflow', 'tf_keras', 'keras') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def test_docstring_examples():
    import doctest

    assert doctest.testmod(profiles).failed == 0
