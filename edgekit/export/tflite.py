"""Convert a tf_keras model to TFLite at a chosen precision, list its ops, and check it against Keras.

    >>> result = convert(model, "int8", representative_data=x_train)      # doctest: +SKIP
    >>> tflite_op_list(result.tflite_bytes)                               # doctest: +SKIP
    ['QUANTIZE', 'EXPAND_DIMS', 'CONV_2D', ..., 'FULLY_CONNECTED', 'DEQUANTIZE']

Every model is converted at a fixed batch size of 1 (a concrete function with a static [1, ...] input),
so no op computes a shape at run time: keras.applications models with include_top=True otherwise get a
SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE chain that TFLite Micro cannot run.

Precisions:
    float32       no optimisation
    float16       weights stored as float16, dequantised to float32 at load (compute stays float32)
    dynamic_int8  weights int8, activations float, quantised on the fly (no calibration data)
    int8          weights and activations int8, calibrated on representative data; builtin int8
                  kernels only, so the model runs on TFLite Micro. With int8_io the input and output
                  tensors are int8 too (otherwise float32 with QUANTIZE / DEQUANTIZE at the ends).
                  A quantization-aware-trained model (edgekit.export.qat) converts with its own
                  learned ranges instead of calibration.

sparse=True adds the converter's sparse weight encoding (see edgekit.export.sparse for what runs it).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from edgekit.errors import BadInputError, UnsupportedModelError
from edgekit.model_io.flatbuffer import infer_precision
from edgekit.precisions import PRECISIONS

CALIBRATION_SAMPLES = 200  # the TFLite guide's 100-500; more adds converter time, not accuracy here
SYNTHETIC_CALIBRATION_WARNING = (
    "int8 calibrated on synthetic standard-normal inputs, not real data: activation ranges are guesses "
    "and accuracy is unverified; pass representative_data (a few hundred training samples)"
)
# The converter says this for every int8-io conversion; it is not about the user's model.
_BENIGN_CONVERTER_WARNINGS = ("Statistics for quantized inputs were expected",)


@dataclass(frozen=True)
class ConversionResult:
    """A converted model: flatbuffer bytes, how it was quantised, and what the user should know.

    warnings is a tuple of one-line messages (edgekit's own and the converter's).
    """

    tflite_bytes: bytes
    precision: str
    calibrated_on: str | None  # "data", "synthetic", "qat" (learned ranges) or None (no activations quantised)
    int8_io: bool = False
    warnings: tuple[str, ...] = ()
    sparse: bool = False       # converted with the sparse weight encoding

    @property
    def size_bytes(self) -> int:
        return len(self.tflite_bytes)


def convert(model, precision: str, representative_data: np.ndarray | None = None,
            int8_io: bool = False, calibration_samples: int = CALIBRATION_SAMPLES,
            seed: int = 0, sparse: bool = False) -> ConversionResult:
    """Convert a tf_keras model to TFLite flatbuffer bytes at `precision` (one of PRECISIONS), batch 1.

    representative_data: float samples shaped (N, *model input) used to calibrate "int8" (up to
    `calibration_samples` of them, picked with `seed`); without it, synthetic inputs are used and
    the result carries a warning. int8_io=True (int8 only) makes the input and output tensors int8.
    sparse=True stores sparse weights sparsely (and densely again where LiteRT cannot load them, see
    edgekit.export.sparse). The model is not modified.
    """
    if precision not in PRECISIONS:
        raise BadInputError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if int8_io and precision != "int8":
        raise BadInputError(f"int8_io needs precision 'int8', not {precision!r}")
    input_shape = _single_input_shape(model)
    from edgekit._tf import _stderr_silenced, tensorflow

    tf = tensorflow()
    qat = is_quantization_aware(model)
    if qat and precision != "int8":
        raise BadInputError(f"model {model.name!r} is quantization-aware trained: convert it with precision 'int8'")
    notes: list[str] = []
    calibrated_on = None
    with _stderr_silenced():
        converter = _batch1_converter(tf, model, input_shape)
    optimizations = [] if precision == "float32" else [tf.lite.Optimize.DEFAULT]
    if sparse:
        optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    converter.optimizations = optimizations
    if precision == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if precision == "int8":
        samples, calibrated_on = _calibration_samples(representative_data, input_shape, calibration_samples, seed)
        if qat:  # ranges come from the fake-quant layers; the converter still wants samples for the rest
            calibrated_on = "qat"
        elif calibrated_on == "synthetic":
            notes.append(SYNTHETIC_CALIBRATION_WARNING)
        converter.representative_dataset = lambda: _one_at_a_time(samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8

    with warnings.catch_warnings(record=True) as caught, _stderr_silenced():
        warnings.simplefilter("always")
        try:
            tflite_bytes = bytes(converter.convert())
        except Exception as exc:  # ConverterError and friends: the first line names the op at fault
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UnsupportedModelError(
                f"TFLite conversion of {model.name!r} to {precision} failed: {first}"
            ) from exc
    for w in caught:
        message = str(w.message).strip().splitlines()[0]
        if not any(benign in message for benign in _BENIGN_CONVERTER_WARNINGS):
            notes.append(f"converter: {message}")
    if precision == "dynamic_int8" and infer_precision(tflite_bytes) == "float32":
        notes.append("dynamic_int8: every weight tensor has fewer than 1024 elements, which the converter keeps in "
                     "float32: the model is unchanged; use int8")
    result = ConversionResult(tflite_bytes, precision, calibrated_on, int8_io, tuple(notes), sparse)
    if sparse:
        dense = convert(model, precision, representative_data, int8_io, calibration_samples, seed, sparse=False)
        result = _checked_sparse(result, dense, input_shape, seed)
    return result


def _batch1_converter(tf, model, input_shape: tuple[int, ...]):
    """A converter over the model traced with a static [1, *input_shape] input (no run-time shape ops)."""
    dtype = model.inputs[0].dtype if getattr(model, "inputs", None) else tf.float32
    function = tf.function(lambda x: model(x, training=False))
    concrete = function.get_concrete_function(tf.TensorSpec([1, *input_shape], dtype))
    return tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)


def is_quantization_aware(model) -> bool:
    """Whether a tf_keras model carries tfmot fake-quantisation (QuantizeWrapper / QuantizeLayer) layers."""
    return any(type(layer).__name__ in ("QuantizeWrapper", "QuantizeWrapperV2", "QuantizeLayer")
               for layer in getattr(model, "layers", ()))


SPARSE_MISMATCH_TOLERANCE = 0.05  # of the dense model's largest |output|: kernels round differently


def _checked_sparse(result: ConversionResult, dense: ConversionResult, input_shape: tuple[int, ...],
                    seed: int) -> ConversionResult:
    """The sparse conversion if LiteRT loads it and it computes what the dense one does; else the dense one.

    int8 weights behind DENSIFY feeding ops XNNPACK cannot prepare are first stored densely again.
    """
    import dataclasses

    from edgekit.export.sparse import densify_weights
    from edgekit.runners.litert import predict

    notes = list(result.warnings)
    tflite_bytes = result.tflite_bytes
    if result.precision in ("int8", "dynamic_int8"):
        consumers = None if result.precision == "dynamic_int8" else ("FULLY_CONNECTED",)
        tflite_bytes, count = densify_weights(tflite_bytes, consumers=consumers)
        if count:
            notes.append(f"sparse: {count} int8 weight tensor(s) stored densely again: ai-edge-litert's XNNPACK "
                         "delegate fails to prepare int8 ops fed by DENSIFY")
    x = np.random.default_rng(seed).standard_normal((16, *input_shape)).astype(np.float32)
    reference = predict(dense.tflite_bytes, x)
    try:
        found = predict(tflite_bytes, x)
        error = float(np.max(np.abs(found - reference))) if np.all(np.isfinite(found)) else float("inf")
    except BadInputError as exc:
        error, found = float("inf"), str(exc)
    limit = SPARSE_MISMATCH_TOLERANCE * float(np.max(np.abs(reference)) or 1.0)
    if error > limit:
        why = found if isinstance(found, str) else f"max difference {error:.3g} from the dense conversion"
        note = f"sparse encoding not used: LiteRT runs the sparse {result.precision} model wrongly ({why})"
        return dataclasses.replace(dense, warnings=(*dense.warnings, note))
    return dataclasses.replace(result, tflite_bytes=tflite_bytes, warnings=tuple(notes))


def _single_input_shape(model) -> tuple[int, ...]:
    shapes = model.input_shape
    if isinstance(shapes, list):
        if len(shapes) != 1:
            raise UnsupportedModelError(f"model {model.name!r} has {len(shapes)} inputs; edgekit converts "
                                        "single-input models")
        shapes = shapes[0]
    if any(d is None for d in shapes[1:]):
        raise UnsupportedModelError(f"model {model.name!r} input shape {shapes} has unknown dimensions past "
                                    "the batch; rebuild it with a fixed input shape")
    return tuple(int(d) for d in shapes[1:])


def _calibration_samples(data: np.ndarray | None, input_shape: tuple[int, ...], limit: int,
                         seed: int) -> tuple[np.ndarray, str]:
    rng = np.random.default_rng(seed)
    if data is None:
        return rng.standard_normal((min(limit, 100), *input_shape)).astype(np.float32), "synthetic"
    data = np.asarray(data, dtype=np.float32)
    if tuple(data.shape[1:]) != input_shape or len(data) == 0:
        raise BadInputError(f"representative_data shaped {data.shape} does not match the model input "
                            f"(N, {', '.join(map(str, input_shape))}); pass samples batch first")
    if len(data) > limit:
        data = data[np.sort(rng.choice(len(data), size=limit, replace=False))]
    return data, "data"


def _one_at_a_time(samples: np.ndarray) -> Iterator[list[np.ndarray]]:
    for sample in samples:
        yield [sample[None]]
