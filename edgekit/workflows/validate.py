"""validate(): per-layer error of a .tflite against the Keras model it came from, on LiteRT and TFLite Micro.

    >>> report = validate("build/teacher.tflite", reference="teacher.h5", data="val.npz")   # doctest: +SKIP
    >>> report.runtimes[0].layers[0].layer, report.runtimes[0].output.snr_db                 # doctest: +SKIP

Runtimes: LiteRT always; TFLite Micro too when the --device profile runs TFLM (it must run there, or
the command fails), or when no device is given and TFLM can run the model (otherwise a note says why).
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass

import numpy as np

from edgekit.errors import BadInputError, UnsupportedModelError

DEFAULT_SAMPLES = 200


@dataclass(frozen=True)
class ValidationReport:
    model_path: str
    reference_path: str
    samples: int
    runtimes: tuple  # edgekit.export.layer_outputs.RuntimeErrors, LiteRT first
    notes: tuple[str, ...]


def validate(model_path: str | os.PathLike, reference: str | os.PathLike, data: str | os.PathLike,
             device: str | None = None, samples: int = DEFAULT_SAMPLES, trust: bool = False) -> ValidationReport:
    """Compare every matched layer and the final output of MODEL_PATH (.tflite) with the Keras REFERENCE on DATA."""
    from edgekit.data import load_data
    from edgekit.export.layer_outputs import layer_errors
    from edgekit.model_io import load_keras

    if samples < 1:
        raise BadInputError(f"--samples {samples}: give at least 1")
    path = os.fspath(model_path)
    tflite_bytes = _read_tflite(path)
    model, _ = load_keras(reference, trust=trust)
    dataset = load_data(data, model_input_shape=model.input_shape)
    if len(dataset) == 0:
        raise BadInputError(f"{data}: no samples")
    x = dataset.x[np.linspace(0, len(dataset) - 1, min(samples, len(dataset))).astype(int)]
    runtime = _device_runtime(device)
    notes = list(dataset.notices)
    results = [layer_errors(model, tflite_bytes, x, "litert")]
    if runtime in (None, "tflm"):
        try:
            results.append(layer_errors(model, tflite_bytes, x, "tflm"))
        except UnsupportedModelError as exc:
            if runtime == "tflm":
                raise UnsupportedModelError(f"{path}: does not run on {device} (TFLite Micro): {exc}") from exc
            notes.append(f"TFLite Micro not compared: {exc}")
    if not results[0].layers:
        notes.append(f"{path}: no tensor names match a layer of {os.fspath(reference)} (names stripped, or another "
                     "model): only the final output is compared")
    return ValidationReport(path, os.fspath(reference), len(x), tuple(results), tuple(notes))


def _read_tflite(path: str) -> bytes:
    if not os.path.isfile(path):
        raise BadInputError(f"{path}: no such file")
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8 or blob[4:8] != b"TFL3":
        raise BadInputError(f"{path}: not a TFLite flatbuffer (no 'TFL3' identifier); pass the .tflite file")
    return blob


def _device_runtime(device: str | None) -> str | None:
    if device is None:
        return None
    from edgekit.profiles import load_profile

    return load_profile(device).runtime


def report_json(report: ValidationReport) -> dict:
    return {"model": report.model_path, "reference": report.reference_path, "samples": report.samples,
            "runtimes": [{"runtime": r.runtime, "output": r.output.as_dict(), "unmatched_layers": list(r.unmatched),
                          "layers": [{"layer": e.layer, "tensor": e.tensor, "dtype": e.dtype, **e.stats.as_dict()}
                                     for e in r.layers]} for r in report.runtimes],
            "notes": list(report.notes)}


def report_html(report: ValidationReport) -> str:
    """An HTML fragment (a <section> with one table per runtime) for the fit report."""
    parts = [(f"<section class='validation'><h2>Per-layer error: {html.escape(report.model_path)} vs "
              f"{html.escape(report.reference_path)} ({report.samples} samples)</h2>")]
    for r in report.runtimes:
        parts.append(f"<h3>{html.escape(r.runtime)}: output SNR {r.output.snr_db:.1f} dB, cosine "
                     f"{r.output.cosine:.4f}</h3><table><tr><th>layer</th><th>type</th><th>MSE</th><th>cosine</th>"
                     "<th>max |err|</th><th>SNR dB</th></tr>")
        for e in r.layers:
            s = e.stats
            parts.append(f"<tr><td>{html.escape(e.layer)}</td><td>{e.dtype}</td><td>{s.mse:.3g}</td>"
                         f"<td>{s.cosine:.4f}</td><td>{s.max_abs:.3g}</td><td>{s.snr_db:.1f}</td></tr>")
        parts.append("</table>")
    parts += [f"<p>{html.escape(n)}</p>" for n in report.notes]
    return "".join(parts) + "</section>"
