"""`bench`: measure a .tflite file with one runner; with a device profile, the prediction beside it."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from edgekit.errors import BadInputError
from edgekit.model_io.detect import is_plain_saved_model
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
    output_kinds: dict | None = None         # several outputs: "class" | "regression" by name (from --model / labels)

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
        if m.accuracy_by_output:
            out["accuracy_by_output"] = dict(m.accuracy_by_output)
        if m.agreement_by_output and m.agreement is None:  # several outputs
            kinds = self.output_kinds or {}
            out["agreement_by_output"] = {
                "reference": m.agreement_reference, "samples": next(iter(m.agreement_by_output.values())).n_samples,
                "outputs": {name: {"kind": kinds.get(name), "max_abs_error": a.max_abs_error,
                                   "mean_abs_error": a.mean_abs_error,
                                   "top1_agreement": None if kinds.get(name) == "regression" else a.top1_agreement}
                            for name, a in m.agreement_by_output.items()}}
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
    A model with several inputs or outputs takes data as an .npz with one array per input (named as the
    file's inputs, or x0, x1, ... in its input order) and labels y_<output name>; accuracy and agreement
    are then reported per output.
    """
    from edgekit.model_io.flatbuffer import infer_precision
    from edgekit.runners.agreement import agreement

    if runner not in RUNNERS:
        raise BadInputError(f"unknown runner {runner!r}; use one of {', '.join(RUNNERS)}")
    path = os.fspath(model_path)
    if is_plain_saved_model(path):  # not Keras: measured as its float32 TFLite conversion (nothing written)
        from edgekit.export.saved_model import convert_saved_model

        tflite_bytes = convert_saved_model(path, "float32").tflite_bytes
    elif not path.endswith(".tflite") or not os.path.isfile(path):
        raise BadInputError(f"{path}: not a .tflite file or a TensorFlow SavedModel directory; convert a Keras "
                            "model first with `edgekit export`")
    else:
        with open(path, "rb") as f:
            tflite_bytes = f.read()
    from edgekit.model_io.tflite_check import validate_tflite

    validate_tflite(path, tflite_bytes)  # a truncated or fuzzed file: one line here, not a native crash
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
    kinds = None
    if isinstance(x, dict):
        measurement, kinds = _with_quality_per_output(measurement, keras, x, y, agreement)
    else:
        measurement = _with_quality(measurement, keras, x, y, agreement)
    predicted, note = _predicted_latency(profile, keras, precision)
    return BenchResult(path, measurement, precision, predicted, note, profile.name if profile else None, kinds)


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
    from edgekit.runners.base import io_names

    model = read_model(tflite_bytes)
    subgraph = model.subgraphs[0]
    shape = (None, *ints(subgraph.tensors[ints(subgraph.inputs)[0]].shape)[1:])
    input_names, output_names = io_names(tflite_bytes)
    if len(input_names) > 1 or len(output_names) > 1:  # by name: {input: samples}, {output: labels}
        from edgekit.data import load_named_arrays

        shapes = [(None, *ints(subgraph.tensors[i].shape)[1:]) for i in ints(subgraph.inputs)]
        if not isinstance(data, (str, os.PathLike, dict)):
            raise BadInputError(f"this model has inputs {list(input_names)} and outputs {list(output_names)}: pass "
                                "--data as an .npz with one array per input name and labels y_<output name>")
        inputs, labels, _ = load_named_arrays(data, input_names, shapes, output_names)
        return ({name: x[:CHECK_SAMPLES] for name, x in zip(input_names, inputs)},
                {name: y[:CHECK_SAMPLES] for name, y in labels.items()})
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


def _with_quality_per_output(measurement, keras, x: dict, labels: dict, agreement):
    """Accuracy per labelled class head and agreement with Keras per output, by name; and the kinds."""
    import dataclasses

    from edgekit.workflows.export_outputs import keras_outputs, output_kinds

    outputs = measurement.outputs_by_name
    if outputs is None:
        return measurement, None
    changes: dict = {"accuracy_by_output": {
        name: float(np.mean(outputs[name].argmax(1) == np.asarray(y).astype(np.int64)))
        for name, y in labels.items() if np.asarray(y).ndim == 1 and outputs[name].ndim == 2
        and outputs[name].shape[1] > 1} or None}
    kinds = None
    if keras is not None:
        if sorted(keras.input_names) != sorted(x) or sorted(keras.output_names) != sorted(outputs):
            raise BadInputError(f"--model has inputs {list(keras.input_names)} and outputs {list(keras.output_names)},"
                                f" the .tflite file {list(x)} and {list(outputs)}; pass the model it was exported from")
        reference = dict(zip(keras.output_names, keras_outputs(keras, [x[name] for name in keras.input_names])))
        changes["agreement_by_output"] = {name: agreement(reference[name], y) for name, y in outputs.items()}
        changes["agreement_reference"] = "keras"
        kinds = output_kinds(keras, labels)
    return dataclasses.replace(measurement, **changes), kinds


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
