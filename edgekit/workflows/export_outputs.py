"""`export` and `bench` for models with several inputs or outputs: samples per input, a check per output.

The data layout (an .npz, or a dict of arrays): one array per input, named after the Keras input or
x0, x1, ... in model.inputs order; labels y_<output name> (y for a lone output), any subset of outputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from edgekit.errors import BadInputError, UnsupportedModelError

SYNTHETIC_SAMPLES = 200


@dataclass(frozen=True)
class OutputCheck:
    """One output's share of a ConversionCheck: class heads need top-1 agreement, others a small error."""

    name: str                     # the Keras output name (also the TFLite signature's)
    kind: str                     # "class" or "regression"
    max_abs_error: float
    mean_abs_error: float
    top1_agreement: float | None  # class heads only
    threshold: str
    passed: bool
    keras_accuracy: float | None = None   # class heads with labels y_<name>
    tflite_accuracy: float | None = None

    def to_dict(self) -> dict:
        return {"kind": self.kind, "max_abs_error": self.max_abs_error, "mean_abs_error": self.mean_abs_error,
                "top1_agreement": self.top1_agreement, "threshold": self.threshold, "passed": self.passed,
                "keras_accuracy": self.keras_accuracy, "tflite_accuracy": self.tflite_accuracy}


@dataclass(frozen=True, eq=False)  # eq=False: holds numpy arrays
class NamedSamples:
    """Samples for a model with several inputs or outputs: x per input (model.inputs order), labels by output."""

    x: tuple[np.ndarray, ...]
    labels: dict
    source: str
    notices: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.x[0])

    @property
    def y(self):
        return None  # no single label array: see labels

    def take(self, index: np.ndarray) -> NamedSamples:
        return NamedSamples(tuple(x[index] for x in self.x), {k: v[index] for k, v in self.labels.items()},
                            self.source, self.notices)


def named_samples(data, model, val_fraction: float, seed: int = 0) -> tuple[NamedSamples, NamedSamples]:
    """(train, val) from a path, a dict of arrays, or (inputs, labels); both the whole set below 10 samples."""
    from edgekit.data import load_named_arrays

    source = data
    if isinstance(data, tuple) and len(data) == 2:  # (inputs, labels) from the Python API
        inputs, labels = data
        if not isinstance(inputs, dict):
            inputs = {f"x{i}": x for i, x in enumerate(inputs if isinstance(inputs, (list, tuple)) else [inputs])}
        if labels is None:
            labels = {}
        elif not isinstance(labels, dict):
            labels = {"y": labels}
        source = {**inputs, **{(k if k == "y" else f"y_{k}"): v for k, v in labels.items()}}
    elif not isinstance(data, (dict, str, os.PathLike)):
        raise BadInputError(f"model {model.name!r} has several inputs or outputs: pass data as an .npz path, a dict "
                            "of arrays (one per input name, labels y_<output name>) or (inputs, labels)")
    shapes = model.input_shape if isinstance(model.input_shape, list) else [model.input_shape]
    x, labels, notices = load_named_arrays(source, list(model.input_names), shapes, list(model.output_names))
    samples = NamedSamples(tuple(x), labels, os.fspath(data) if isinstance(data, (str, os.PathLike)) else "<arrays>",
                           notices)
    n = len(samples)
    if n < 10:
        return samples, samples
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(n - 1, max(1, round(n * val_fraction)))
    return samples.take(np.sort(order[n_val:])), samples.take(np.sort(order[:n_val]))


def output_kinds(model, labels: dict | None = None) -> dict[str, str]:
    """"class" or "regression" per Keras output name: class when labels y_<name> are class indices or the
    head ends in a softmax; regression otherwise (a bare logits head without labels is checked as one)."""
    labels = labels or {}
    shapes = model.output_shape if isinstance(model.output_shape, list) else [model.output_shape]
    kinds = {}
    for name, shape in zip(model.output_names, shapes):
        width = int(shape[-1]) if len(shape) == 2 and shape[-1] is not None else 1
        y = labels.get(name)
        if y is not None:
            y = np.asarray(y)
            integral = y.dtype.kind in "biu" or bool(np.all(y == np.round(y)))
            is_class = width > 1 and y.ndim == 1 and integral
        else:
            is_class = width > 1 and _ends_in_softmax(model, name)
        kinds[name] = "class" if is_class else "regression"
    return kinds


def _ends_in_softmax(model, name: str) -> bool:
    try:
        layer = model.get_layer(name)
    except ValueError:
        return False
    activation = getattr(getattr(layer, "activation", None), "__name__", "")
    return type(layer).__name__ == "Softmax" or activation == "softmax"


def keras_outputs(model, xs) -> list[np.ndarray]:
    """The Keras model's outputs as a list in model.outputs order, on inputs in model.inputs order."""
    found = model.predict(list(xs) if len(xs) > 1 else xs[0], verbose=0, batch_size=256)
    return [np.asarray(y) for y in (found if isinstance(found, list) else [found])]


def tflite_outputs(model, tflite_bytes: bytes, xs) -> list[np.ndarray]:
    """The converted model's outputs on LiteRT, fed and read by the Keras names, in model.outputs order."""
    from edgekit.runners.litert import predict_named

    found = predict_named(tflite_bytes, dict(zip(model.input_names, xs)))
    missing = [n for n in model.output_names if n not in found]
    if missing:
        raise UnsupportedModelError(f"model {model.name!r}: the converted model's outputs {list(found)} are not "
                                    f"named after the Keras outputs {list(model.output_names)}; reconvert it with "
                                    "edgekit export")
    return [found[n] for n in model.output_names]


def check_outputs(original, converted_from, tflite_bytes: bytes, val: NamedSamples | None, min_top1: float,
                  max_relative_error: float, limit: int, seed: int) -> tuple[int, str, tuple[OutputCheck, ...]]:
    """(samples, "data" | "synthetic", one OutputCheck per output) for a model with several inputs or outputs:
    the TFLite outputs against those of the Keras model they were converted from, on up to `limit` samples."""
    from edgekit.runners.agreement import agreement

    if val is not None:
        xs, labels, on = [x[:limit] for x in val.x], {k: v[:limit] for k, v in val.labels.items()}, "data"
    else:
        rng = np.random.default_rng(seed)
        shapes = converted_from.input_shape if isinstance(converted_from.input_shape, list) else [
            converted_from.input_shape]
        xs = [rng.standard_normal((SYNTHETIC_SAMPLES, *map(int, s[1:]))).astype(np.float32) for s in shapes]
        labels, on = {}, "synthetic"
    reference = keras_outputs(converted_from, xs)
    outputs = tflite_outputs(converted_from, tflite_bytes, xs)
    user = keras_outputs(original, xs) if labels and original is not converted_from else reference
    kinds = output_kinds(converted_from, labels)
    checks = []
    for i, name in enumerate(converted_from.output_names):
        found = agreement(reference[i], outputs[i])
        keras_acc = tflite_acc = None
        if kinds[name] == "class":
            top1 = found.top1_agreement
            passed = bool(top1 >= min_top1 and np.isfinite(found.max_abs_error))
            threshold = f"top-1 agreement >= {min_top1:.0%}"
            if name in labels:
                y = np.asarray(labels[name]).astype(np.int64)
                keras_acc = float(np.mean(user[i].argmax(1) == y))
                tflite_acc = float(np.mean(outputs[i].argmax(1) == y))
        else:
            top1 = None
            relative = found.mean_abs_error / (found.reference_max_abs or 1.0)
            passed = bool(np.isfinite(relative) and relative <= max_relative_error)
            threshold = f"mean |error| <= {max_relative_error:.0%} of the largest |output|"
        checks.append(OutputCheck(name, kinds[name], found.max_abs_error, found.mean_abs_error, top1, threshold,
                                  passed, keras_acc, tflite_acc))
    return len(xs[0]), on, tuple(checks)
