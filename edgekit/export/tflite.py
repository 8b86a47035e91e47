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


def convert(model, precision: str, representative_data=None,
            int8_io: bool = False, calibration_samples: int = CALIBRATION_SAMPLES,
            seed: int = 0, sparse: bool = False) -> ConversionResult:
    """Convert a tf_keras model to TFLite flatbuffer bytes at `precision` (one of PRECISIONS), batch 1.

    representative_data: float samples shaped (N, *model input) used to calibrate "int8" (up to
    `calibration_samples` of them, picked with `seed`); for a model with several inputs a list (in
    model.inputs order) or a dict keyed by input name. Without it, synthetic inputs are used and the
    result carries a warning. int8_io=True (int8 only) makes the input and output tensors int8.
    sparse=True stores sparse weights sparsely (and densely again where LiteRT cannot load them, see
    edgekit.export.sparse). The model is not modified. Several outputs get signature names (the Keras
    output names), so runners can return them by name.

    The converter runs in edgekit's worker process (edgekit.runners.isolated): a native crash in it
    (the int8 calibrator segfaults on some graphs) is an UnsupportedModelError naming the model.
    """
    if precision not in PRECISIONS:
        raise BadInputError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if int8_io and precision != "int8":
        raise BadInputError(f"int8_io needs precision 'int8', not {precision!r}")
    shapes = input_shapes(model)
    qat = is_quantization_aware(model)
    if qat and precision != "int8":
        raise BadInputError(f"model {model.name!r} is quantization-aware trained: convert it with precision 'int8'")
    if sparse and (len(shapes) != 1 or len(model.outputs) != 1):
        raise BadInputError(f"model {model.name!r}: the sparse weight encoding is checked on single-input, "
                            "single-output models only; export it with --no-sparse")
    samples = None
    if precision == "int8":
        samples = _calibration_samples(model, representative_data, shapes, calibration_samples, seed)
    from edgekit.export.portable import portable
    from edgekit.runners.isolated import NotPortable, call_isolated

    spec = portable(model, qat)
    arguments = (precision, samples, int8_io, seed, sparse)
    if spec is not None:
        try:
            return call_isolated(_convert_portable, spec, *arguments, what=f"model {model.name!r}",
                                 stage=f"TFLite conversion to {precision}")
        except NotPortable:  # e.g. edgekit's own QAT configs: the worker cannot rebuild them by name
            pass
    return _convert(model, *arguments)


def _convert_portable(spec, *arguments) -> ConversionResult:
    from edgekit.export.portable import rebuild

    return _convert(rebuild(spec), *arguments)


def _convert(model, precision: str, samples, int8_io: bool, seed: int, sparse: bool) -> ConversionResult:
    """The conversion itself, in whichever process runs it; samples: (arrays per input, "data" | "synthetic")."""
    from edgekit._tf import _stderr_silenced, tensorflow
    from edgekit.export.portable import with_rnns_unrolled

    tf = tensorflow()
    qat = is_quantization_aware(model)
    notes: list[str] = []
    calibrated_on = None
    traced = with_rnns_unrolled(model)
    if traced is not model:
        notes.append("GRU / SimpleRNN layers converted unrolled over their time steps (plain TFLite ops "
                     "instead of a WHILE loop)")
    if precision == "int8":
        # qat: ranges come from the fake-quant layers; the converter still wants samples for the rest
        calibrated_on = "qat" if qat else samples[1]
        if calibrated_on == "synthetic":
            notes.append(SYNTHETIC_CALIBRATION_WARNING)
    for trackable in (_variables_holder(tf, traced), traced):
        with _stderr_silenced():
            converter = _batch1_converter(tf, traced, trackable=trackable)
        tflite_bytes, caught = _run_converter(tf, converter, traced, model.name, precision, samples, int8_io, sparse)
        if converter.saved_model_dir is not None:  # the SavedModel route was taken, as with the model itself
            break
    for w in caught:
        message = str(w.message).strip().splitlines()[0]
        if not any(benign in message for benign in _BENIGN_CONVERTER_WARNINGS):
            notes.append(f"converter: {message}")
    if precision == "dynamic_int8" and infer_precision(tflite_bytes) == "float32":
        notes.append("dynamic_int8: every weight tensor has fewer than 1024 elements, which the converter keeps in "
                     "float32: the model is unchanged; use int8")
    result = ConversionResult(tflite_bytes, precision, calibrated_on, int8_io, tuple(notes), sparse)
    if sparse:
        dense = _convert(model, precision, samples, int8_io, seed, sparse=False)
        result = _checked_sparse(result, dense, tuple(int(d) for d in model.input_shape[1:]), seed)
    return result


def _run_converter(tf, converter, traced, name: str, precision: str, samples, int8_io: bool, sparse: bool):
    """(flatbuffer bytes, warnings caught) of one run of a converter set up for `precision`."""
    from edgekit._tf import _stderr_silenced

    optimizations = [] if precision == "float32" else [tf.lite.Optimize.DEFAULT]
    if sparse:
        optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    converter.optimizations = optimizations
    if precision == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if precision == "int8":
        arrays = samples[0]
        names = [_input_name(t) for t in traced.inputs]
        converter.representative_dataset = lambda: _one_at_a_time(arrays, names)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    with warnings.catch_warnings(record=True) as caught, _stderr_silenced():
        warnings.simplefilter("always")
        try:
            return bytes(converter.convert()), caught
        except Exception as exc:  # ConverterError and friends: the first line names the op at fault
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UnsupportedModelError(f"TFLite conversion of {name!r} to {precision} failed: {first}") from exc


def _variables_holder(tf, model):
    """A bare tf.Module tracking the model's variables, for the converter to save instead of the model.

    The converter saves its trackable object as a SavedModel before converting; for a tf_keras model that
    serialises every layer's traced call functions (most of the conversion time of a large model: 60 -> 25 s
    for DenseNet121). The concrete function only needs its captured variables, so the flatbuffer is the same
    byte for byte. When this holder cannot be saved (a resource other than a variable, e.g. a lookup table),
    the converter quietly takes its frozen-graph route: `_convert` then runs again with the model itself.
    """
    holder = tf.Module()
    holder.model_variables = list(model.variables)
    return holder


def _batch1_converter(tf, model, input_shape=None, trackable=None):
    """A converter over the model traced with static [1, ...] inputs (no run-time shape ops).

    input_shape is ignored (every input's own shape is used); kept for callers that pass it.
    trackable: what the converter saves with the function (default: the model; see _variables_holder).

    Several outputs are returned as a dict keyed by Keras output name: the flatbuffer orders outputs
    its own way, and the signature then names them.
    """
    specs = [tf.TensorSpec([1, *shape], tensor.dtype, name=_input_name(tensor))
             for shape, tensor in zip(input_shapes(model), model.inputs)]
    if len(specs) == 1:
        function = tf.function(lambda x: model(x, training=False))
    elif len(model.outputs) == 1:
        function = tf.function(lambda *xs: model(list(xs), training=False))
    if len(model.outputs) > 1:
        names = list(model.output_names)
        if len(specs) == 1:
            function = tf.function(lambda x: dict(zip(names, model(x, training=False))))
        else:
            function = tf.function(lambda *xs: dict(zip(names, model(list(xs), training=False))))
    concrete = function.get_concrete_function(*specs)
    return tf.lite.TFLiteConverter.from_concrete_functions([concrete], model if trackable is None else trackable)


def _input_name(tensor) -> str:
    return str(getattr(tensor, "name", "input")).split(":")[0]


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
    """The one input's shape past the batch axis; UnsupportedModelError for several inputs."""
    shapes = input_shapes(model)
    if len(shapes) != 1:
        raise UnsupportedModelError(f"model {model.name!r} has {len(shapes)} inputs; this step handles "
                                    "single-input models")
    return shapes[0]


def input_shapes(model) -> list[tuple[int, ...]]:
    """Each input's shape past the batch axis, in model.inputs order; refuses unknown dimensions."""
    shapes = model.input_shape
    shapes = shapes if isinstance(shapes, list) else [shapes]
    for shape in shapes:
        if any(d is None for d in shape[1:]):
            raise UnsupportedModelError(f"model {model.name!r} input shape {shape} has unknown dimensions past "
                                        "the batch; rebuild it with a fixed input shape")
    return [tuple(int(d) for d in shape[1:]) for shape in shapes]


def per_input(model, data, what: str = "representative_data") -> list[np.ndarray]:
    """Samples for each model input, in model.inputs order, from an array (one input), a list / tuple of
    arrays, or a dict keyed by input name."""
    names = [_input_name(t) for t in model.inputs]
    if isinstance(data, dict):
        unknown = sorted(set(data) - set(names))
        missing = [n for n in names if n not in data]
        if unknown or missing:
            raise BadInputError(f"{what} keys {sorted(data)} do not match the model inputs {names}; "
                                "pass one array per input name")
        data = [data[n] for n in names]
    elif not isinstance(data, (list, tuple)) or (len(names) == 1 and len(data) != 1):
        data = [data]
    if len(data) != len(names):
        raise BadInputError(f"{what} has {len(data)} arrays for a model with {len(names)} inputs {names}; pass "
                            "one per input (a list in input order or a dict keyed by input name)")
    arrays = [np.asarray(x, dtype=np.float32) for x in data]
    if len({len(x) for x in arrays}) != 1:
        raise BadInputError(f"{what}: the inputs have different sample counts {[len(x) for x in arrays]}")
    return arrays


def _calibration_samples(model, data, shapes: list[tuple[int, ...]], limit: int,
                         seed: int) -> tuple[list[np.ndarray], str]:
    rng = np.random.default_rng(seed)
    if data is None:
        count = min(limit, 100)
        return [rng.standard_normal((count, *shape)).astype(np.float32) for shape in shapes], "synthetic"
    arrays = per_input(model, data)
    for array, shape, tensor in zip(arrays, shapes, model.inputs):
        if tuple(array.shape[1:]) != shape or len(array) == 0:
            where = f" for input {_input_name(tensor)!r}" if len(shapes) > 1 else ""
            raise BadInputError(f"representative_data shaped {array.shape}{where} does not match the model input "
                                f"(N, {', '.join(map(str, shape))}); pass samples batch first")
    if len(arrays[0]) > limit:
        keep = np.sort(rng.choice(len(arrays[0]), size=limit, replace=False))
        arrays = [array[keep] for array in arrays]
    return arrays, "data"


def _one_at_a_time(arrays: list[np.ndarray], names: list[str]) -> Iterator:
    """One sample per step; several inputs as a dict by signature name (a list is fed in an order of
    the calibrator's own, not model.inputs order)."""
    for i in range(len(arrays[0])):
        if len(arrays) == 1:
            yield [arrays[0][i:i + 1]]
        else:
            yield {name: array[i:i + 1] for name, array in zip(names, arrays)}
