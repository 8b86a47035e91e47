"""`bench`: measure a .tflite file with one runner; with a device profile, the prediction beside it."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from edgekit.errors import BadInputError
from edgekit.runners import RUNNERS
from edgekit.workflows.export import CHECK_SAMPLES, optional_profile


@dataclass(frozen=True)
class BenchResult:
    model_path: str
    measurement: object                      # edgekit.runners.base.Measurement
    precision: str
    predicted_latency_ms: float | None
    prediction_note: str | None              # basis of the prediction, or why there is none
    device: str | None                       # profile name

    def to_dict(self) -> dict:
        """The `edgekit bench --json` object."""
        m = self.measurement
        out = {
            "model": self.model_path, "runner": m.runner, "device": m.device, "precision": self.precision,
            "model_size_bytes": m.model_size_bytes, "runs": m.runs, "threads": m.threads, "init_ms": m.init_ms,
            "latency_ms": {"p50": m.latency_ms_p50, "p90": m.latency_ms_p90, "p99": m.latency_ms_p99,
                           "mean": m.latency_ms_mean, "std": m.latency_ms_std, "min": m.latency_ms_min},
            "peak_rss_growth_bytes": m.peak_rss_growth_bytes,
        }
        if m.runner == "tflm":
            out["arena_bytes"] = m.arena_bytes
            out["arena_recorded_bytes"] = m.arena_recorded_bytes
        if m.accuracy is not None:
            out["accuracy"] = m.accuracy
        if m.agreement is not None:
            a = m.agreement
            out["agreement"] = {"reference": m.agreement_reference, "samples": a.n_samples,
                                "top1_agreement": a.top1_agreement, "max_abs_error": a.max_abs_error,
                                "mean_abs_error": a.mean_abs_error}
        if self.device is not None:
            out["profile"] = self.device
            out["predicted_latency_ms"] = self.predicted_latency_ms
            out["prediction"] = self.prediction_note
        out["notes"] = list(m.notes)
        return out


def bench(model_path: str | os.PathLike, runner: str = "litert", device: str | None = None, data=None,
          threads: int | None = None, keras_model=None, warmup: int = 5, runs: int = 50, trust: bool = False,
          **adb_options) -> BenchResult:
    """Measure a .tflite file with one runner; with a device profile, predict its latency beside the measurement.

    keras_model: the Keras model (path or object) the file was exported from: needed for the predicted
    latency and for agreement with Keras. adb_options: serial, binary, device_binary, delegate, tool.
    """
    from edgekit.model_io.flatbuffer import infer_precision
    from edgekit.runners.agreement import agreement

    if runner not in RUNNERS:
        raise BadInputError(f"unknown runner {runner!r}; use one of {', '.join(RUNNERS)}")
    path = os.fspath(model_path)
    if not path.endswith(".tflite") or not os.path.isfile(path):
        raise BadInputError(f"{path}: not a .tflite file; convert a Keras model first with `edgekit export`")
    with open(path, "rb") as f:
        tflite_bytes = f.read()
    precision = infer_precision(tflite_bytes)
    profile = optional_profile(device)
    threads = threads or (profile.cpu.threads if profile is not None else 1)
    keras = None
    if keras_model is not None:
        from edgekit.model_io import load_keras

        keras, _ = load_keras(keras_model, trust=trust)
    x = y = None
    if data is not None:
        x, y = _bench_data(data, tflite_bytes)
    measurement = _runner(runner, threads, warmup, runs, adb_options).run(tflite_bytes, x)
    measurement = _with_quality(measurement, keras, x, y, agreement)
    predicted, note = _predicted_latency(profile, keras, precision)
    return BenchResult(path, measurement, precision, predicted, note, profile.name if profile else None)


def _runner(name: str, threads: int, warmup: int, runs: int, adb_options: dict):
    if name == "litert":
        from edgekit.runners.litert import LiteRTRunner

        return LiteRTRunner(threads=threads, warmup=warmup, runs=runs, min_seconds=0.2)
    if name == "tflm":
        from edgekit.runners.tflm import TFLMRunner

        return TFLMRunner(warmup=min(warmup, 2), runs=runs)
    from edgekit.runners.adb import AdbRunner

    options = {k: v for k, v in adb_options.items() if v is not None}
    return AdbRunner(threads=threads, warmup=warmup, runs=runs, **options)


def _bench_data(data, tflite_bytes: bytes):
    from edgekit.data import from_arrays, load_data
    from edgekit.model_io.flatbuffer import ints, read_model

    model = read_model(tflite_bytes)
    subgraph = model.subgraphs[0]
    shape = (None, *ints(subgraph.tensors[ints(subgraph.inputs)[0]].shape)[1:])
    if isinstance(data, (str, os.PathLike)):
        dataset = load_data(data, shape)
    else:
        x, y = data if isinstance(data, tuple) else (data, None)
        dataset = from_arrays(x, y, shape)
    return dataset.x[:CHECK_SAMPLES], (dataset.y[:CHECK_SAMPLES] if dataset.y is not None else None)


def _with_quality(measurement, keras, x, y, agreement):
    import dataclasses

    if measurement.outputs is None or x is None:
        return measurement
    changes = {}
    outputs = measurement.outputs
    if y is not None and np.asarray(y).ndim == 1 and outputs.ndim == 2 and outputs.shape[1] > 1:
        changes["accuracy"] = float(np.mean(outputs.argmax(1) == np.asarray(y).astype(np.int64)))
    if keras is not None:
        changes["agreement"] = agreement(keras.predict(x, verbose=0, batch_size=256), outputs)
        changes["agreement_reference"] = "keras"
    return dataclasses.replace(measurement, **changes)


def _predicted_latency(profile, keras, precision: str) -> tuple[float | None, str | None]:
    if profile is None:
        return None, None
    if keras is None:
        return None, "cannot predict latency from a .tflite file alone: pass --model with the Keras model"
    from edgekit.costmodel.analysis import analyze_graph
    from edgekit.costmodel.predict import predicted_costs
    from edgekit.ir.from_keras import from_keras

    rate_precision = precision if precision != "dynamic_int8" else "int8"
    if rate_precision not in profile.precisions_supported:
        rate_precision = profile.precision_preferred
    costs = predicted_costs(analyze_graph(from_keras(keras)), profile, rate_precision)
    latency, basis = costs["latency_ms"]
    return float(latency), basis
