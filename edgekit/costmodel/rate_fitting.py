"""Fit the latency model's throughput parameters to measured latencies (pure: numpy and scipy, no TensorFlow).

`fit_cost_model` minimises the squared log ratio of predicted to measured latency over timed models, with
predictions made by `edgekit.costmodel.latency` itself, so the fitted numbers mean exactly what the predictor does
with them. Inputs are `TimedModel`s (a graph, a precision, a latency), from `edgekit.workflows.calibrate`'s
micro-benchmarks or from anywhere else (tests use synthetic timings with known parameters).

    >>> fit = fit_cost_model(timed, ("float32", "int8"), load_profile("host").cost_model,
    ...                      KernelTraits(channel_multiple=16))                      # doctest: +SKIP
    >>> fit.share_within(0.10), fit.cost_model.macs_per_s["conv"]["int8"]              # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from edgekit.costmodel.latency import (
    DEFAULT_TRAITS,
    ELEMENT_CLASSES,
    MAC_CLASSES,
    KernelTraits,
    OpWork,
    op_workloads,
    predict_seconds,
)
from edgekit.ir.graph import Graph
from edgekit.profiles import CostModelParams


@dataclass(frozen=True)
class TimedModel:
    """One model at one precision with its measured latency: an input of the fit."""

    name: str
    precision: str
    graph: Graph
    latency_ms: float
    timing: object | None = None  # edgekit.workflows.microbenchmarks.Timing when it was measured there


@dataclass(frozen=True)
class FittedCostModel(CostModelParams):
    """CostModelParams plus the fixed cost of one invoke, which `edgekit.costmodel.latency` adds when present."""

    per_inference_overhead_us: float = 0.0


@dataclass(frozen=True)
class FitPoint:
    name: str
    precision: str
    measured_ms: float
    predicted_ms: float

    @property
    def error(self) -> float:
        """Relative error of the prediction: predicted / measured - 1."""
        return self.predicted_ms / self.measured_ms - 1.0


@dataclass(frozen=True)
class FitResult:
    cost_model: FittedCostModel
    points: tuple[FitPoint, ...]
    precisions: tuple[str, ...]
    traits: KernelTraits

    def share_within(self, tolerance: float) -> float:
        """Share of the fitted models predicted within +-tolerance (0.10 = 10 %)."""
        return float(np.mean([abs(p.error) <= tolerance for p in self.points])) if self.points else math.nan

    @property
    def rms_log_error(self) -> float:
        return float(np.sqrt(np.mean([math.log(p.predicted_ms / p.measured_ms) ** 2 for p in self.points])))


# Parameter vector (natural logs): the shared ones, then per precision the MAC and the element rates.
_SHARED = ("per_inference_overhead_us", "per_op_overhead_us", "memory_bandwidth_mb_s")
_PER_PRECISION = len(MAC_CLASSES) + len(ELEMENT_CLASSES)
# Bounds keep a parameter no benchmark constrains (int8 dense is bandwidth-bound) at a readable value.
_BOUNDS = ((1e-6, 1e5), (1e-6, 1e5), (1.0, 1e7)) + ((1e3, 1e13),) * _PER_PRECISION


def _unpack(theta: np.ndarray, precisions: Sequence[str], base: CostModelParams) -> FittedCostModel:
    values = np.exp(theta)
    macs: dict[str, dict[str, float]] = {c: {} for c in MAC_CLASSES}
    ops: dict[str, dict[str, float]] = {c: {} for c in ELEMENT_CLASSES}
    for k, p in enumerate(precisions):
        rates = values[len(_SHARED) + k * _PER_PRECISION :]
        for j, c in enumerate(MAC_CLASSES):
            macs[c][p] = float(rates[j])
        for j, c in enumerate(ELEMENT_CLASSES):
            ops[c][p] = float(rates[len(MAC_CLASSES) + j])
    return FittedCostModel(
        per_op_overhead_us=float(values[1]),
        memory_bandwidth_mb_s=float(values[2]),
        macs_per_s=MappingProxyType({c: MappingProxyType(v) for c, v in macs.items()}),
        ops_per_s=MappingProxyType({c: MappingProxyType(v) for c, v in ops.items()}),
        runtime_overhead_ram_bytes=base.runtime_overhead_ram_bytes,
        energy_pj_per_mac=base.energy_pj_per_mac,
        energy_pj_per_byte=base.energy_pj_per_byte,
        per_inference_overhead_us=float(values[0]),
    )


def _pack(model: CostModelParams, precisions: Sequence[str]) -> np.ndarray:
    values = [
        max(float(getattr(model, "per_inference_overhead_us", 0.0) or 0.0), 0.1),
        max(model.per_op_overhead_us, 0.01),
        model.memory_bandwidth_mb_s,
    ]
    for p in precisions:
        values += [_base_rate(model.macs_per_s[c], p) for c in MAC_CLASSES]
        values += [_base_rate(model.ops_per_s[c], p) for c in ELEMENT_CLASSES]
    return np.log(
        np.clip(values, [b[0] for b in _bounds(len(precisions))], [b[1] for b in _bounds(len(precisions))])
    )


def _base_rate(by_precision: Mapping[str, float], precision: str) -> float:
    return by_precision.get(precision) or by_precision.get("float32") or next(iter(by_precision.values()))


def _bounds(n_precisions: int) -> tuple[tuple[float, float], ...]:
    return _BOUNDS[: len(_SHARED)] + _BOUNDS[len(_SHARED) :] * n_precisions


def _generic(n_precisions: int) -> np.ndarray:
    """A device-agnostic start: 0.5 us per invoke, 0.05 us per op, 100 GB/s, 100 GMAC/s conv, 30 G rest."""
    per_precision = [1e11, 3e10, 3e10, 1e10, 1e10]
    return np.log([0.5, 0.05, 1e5, *per_precision * n_precisions])


def _features(work: tuple[OpWork, ...], precision: str, precisions: tuple[str, ...]) -> np.ndarray:
    """Additive-model features of one inference: [1, dispatches, bytes, then MACs / elements per rate]."""
    row = np.zeros(len(_SHARED) + len(precisions) * _PER_PRECISION)
    row[0] = 1.0
    offset = len(_SHARED) + precisions.index(precision) * _PER_PRECISION
    for w in work:
        row[1] += w.dispatches
        row[2] += w.bytes_moved
        if w.macs:
            row[offset + MAC_CLASSES.index(w.op_class)] += w.macs
        if w.elements:
            row[offset + len(MAC_CLASSES) + (0 if w.op_class == "pooling" else 1)] += w.elements
    return row


def _seconds_per_unit(index: int, log_value: float) -> float:
    """A parameter as seconds per unit of its feature (overheads are in us, bandwidth in MB/s)."""
    value = math.exp(log_value)
    return value * 1e-6 if index < 2 else 1.0 / (value * (1e6 if index == 2 else 1.0))


def _linear_start(
    features: np.ndarray, measured_s: np.ndarray, fallback: np.ndarray, free: np.ndarray
) -> np.ndarray:
    """Non-negative least squares of the additive model t = fixed + dispatches x overhead + bytes / bandwidth
    + sum(work / rate), relative to each measurement; a start for the roofline fit. Parameters it leaves at
    zero keep `fallback`."""
    from scipy.optimize import nnls

    columns = np.flatnonzero(free)
    pinned = sum(features[:, i] * _seconds_per_unit(i, fallback[i]) for i in np.flatnonzero(~free))
    scale = features[:, columns].max(axis=0)
    coef, _ = nnls(features[:, columns] / scale / measured_s[:, None], 1.0 - pinned / measured_s)
    start = fallback.copy()
    for j, i in enumerate(columns):
        per_unit = coef[j] / scale[j]
        if per_unit > 0:
            start[i] = math.log(per_unit * 1e6) if i < 2 else -math.log(per_unit * (1e6 if i == 2 else 1.0))
    low, high = zip(*_bounds((len(fallback) - len(_SHARED)) // _PER_PRECISION))
    return np.clip(start, np.log(low), np.log(high))


def fit_cost_model(
    timed: Sequence[TimedModel],
    precisions: Sequence[str],
    base: CostModelParams,
    traits: KernelTraits = DEFAULT_TRAITS,
    fixed_overhead: bool = True,
) -> FitResult:
    """Least-squares fit of the latency model's parameters to measured latencies (pure).

    Minimises the squared log ratio of predicted (`edgekit.costmodel.latency`) to measured latency over `timed`,
    with a soft-L1 loss so that a few badly timed models cannot drag the fit. Each precision gets its own
    MAC and element-op rates; bandwidth and overheads are shared; rates no model exercises keep `base`'s
    value. fixed_overhead=False pins the per-inference overhead to ~0 (a profile schema without it).
    """
    from scipy.optimize import least_squares

    precisions = tuple(precisions)
    used = [t for t in timed if t.precision in precisions]
    if not used:
        raise ValueError(f"no timed models at precisions {precisions}")
    work = [op_workloads(t.graph, t.precision, traits) for t in used]
    measured_s = np.asarray([t.latency_ms * 1e-3 for t in used])
    features = np.stack([_features(ws, t.precision, precisions) for ws, t in zip(work, used)])
    theta0 = _pack(base, precisions)
    free = features.any(axis=0)
    if not fixed_overhead:
        free[0] = False
        theta0[0] = math.log(_BOUNDS[0][0])
    low, high = (np.log(b)[free] for b in zip(*_bounds(len(precisions))))

    def residuals(x: np.ndarray) -> np.ndarray:
        theta = theta0.copy()
        theta[free] = x
        model = _unpack(theta, precisions, base)
        return np.log([predict_seconds(ws, model, t.precision) for ws, t in zip(work, used)] / measured_s)

    # The roofline's max() makes the loss non-convex, with local optima that fit the benchmarks almost as
    # well but predict whole models worse: start from the base profile, from a generic one, and from linear
    # fits of the additive model around each; keep the lowest optimum.
    generic = theta0.copy()
    generic[free] = _generic(len(precisions))[free]
    starts = [theta0, generic, *(_linear_start(features, measured_s, t, free) for t in (theta0, generic))]
    results = [
        least_squares(residuals, start[free], bounds=(low, high), loss="soft_l1", f_scale=0.1, max_nfev=4000)
        for start in starts
    ]
    theta = theta0.copy()
    theta[free] = min(results, key=lambda r: r.cost).x
    model = _unpack(theta, precisions, base)
    points = tuple(
        FitPoint(t.name, t.precision, t.latency_ms, predict_seconds(ws, model, t.precision) * 1e3)
        for ws, t in zip(work, used)
    )
    return FitResult(model, points, precisions, traits)


def with_precision_copy(model: FittedCostModel, target: str, source: str) -> FittedCostModel:
    """A copy whose rates at `target` equal those at `source` (float16 runs as float32 on LiteRT CPUs)."""

    def copy(table):
        return MappingProxyType({c: MappingProxyType({**v, target: v[source]}) for c, v in table.items()})

    return dataclasses.replace(model, macs_per_s=copy(model.macs_per_s), ops_per_s=copy(model.ops_per_s))
