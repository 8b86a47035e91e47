"""`fit` for a fleet: one model made to fit several devices in one run, one comparison report.

Every device gets its own fit into `<out>/<device>/` (the same deliverables as a single fit), one after
the other in this process; the teacher's outputs over the training samples are computed once and shared
by every device's distillation (`edgekit.distill.teacher_cache`). A device that does not fit (or whose
runtime cannot run the model) is recorded and the fleet moves on: the run fails per device, not all or
nothing. `<out>/fleet.md`, `fleet.html` and `fleet.json` compare accuracy, size, RAM, latency and energy.

    >>> fleet = fit_fleet("teacher.h5", ["pixel7", "nrf52840"], "train.npz", out_dir="out")  # doctest: +SKIP
    >>> fleet.all_fit, [o.status for o in fleet.outcomes]                                    # doctest: +SKIP
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from edgekit.errors import BadInputError, DoesNotFitError, EdgekitError

FLEET_REPORTS = ("fleet.md", "fleet.html", "fleet.json")
FLEET_BUDGET_KEYS = ("max_flash", "max_ram", "max_latency_ms", "max_energy_mj")


@dataclass(frozen=True)
class FleetDevice:
    """One device of the fleet and its own budget overrides (from fleet.yaml), on top of the shared ones."""

    device: str                      # profile name or profile YAML path
    budgets: tuple[tuple[str, str | float], ...] = ()


@dataclass(frozen=True)
class DeviceOutcome:
    device: str                      # the profile's name (also the folder name)
    out_dir: str
    status: str                      # fits | already_fits | does_not_fit | failed
    result: object | None            # FitResult (fits, already_fits, does_not_fit with the closest result)
    message: str | None              # why it does not fit / failed
    seconds: float
    error_type: type | None = None   # the error class of a failed device

    @property
    def fits(self) -> bool:
        return self.status in ("fits", "already_fits")


@dataclass(frozen=True)
class FleetResult:
    model_path: str
    out_dir: str
    outcomes: tuple[DeviceOutcome, ...]
    seconds: float
    teacher_output_hits: int = 0     # distillations that reused cached teacher outputs
    teacher_output_misses: int = 0

    @property
    def all_fit(self) -> bool:
        return all(o.fits for o in self.outcomes)

    def to_dict(self) -> dict:
        from edgekit.workflows.fit.fleet_report import fleet_rows

        return {"model_path": self.model_path, "out_dir": self.out_dir, "all_fit": self.all_fit,
                "seconds": self.seconds, "teacher_outputs": {"computed": self.teacher_output_misses,
                                                             "reused": self.teacher_output_hits},
                "devices": fleet_rows(self)}


def parse_fleet(device: str | None, devices_file: str | os.PathLike | None) -> tuple[FleetDevice, ...]:
    """Devices from `--device a,b,c` or a fleet YAML (a list of names, or `devices:` of names / mappings
    with `device:` and optional max_flash / max_ram / max_latency_ms / max_energy_mj)."""
    if device and devices_file:
        raise BadInputError("give either --device (a comma-separated list) or --devices FLEET.yaml, not both")
    if devices_file is not None:
        fleet = _read_fleet_file(os.fspath(devices_file))
    elif device:
        fleet = tuple(FleetDevice(d.strip()) for d in str(device).split(","))
        if any(not d.device for d in fleet):
            raise BadInputError(f"--device {device!r}: an empty name in the list; separate names by single commas")
    else:
        raise BadInputError("--device is required (a profile name, a profile YAML, or a comma-separated list)")
    return fleet


def _read_fleet_file(path: str) -> tuple[FleetDevice, ...]:
    try:
        with open(path, "rb") as f:
            data = yaml.safe_load(f.read(1 << 20))
    except FileNotFoundError:
        raise BadInputError(f"--devices {path}: no such file") from None
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise BadInputError(f"--devices {path}: not readable YAML ({type(exc).__name__}); write `devices:` and "
                            "a list of profile names") from None
    items = data.get("devices") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise BadInputError(f"--devices {path}: expected `devices:` with a non-empty list of profile names")
    fleet = []
    for i, item in enumerate(items):
        where = f"--devices {path}: devices[{i}]"
        if isinstance(item, str) and item.strip():
            fleet.append(FleetDevice(item.strip()))
            continue
        if not isinstance(item, dict) or not isinstance(item.get("device"), str):
            raise BadInputError(f"{where}: expected a profile name or a mapping with `device:`")
        unknown = set(item) - {"device", *FLEET_BUDGET_KEYS}
        if unknown:
            raise BadInputError(f"{where}: unknown field {min(map(str, unknown))!r}; use device, "
                                f"{', '.join(FLEET_BUDGET_KEYS)}")
        budgets = tuple((k, item[k]) for k in FLEET_BUDGET_KEYS if item.get(k) is not None)
        for key, value in budgets:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise BadInputError(f"{where}.{key}: expected a number or a size such as 256KB")
        fleet.append(FleetDevice(item["device"], budgets))
    return tuple(fleet)


def fit_fleet(model_path: str | os.PathLike, fleet, data, *, val=None, out_dir: str | os.PathLike = "edgekit-out",
              quiet: bool = False, trust: bool = False, stream=None, **fit_options) -> FleetResult:
    """Fit `model_path` to every device of `fleet` (FleetDevice values or profile names).

    fit_options: what `edgekit.workflows.fit.fit` takes (epochs, seed, max_flash, ...); per-device budgets
    from the fleet file override the shared ones. Raises BadInputError before any work for an unknown
    device, two devices with the same name, or an unreadable model or data; otherwise never raises for one
    device: its outcome says why it does not fit.
    """
    from edgekit.budgets import parse_budget_overrides
    from edgekit.distill.teacher_cache import shared_teacher_outputs
    from edgekit.profiles import load_profile

    stream = stream or sys.stderr
    fleet = tuple(d if isinstance(d, FleetDevice) else FleetDevice(str(d)) for d in fleet)
    if not fleet:
        raise BadInputError("the fleet has no devices")
    names = []
    for d in fleet:
        names.append(load_profile(d.device).name)
        shared = {k: fit_options.get(k) for k in FLEET_BUDGET_KEYS}
        parse_budget_overrides(**{**shared, **dict(d.budgets)})  # bad budgets fail here, before any training
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise BadInputError(f"device {duplicates[0]!r} appears twice in the fleet; list each device once")
    _check_inputs(model_path, data, val, out_dir, trust, fit_options.get("metric"))
    root = Path(out_dir)
    start = time.monotonic()
    outcomes: list[DeviceOutcome] = []
    with shared_teacher_outputs() as cache:
        for i, (item, name) in enumerate(zip(fleet, names, strict=True)):
            if not quiet:
                print(_progress_line(i, len(fleet), name, start, outcomes), file=stream, flush=True)
            options = {**fit_options, **dict(item.budgets)}
            outcomes.append(_fit_one(model_path, item.device, name, data, val, root / name, quiet, trust, options))
    failures = {o.message for o in outcomes if o.status == "failed"}
    if len(failures) == 1 and all(o.status == "failed" for o in outcomes) and _is_bad_input(outcomes[0]):
        raise BadInputError(failures.pop())  # the same bad input for every device: the fleet's, exit 2
    result = FleetResult(os.fspath(model_path), os.fspath(root), tuple(outcomes), time.monotonic() - start,
                         cache.hits, cache.misses)
    from edgekit.workflows.fit.fleet_report import write_fleet_reports

    write_fleet_reports(result, protected=[p for p in (model_path, data, val) if isinstance(p, (str, os.PathLike))])
    return result


def _progress_line(i: int, n: int, name: str, start: float, done: list[DeviceOutcome]) -> str:
    elapsed = time.monotonic() - start
    eta = f", about {elapsed / i * (n - i) / 60:.1f} min left" if i else ""
    return f"fleet: device {i + 1}/{n}: {name} ({elapsed / 60:.1f} min so far{eta})"


def _check_inputs(model_path, data, val, out_dir, trust: bool, metric: str | None) -> None:
    """Unreadable model, data or metric is the whole fleet's bad input (exit 2), found before any device starts."""
    from edgekit.data import as_dataset
    from edgekit.model_io import load_keras

    if metric is not None:
        from edgekit.tasks import load_metric

        load_metric(metric)

    out = Path(out_dir).resolve()
    for path in (model_path, data, val):
        if isinstance(path, (str, os.PathLike)) and Path(path).resolve() in {out / n for n in FLEET_REPORTS}:
            raise BadInputError(f"--out {out_dir}: the fleet report would replace the input {path}")
    model, _ = load_keras(model_path, trust=trust)
    if data is None:
        from edgekit.workflows.fit import NO_DATA_MESSAGE

        raise BadInputError(NO_DATA_MESSAGE)
    as_dataset(data, model.input_shape, "data")
    as_dataset(val, model.input_shape, "val")


def _is_bad_input(outcome: DeviceOutcome) -> bool:
    return outcome.error_type is BadInputError


def _fit_one(model_path, device, name, data, val, out: Path, quiet: bool, trust: bool, options) -> DeviceOutcome:
    from edgekit.workflows.fit import fit

    start = time.monotonic()
    try:
        result = fit(model_path, device, data, val=val, out_dir=out, quiet=quiet, trust=trust, **options)
    except DoesNotFitError as err:
        result = getattr(err, "result", None)
        return DeviceOutcome(name, str(out), "does_not_fit", result, str(err), time.monotonic() - start)
    except EdgekitError as err:  # e.g. an op this device's runtime has no kernel for: this device only
        return DeviceOutcome(name, str(out), "failed", None, str(err), time.monotonic() - start, type(err))
    return DeviceOutcome(name, str(out), result.status, result, None, time.monotonic() - start)


__all__ = ["DeviceOutcome", "FleetDevice", "FleetResult", "fit_fleet", "parse_fleet"]
