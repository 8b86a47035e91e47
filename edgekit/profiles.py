"""Device profiles: what a target device offers, what share of it the model may use, how fast it runs ops.

A profile is one YAML file (schema in ``device_profiles/README.md``). ``load_profile("nrf52840")`` reads a
bundled one, ``load_profile("boards/my_board.yaml")`` a user's own. Loading validates every field and turns
each problem into a one-line :class:`edgekit.errors.BadInputError` naming the file and the dotted field::

    device_profiles/x.yaml: budgets.ram_bytes: '12XB' is not a size (use 256KB, 1.5MB, 2MiB or a byte count)

No TensorFlow here: ``edgekit devices`` lists profiles without importing it.

>>> profile = load_profile("nrf52840")
>>> profile.ram_bytes, profile.budgets.ram_bytes
(262144, 131072)
>>> from edgekit.budgets import resolve_budgets
>>> tighter = resolve_budgets(profile, max_ram="96KB")
>>> tighter.ram_bytes, tighter.flash_bytes == profile.budgets.flash_bytes
(98304, True)
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from edgekit.budgets import Budgets
from edgekit.errors import BadInputError
from edgekit.precisions import DEVICE_PRECISIONS
from edgekit.ram_regions import RamRegion, parse_ram_regions
from edgekit.units import (
    parse_bytes,
    parse_count,
    parse_mj,
    parse_ms,
    parse_mw,
    parse_rate,
    parse_us,
)

DEFAULT_DEVICE = "stm32h743"
PROFILES_DIR_ENV = "EDGEKIT_PROFILES_DIR"

KINDS = ("phone", "sbc", "mcu", "host")
RUNTIMES = ("litert", "tflm")
MAC_OP_CLASSES = ("conv", "depthwise", "dense")
ELEMENT_OP_CLASSES = ("pooling", "elementwise")
# Sections holding numbers; each must say where its numbers come from.
SOURCED_SECTIONS = ("cpu", "memory", "budgets", "power", "cost_model")

_PROVENANCE_KEYS = ("source", "estimate", "note")
_TOP_KEYS = ("name", "kind", "runtime", "description", "channel_multiple", "precisions") + SOURCED_SECTIONS + (
    "ram_regions",)
_SECTION_KEYS = {
    "cpu": ("arch", "cores", "clock_mhz", "threads", "simd") + _PROVENANCE_KEYS,
    "memory": ("ram_bytes", "flash_bytes") + _PROVENANCE_KEYS,
    "precisions": ("supported", "preferred"),
    "budgets": ("flash_bytes", "ram_bytes", "latency_ms", "energy_mj") + _PROVENANCE_KEYS,
    "power": ("active_mw", "idle_mw") + _PROVENANCE_KEYS,
    "cost_model": (
        "per_op_overhead_us", "memory_bandwidth_mb_s", "macs_per_s", "ops_per_s", "energy_pj_per_mac",
        "energy_pj_per_byte", "runtime_overhead_ram_bytes", "per_inference_overhead_us",
    ) + _PROVENANCE_KEYS,
}
_OPTIONAL_KEYS = {"channel_multiple", "ram_regions", "threads", "simd", "energy_pj_per_mac", "energy_pj_per_byte",
                  "per_inference_overhead_us"}


@dataclass(frozen=True)
class CpuSpec:
    arch: str
    cores: int
    clock_mhz: float
    threads: int  # threads the runtime uses; the cost-model rates assume this many
    simd: str


@dataclass(frozen=True)
class PowerSpec:
    active_mw: float  # while running inference
    idle_mw: float  # in the state the device waits in between inferences


@dataclass(frozen=True)
class CostModelParams:
    """Inputs of the latency/energy model: a roofline per op class x precision plus fixed costs."""

    per_op_overhead_us: float
    memory_bandwidth_mb_s: float  # decimal MB/s (10^6 bytes), as bandwidths are quoted
    macs_per_s: Mapping[str, Mapping[str, float]]  # op class (conv, depthwise, dense) -> precision -> MAC/s
    ops_per_s: Mapping[str, Mapping[str, float]]  # op class (pooling, elementwise) -> precision -> elem ops/s
    runtime_overhead_ram_bytes: int  # RAM the runtime needs beyond the activation arena
    energy_pj_per_mac: float | None = None  # when absent, energy = power.active_mw x latency
    energy_pj_per_byte: float | None = None
    per_inference_overhead_us: float = 0.0  # fixed cost of one invoke (interpreter entry, delegate dispatch)

    def macs_per_second(self, op_class: str, precision: str) -> float:
        return _rate(self.macs_per_s, "macs_per_s", op_class, precision)

    def ops_per_second(self, op_class: str, precision: str) -> float:
        return _rate(self.ops_per_s, "ops_per_s", op_class, precision)


def _rate(table: Mapping[str, Mapping[str, float]], name: str, op_class: str, precision: str) -> float:
    if op_class not in table:
        raise ValueError(f"no {name} entry for op class {op_class!r} (have {', '.join(table)})")
    if precision not in table[op_class]:
        raise ValueError(f"no {name}.{op_class} rate for precision {precision!r} (have {', '.join(table[op_class])})")
    return table[op_class][precision]


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    kind: str  # phone | sbc | mcu | host
    runtime: str  # litert | tflm
    description: str
    cpu: CpuSpec
    ram_bytes: int
    flash_bytes: int  # program flash on MCUs, storage on phones / boards
    precisions_supported: tuple[str, ...]
    precision_preferred: str
    budgets: Budgets
    power: PowerSpec
    cost_model: CostModelParams
    channel_multiple: int  # SIMD-friendly channel rounding for the pruner
    sources: Mapping[str, str]  # section -> where its numbers come from
    estimated_sections: tuple[str, ...]  # sections whose numbers are (partly) derived estimates
    path: Path
    ram_regions: tuple[RamRegion, ...] = ()  # edgekit.ram_regions; () = one RAM budget

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able values of every field (for reports)."""
        return _plain(self)

    def summary_dict(self) -> dict[str, Any]:
        """The ``edgekit devices --json`` entry: name, kind, runtime, memory, preferred precision, budgets."""
        return {"name": self.name, "kind": self.kind, "runtime": self.runtime, "ram_bytes": self.ram_bytes,
                "flash_bytes": self.flash_bytes, "precision_preferred": self.precision_preferred,
                "budgets": self.budgets.as_dict(), "path": str(self.path)}


def _plain(value: Any) -> Any:
    """Dataclasses, mappings, tuples and paths as dicts, lists and strings."""
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    return str(value) if isinstance(value, Path) else value


# ----------------------------------------------------------------------------------------------- loading


def profiles_dir() -> Path:
    """The bundled profiles directory, or ``$EDGEKIT_PROFILES_DIR`` when set."""
    override = os.environ.get(PROFILES_DIR_ENV)
    return Path(override) if override else Path(__file__).resolve().parent.parent / "device_profiles"


def profile_names() -> list[str]:
    directory = profiles_dir()
    if not directory.is_dir():
        raise BadInputError(f"{directory}: device profile directory not found (check ${PROFILES_DIR_ENV})")
    return sorted(p.stem for p in directory.glob("*.yaml"))


def list_profiles() -> list[DeviceProfile]:
    """Every profile in :func:`profiles_dir`, sorted by name."""
    return [load_profile(name) for name in profile_names()]


def load_profile(name_or_path: str | os.PathLike[str]) -> DeviceProfile:
    """Load a bundled profile by name (``"pixel7"``) or a user's profile by path (``"boards/x.yaml"``)."""
    text = str(name_or_path)
    as_path = Path(text).expanduser()
    if text.endswith((".yaml", ".yml")) or "/" in text or os.sep in text or as_path.is_file():
        return _load_file(as_path, expected_name=None)
    names = profile_names()
    if text.lower() not in names:
        raise BadInputError(
            f"unknown device {text!r}; known devices: {', '.join(names)} "
            "(or pass the path of your own .yaml profile, see device_profiles/README.md)"
        )
    return _load_file(profiles_dir() / f"{text.lower()}.yaml", expected_name=text.lower())


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys instead of silently keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _label(path: Path) -> str:
    """The path as a user would recognise it: relative to the working directory when inside it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)
    return str(path) if relative.startswith("..") else relative


def _load_file(path: Path, expected_name: str | None) -> DeviceProfile:
    label = _label(path)
    if not os.path.lexists(path):
        raise BadInputError(f"{label}: file not found (give a profile name or the path of a .yaml profile)")
    from edgekit.model_io.limits import read_yaml_text

    try:  # size, nesting, alias expansion and number lengths are checked before anything is built
        data = yaml.load(read_yaml_text(path, label), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise BadInputError(f"{label}: YAML syntax error{where}: {problem}") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadInputError(f"{label}: cannot read the file ({str(exc)[:120]})") from None
    profile = _Parser(label, path).profile(data)
    if expected_name is not None and profile.name != expected_name:
        raise BadInputError(f"{label}: name: {profile.name!r} must match the file name {expected_name!r}")
    return profile


# ------------------------------------------------------------------------------------------- validation


class _Parser:
    """Validates the parsed YAML of one profile; every failure names the file and the dotted field."""

    def __init__(self, label: str, path: Path):
        self.label = label
        self.path = path

    def fail(self, field: str, message: str) -> BadInputError:
        return BadInputError(f"{self.label}: {field}: {message}")

    def mapping(self, data: Any, where: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        """Check ``data`` is a mapping with only ``allowed`` keys and every non-optional one present."""
        if not isinstance(data, dict):
            raise self.fail(where or "(top level)", f"expected a mapping of fields, got {type(data).__name__}")
        prefix = f"{where}." if where else ""
        for key in data:
            if key not in allowed:
                raise self.fail(f"{prefix}{key}", f"unknown field (allowed here: {', '.join(allowed)})")
        for key in allowed:
            if key not in data and key not in _OPTIONAL_KEYS and key not in _PROVENANCE_KEYS:
                raise self.fail(f"{prefix}{key}", "missing required field")
        return data

    def value(self, parser: Callable[[Any, str], Any], raw: Any, field: str, *, nullable: bool = False) -> Any:
        if raw is None and nullable:
            return None
        try:
            return parser(raw, field)
        except ValueError as exc:
            raise BadInputError(f"{self.label}: {exc}") from None

    def positive(self, parser: Callable[[Any, str], Any], raw: Any, field: str, *, nullable: bool = False) -> Any:
        parsed = self.value(parser, raw, field, nullable=nullable)
        if parsed is not None and parsed <= 0:
            raise self.fail(field, f"{raw!r} must be greater than zero")
        return parsed

    def text(self, raw: Any, field: str) -> str:
        if not isinstance(raw, str) or not raw.strip():
            raise self.fail(field, f"{raw!r} must be a non-empty text")
        return " ".join(raw.split())

    def choice(self, raw: Any, field: str, allowed: tuple[str, ...]) -> str:
        if raw not in allowed:
            raise self.fail(field, f"{raw!r} is not one of {', '.join(allowed)}")
        return raw

    def provenance(self, section: dict[str, Any], where: str) -> tuple[str, bool]:
        """The section's source text, and whether it is (partly) an estimate."""
        source, estimate = section.get("source"), section.get("estimate")
        if source is None and estimate is None:
            raise self.fail(
                f"{where}.source",
                "missing: every section with numbers needs `source:` (datasheet, vendor page, published "
                "benchmark) or `estimate:` (how the number was derived)",
            )
        parts = []
        if source is not None:
            parts.append(self.text(source, f"{where}.source"))
        if estimate is not None:
            parts.append("estimate: " + self.text(estimate, f"{where}.estimate"))
        if "note" in section:
            self.text(section["note"], f"{where}.note")
        return " | ".join(parts), estimate is not None

    def profile(self, data: Any) -> DeviceProfile:
        top = self.mapping(data, "", _TOP_KEYS)
        sections = {key: self.mapping(top[key], key, _SECTION_KEYS[key]) for key in _SECTION_KEYS}
        sources, estimated = {}, []
        for key in SOURCED_SECTIONS:
            sources[key], is_estimate = self.provenance(sections[key], key)
            if is_estimate:
                estimated.append(key)
        regions = parse_ram_regions(self, top.get("ram_regions"))  # its source text is not kept in `sources`
        runtime = self.choice(top["runtime"], "runtime", RUNTIMES)
        supported, preferred = self.precisions(sections["precisions"], runtime)
        memory = sections["memory"]
        ram_bytes = self.positive(parse_bytes, memory["ram_bytes"], "memory.ram_bytes")
        flash_bytes = self.positive(parse_bytes, memory["flash_bytes"], "memory.flash_bytes")
        return DeviceProfile(
            name=self.name(top["name"]),
            kind=self.choice(top["kind"], "kind", KINDS),
            runtime=runtime,
            description=self.text(top["description"], "description"),
            cpu=self.cpu(sections["cpu"]),
            ram_bytes=ram_bytes,
            flash_bytes=flash_bytes,
            precisions_supported=supported,
            precision_preferred=preferred,
            budgets=self.budgets(sections["budgets"], ram_bytes, flash_bytes),
            power=PowerSpec(
                active_mw=self.positive(parse_mw, sections["power"]["active_mw"], "power.active_mw"),
                idle_mw=self.value(parse_mw, sections["power"]["idle_mw"], "power.idle_mw"),
            ),
            cost_model=self.cost_model(sections["cost_model"], supported),
            channel_multiple=self.value(parse_count, top.get("channel_multiple", 1), "channel_multiple"),
            sources=MappingProxyType(sources),
            estimated_sections=tuple(estimated),
            path=self.path,
            ram_regions=regions,
        )

    def name(self, raw: Any) -> str:
        name = self.text(raw, "name")
        if not all(c.islower() or c.isdigit() or c == "-" for c in name):
            raise self.fail("name", f"{raw!r} must use lower-case letters, digits and '-' only")
        return name

    def cpu(self, cpu: dict[str, Any]) -> CpuSpec:
        cores = self.value(parse_count, cpu["cores"], "cpu.cores")
        threads = self.value(parse_count, cpu.get("threads", 1), "cpu.threads")
        if threads > cores:
            raise self.fail("cpu.threads", f"{threads} threads but only {cores} cores")
        return CpuSpec(
            arch=self.text(cpu["arch"], "cpu.arch"),
            cores=cores,
            clock_mhz=self.positive(parse_rate, cpu["clock_mhz"], "cpu.clock_mhz"),
            threads=threads,
            simd=self.text(cpu["simd"], "cpu.simd") if "simd" in cpu else "",
        )

    def precisions(self, section: dict[str, Any], runtime: str) -> tuple[tuple[str, ...], str]:
        raw = section["supported"]
        if not isinstance(raw, list) or not raw:
            raise self.fail("precisions.supported", f"{raw!r} must be a non-empty list such as [int8, float32]")
        supported = tuple(self.choice(p, "precisions.supported", DEVICE_PRECISIONS) for p in raw)
        if runtime == "tflm" and "float16" in supported:
            raise self.fail("precisions.supported", "float16 is not available with runtime tflm (no kernels)")
        preferred = self.choice(section["preferred"], "precisions.preferred", DEVICE_PRECISIONS)
        if preferred not in supported:
            raise self.fail("precisions.preferred", f"{preferred!r} is not in precisions.supported")
        return supported, preferred

    def budgets(self, section: dict[str, Any], ram_bytes: int, flash_bytes: int) -> Budgets:
        budgets = Budgets(
            flash_bytes=self.positive(parse_bytes, section["flash_bytes"], "budgets.flash_bytes", nullable=True),
            ram_bytes=self.positive(parse_bytes, section["ram_bytes"], "budgets.ram_bytes", nullable=True),
            latency_ms=self.positive(parse_ms, section["latency_ms"], "budgets.latency_ms", nullable=True),
            energy_mj=self.positive(parse_mj, section["energy_mj"], "budgets.energy_mj", nullable=True),
        )
        if budgets.ram_bytes is not None and budgets.ram_bytes > ram_bytes:
            raise self.fail("budgets.ram_bytes", "is larger than memory.ram_bytes")
        if budgets.flash_bytes is not None and budgets.flash_bytes > flash_bytes:
            raise self.fail("budgets.flash_bytes", "is larger than memory.flash_bytes")
        return budgets

    def rate_table(
        self, raw: Any, where: str, op_classes: tuple[str, ...], supported: tuple[str, ...]
    ) -> Mapping[str, Mapping[str, float]]:
        table = self.mapping(raw, where, op_classes)
        out = {}
        for op_class in op_classes:
            rates = table[op_class]
            if not isinstance(rates, dict):
                raise self.fail(f"{where}.{op_class}", f"expected precision: rate pairs, got {rates!r}")
            for precision in rates:
                self.choice(precision, f"{where}.{op_class}.{precision}", DEVICE_PRECISIONS)
            for precision in supported:
                if precision not in rates:
                    raise self.fail(f"{where}.{op_class}.{precision}",
                                    "missing (every supported precision needs a rate)")
            out[op_class] = MappingProxyType({
                p: self.positive(parse_rate, r, f"{where}.{op_class}.{p}") for p, r in rates.items()
            })
        return MappingProxyType(out)

    def cost_model(self, section: dict[str, Any], supported: tuple[str, ...]) -> CostModelParams:
        where = "cost_model"
        return CostModelParams(
            per_op_overhead_us=self.value(parse_us, section["per_op_overhead_us"], f"{where}.per_op_overhead_us"),
            memory_bandwidth_mb_s=self.positive(
                parse_rate, section["memory_bandwidth_mb_s"], f"{where}.memory_bandwidth_mb_s"
            ),
            macs_per_s=self.rate_table(section["macs_per_s"], f"{where}.macs_per_s", MAC_OP_CLASSES, supported),
            ops_per_s=self.rate_table(section["ops_per_s"], f"{where}.ops_per_s", ELEMENT_OP_CLASSES, supported),
            runtime_overhead_ram_bytes=self.value(
                parse_bytes, section["runtime_overhead_ram_bytes"], f"{where}.runtime_overhead_ram_bytes"
            ),
            energy_pj_per_mac=self.positive(
                parse_rate, section.get("energy_pj_per_mac"), f"{where}.energy_pj_per_mac", nullable=True
            ),
            energy_pj_per_byte=self.positive(
                parse_rate, section.get("energy_pj_per_byte"), f"{where}.energy_pj_per_byte", nullable=True
            ),
            per_inference_overhead_us=self.value(
                parse_us, section.get("per_inference_overhead_us", 0), f"{where}.per_inference_overhead_us"
            ),
        )
