"""Budgets: what share of a device a model may use, their names, units and parsing (one place, pure).

``Budgets`` is resolved once (profile defaults + command-line overrides) and passed down as a value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from edgekit.errors import BadInputError
from edgekit.units import format_bytes, parse_bytes, parse_mj, parse_ms

BUDGET_KEYS = ("flash_bytes", "ram_bytes", "latency_ms", "energy_mj")
BUDGET_LABELS = {"flash_bytes": "flash", "ram_bytes": "RAM", "latency_ms": "latency", "energy_mj": "energy"}


def format_budget(key: str, value: float | None) -> str:
    """A budget value for people: bytes as KiB/MiB, ms, mJ."""
    if value is None:
        return "-"
    if key.endswith("_bytes"):
        return format_bytes(int(value))
    if key == "latency_ms":
        return f"{value:.3g} ms"
    return f"{value:.3g} mJ"


@dataclass(frozen=True)
class Budgets:
    """The share of the device the model may use; ``None`` means no budget on that resource."""

    flash_bytes: int | None
    ram_bytes: int | None
    latency_ms: float | None
    energy_mj: float | None

    def with_overrides(self, **overrides: float | None) -> Budgets:
        """A copy with the given budgets replaced; a value of ``None`` keeps the current one."""
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def as_dict(self) -> dict[str, int | float | None]:
        """Keyed ``flash_bytes, ram_bytes, latency_ms, energy_mj``."""
        return dataclasses.asdict(self)


def parse_budget_overrides(
    max_flash: str | int | None = None,
    max_ram: str | int | None = None,
    max_latency_ms: str | float | None = None,
    max_energy_mj: str | float | None = None,
) -> dict[str, int | float]:
    """Turn CLI budget options into keyword arguments for :meth:`Budgets.with_overrides` (given ones only).

    >>> parse_budget_overrides(max_ram="256KB", max_latency_ms="0.5s")
    {'ram_bytes': 262144, 'latency_ms': 500.0}
    """
    options = (
        ("--max-flash", "flash_bytes", parse_bytes, max_flash),
        ("--max-ram", "ram_bytes", parse_bytes, max_ram),
        ("--max-latency-ms", "latency_ms", parse_ms, max_latency_ms),
        ("--max-energy-mj", "energy_mj", parse_mj, max_energy_mj),
    )
    out: dict[str, int | float] = {}
    for option, key, parser, value in options:
        if value is None:
            continue
        try:
            parsed = parser(value, option)
        except ValueError as exc:
            raise BadInputError(str(exc)) from None
        if parsed <= 0:
            raise BadInputError(f"{option}: {value!r} must be greater than zero")
        out[key] = parsed
    return out


@dataclass(frozen=True)
class BudgetLine:
    """One budget of one model on one device: its limit, the predicted and (when run) measured figure.

    `fits` uses the measured figure when there is one, else the prediction; None when no limit is set.
    """

    budget: str                       # one of BUDGET_KEYS
    limit: float | None               # None: no budget on this resource
    predicted: float | None
    basis: str = ""                   # how the prediction was made
    measured: float | None = None     # from a runner (TFLM, LiteRT, adb); None when not measured
    measured_by: str | None = None    # e.g. "TFLM arena (bisected)", "LiteRT on host"
    margin: float = 1.0               # the planner aims at this share of the limit

    @property
    def value(self) -> float | None:
        return self.measured if self.measured is not None else self.predicted

    @property
    def fits(self) -> bool | None:
        if self.limit is None or self.value is None:
            return None
        return self.value <= self.limit

    @property
    def headroom(self) -> float | None:
        """Share of the limit left (negative when over)."""
        return None if not self.limit or self.value is None else 1.0 - self.value / self.limit


def resolve_budgets(profile, **overrides) -> Budgets:
    """The profile's default budgets with the given CLI-style overrides (max_flash="12KB", ...) applied."""
    return profile.budgets.with_overrides(**parse_budget_overrides(**overrides))
