"""Unit parsing and formatting: every accepted form with its exact value, every rejected form."""

from __future__ import annotations

import doctest
import math

import pytest

from edgekit import units
from edgekit.units import (
    format_bytes,
    parse_bytes,
    parse_count,
    parse_mj,
    parse_ms,
    parse_mw,
    parse_rate,
    parse_us,
)

KIB, MIB, GIB = 1024, 1024**2, 1024**3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("256KB", 256 * KIB),
        ("1.5MB", 1_572_864),
        ("2MiB", 2 * MIB),
        ("512", 512),
        (1024, 1024),
        (1024.0, 1024),
        ("1 GB", GIB),
        ("64kB", 64 * KIB),
        ("64 kib", 64 * KIB),
        ("512B", 512),
        ("256K", 256 * KIB),
        ("8G", 8 * GIB),
        ("2TB", 2 * 1024**4),
        ("0", 0),
        (" 3 MB ", 3 * MIB),
        ("1.1MB", 1_153_434),  # 1153433.6 rounded to the nearest byte
        ("1e3", 1000),
    ],
)
def test_parse_bytes_accepts(text, expected):
    assert parse_bytes(text) == expected


def test_nrf52840_datasheet_kb_is_binary():
    # The convention the module documents: "256 KB RAM" in an MCU datasheet is 262144 bytes.
    assert parse_bytes("256 KB") == 262_144 == parse_bytes("256KiB")


@pytest.mark.parametrize(
    "bad", ["12XB", "abc", "", "KB", "1.5.2MB", "nan", "inf", "1,5MB", "10 bytes", None, True, [], float("nan")]
)
def test_parse_bytes_rejects_with_field_and_accepted_forms(bad):
    with pytest.raises(ValueError) as info:
        parse_bytes(bad, "budgets.ram_bytes")
    message = str(info.value)
    assert message.startswith("budgets.ram_bytes: ")
    assert "use 256KB, 1.5MB, 2MiB or a byte count" in message


@pytest.mark.parametrize("bad", ["-5KB", -1, "-0.5MB", -1.0])
def test_parse_bytes_rejects_negative(bad):
    with pytest.raises(ValueError, match=r"^memory\.flash_bytes: .*negative"):
        parse_bytes(bad, "memory.flash_bytes")


def test_parse_bytes_error_message_is_exact():
    with pytest.raises(ValueError) as info:
        parse_bytes("12XB", "budgets.ram_bytes")
    assert str(info.value) == "budgets.ram_bytes: '12XB' is not a size (use 256KB, 1.5MB, 2MiB or a byte count)"


def test_error_without_field_has_no_prefix():
    with pytest.raises(ValueError) as info:
        parse_bytes("12XB")
    assert str(info.value).startswith("'12XB' is not a size")


@pytest.mark.parametrize(
    ("text", "expected"),
    [(20, 20.0), ("20", 20.0), ("20ms", 20.0), ("0.5s", 500.0), ("500us", 0.5), ("250µs", 0.25), ("1.5 s", 1500.0)],
)
def test_parse_ms(text, expected):
    assert parse_ms(text) == pytest.approx(expected)


@pytest.mark.parametrize(("text", "expected"), [(30, 30.0), ("30us", 30.0), ("0.03ms", 30.0), ("1s", 1e6)])
def test_parse_us(text, expected):
    assert parse_us(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "expected"), [(2, 2.0), ("2mJ", 2.0), ("500uJ", 0.5), ("0.01J", 10.0), ("3 mj", 3.0)]
)
def test_parse_mj(text, expected):
    assert parse_mj(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "expected"), [(120, 120.0), ("120mW", 120.0), ("2.5W", 2500.0), ("30uW", 0.03)]
)
def test_parse_mw(text, expected):
    assert parse_mw(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30M", 3e7), ("1.2G", 1.2e9), ("500k", 5e5), ("3e7", 3e7), (3e7, 3e7), ("8.6M", 8.6e6), (480, 480.0)],
)
def test_parse_rate_uses_decimal_prefixes(text, expected):
    assert parse_rate(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("parser", "bad", "forms"),
    [
        (parse_ms, "20min", "use 20, 20ms, 0.5s or 500us"),
        (parse_ms, "fast", "use 20, 20ms, 0.5s or 500us"),
        (parse_ms, None, "use 20, 20ms, 0.5s or 500us"),
        (parse_mj, "2kWh", "use 2, 2mJ, 500uJ or 0.01J"),
        (parse_mj, "lots", "use 2, 2mJ, 500uJ or 0.01J"),
        (parse_us, "3 weeks", "use 30, 30us, 0.03ms or 1s"),
        (parse_mw, "5hp", "use 120, 120mW, 2.5W or 30uW"),
        (parse_rate, "30MB/s", "use 30M, 1.2G, 500k, 3e7 or a plain number"),
    ],
)
def test_other_parsers_reject_with_field_and_forms(parser, bad, forms):
    with pytest.raises(ValueError) as info:
        parser(bad, "--some-option")
    assert str(info.value).startswith("--some-option: ")
    assert forms in str(info.value)


@pytest.mark.parametrize("parser", [parse_ms, parse_mj, parse_us, parse_mw, parse_rate])
def test_other_parsers_reject_negative(parser):
    with pytest.raises(ValueError, match=r"^x\.y: '-1' is negative"):
        parser("-1", "x.y")


def test_parse_count():
    assert parse_count(4, "cpu.cores") == 4
    assert parse_count(0, "cost", minimum=0) == 0
    for bad in (0, -2):
        with pytest.raises(ValueError, match=r"^cpu\.cores: .* too small"):
            parse_count(bad, "cpu.cores")
    for bad in (1.5, "4", True, None):
        with pytest.raises(ValueError, match=r"^cpu\.cores: .* not a whole number"):
            parse_count(bad, "cpu.cores")


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (512, "512 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (262_144, "256.0 KiB"),
        (1_572_864, "1.50 MiB"),
        (8 * GIB, "8.00 GiB"),
    ],
)
def test_format_bytes(n, text):
    assert format_bytes(n) == text


@pytest.mark.parametrize("n", [1, 700, 5000, 262_144, 3_000_000, 5 * GIB + 12345])
def test_format_then_parse_round_trips_within_display_precision(n):
    back = parse_bytes(format_bytes(n).replace(" ", ""))
    assert math.isclose(back, n, rel_tol=0.01)


def test_docstring_examples():
    assert doctest.testmod(units).failed == 0
