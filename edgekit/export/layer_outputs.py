"""Per-layer outputs of a Keras model and the matching intermediate tensors of its TFLite conversion.

    >>> matched = match_tensors(keras_model, tflite_bytes)                       # doctest: +SKIP
    >>> errors = layer_errors(keras_model, tflite_bytes, x_val, runtime="tflm")  # doctest: +SKIP
    >>> errors.layers[0].layer, errors.layers[0].stats.snr_db                    # worst layer first

Mapping: the converter names an op's output tensor after the TensorFlow ops fused into it, e.g.
`model/conv1/Relu;model/conv1/Conv1D` (several names joined by ';'). The first name's path component that
is a Keras layer name gives the layer; among a layer's tensors, the last one computed with the layer's
number of output elements per sample is its output (a Conv1D's [N, 14, 8] is TFLite's [N, 1, 14, 8]).
QUANTIZE / DEQUANTIZE tensors inserted by a quantiser are used only when nothing else matches. Layers
fused into the next one (a BatchNormalization folded into its conv, an activation fused into a
Dense) have no tensor of their own and are listed as unmatched. The model's output layer, which the
converter names `StatefulPartitionedCall:0`, is matched to the model's output tensor. A file whose names were stripped
(an
MCU export) matches no layer: only the final output is compared.

Intermediates come from LiteRT with experimental_preserve_all_tensors and its built-in kernels (the
XNNPACK delegate would keep them inside the delegate), and from TFLite Micro's kPreserveAllTensors
interpreter; integer tensors are dequantised with their own scale and zero point.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from edgekit.costmodel.sensitivity import ErrorStats, error_stats, worst_first
from edgekit.errors import BadInputError, UnsupportedModelError
from edgekit.runners.base import captured_stderr, dequantize, to_input_tensor

RUNTIMES = ("litert", "tflm")
_REQUANTISE_OPS = ("QUANTIZE", "DEQUANTIZE")
_TFLM_MIN_ARENA_BYTES = 1 << 20


@dataclass(frozen=True)
class MatchedTensor:
    """A Keras layer and the TFLite tensor that holds its output."""

    layer: str
    tensor_index: int
    tensor_name: str
    dtype: str          # the TFLite tensor's type: int8, int16, float32 ...
    elements: int       # per sample


@dataclass(frozen=True)
class LayerError:
    layer: str
    tensor: str
    dtype: str
    stats: ErrorStats


@dataclass(frozen=True)
class RuntimeErrors:
    """Per-layer and final-output error of one runtime's run of the TFLite model against Keras."""

    runtime: str
    layers: tuple[LayerError, ...]   # worst first
    output: ErrorStats
    unmatched: tuple[str, ...]       # Keras layers with no tensor of their own (fused, folded, names stripped)


def keras_layer_outputs(model, x: np.ndarray, layers: list[str] | None = None) -> dict[str, np.ndarray]:
    """Float outputs (N, ...) of the model's top-level layers with a single output tensor, by layer name."""
    from edgekit._tf import tf_keras

    keras = tf_keras()
    candidates = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"
                  and (layers is None or layer.name in layers) and _single_output(layer)]
    if not candidates:
        return {}
    probe = keras.Model(model.inputs, [layer.output for layer in candidates])
    outputs = probe.predict(np.asarray(x, np.float32), batch_size=64, verbose=0)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    return {layer.name: np.asarray(out, np.float32) for layer, out in zip(candidates, outputs, strict=True)}


def _single_output(layer) -> bool:
    try:
        return not isinstance(layer.output, (list, tuple))
    except (AttributeError, ValueError):  # a layer used twice has no single .output
        return False


def match_tensors(model, tflite_bytes: bytes) -> tuple[list[MatchedTensor], list[str]]:
    """(matched tensors in execution order, unmatched Keras layer names) for a tf_keras model and its .tflite."""
    interpreter = _litert(tflite_bytes)
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    sizes = {layer.name: _elements(layer) for layer in model.layers
             if type(layer).__name__ != "InputLayer" and _single_output(layer)}
    found: dict[str, list[tuple[bool, MatchedTensor]]] = {}
    for op in interpreter._get_ops_details():
        for index in op["outputs"]:
            detail = details.get(int(index))
            if detail is None:
                continue
            layer = _layer_of(detail["name"], sizes)
            if layer is None or _per_sample(detail["shape"]) != sizes[layer]:
                continue
            tensor = MatchedTensor(layer, int(index), detail["name"], np.dtype(detail["dtype"]).name, sizes[layer])
            found.setdefault(layer, []).append((op["op_name"] in _REQUANTISE_OPS, tensor))
    output_layers = [name for name in getattr(model, "output_names", []) if name in sizes and name not in found]
    outputs = interpreter.get_output_details()
    if len(output_layers) == 1 and len(outputs) == 1 and _per_sample(outputs[0]["shape"]) == sizes[output_layers[0]]:
        detail = details[int(outputs[0]["index"])]  # the converter names the last op StatefulPartitionedCall:0
        found[output_layers[0]] = [(False, MatchedTensor(output_layers[0], int(detail["index"]), detail["name"],
                                                         np.dtype(detail["dtype"]).name, sizes[output_layers[0]]))]
    matched = []
    for candidates in found.values():
        own = [t for requant, t in candidates if not requant]
        matched.append((own or [t for _, t in candidates])[-1])
    order = [int(i) for op in interpreter._get_ops_details() for i in op["outputs"]]
    matched.sort(key=lambda t: order.index(t.tensor_index))
    unmatched = [name for name in sizes if name not in found]
    return matched, unmatched


def _layer_of(tensor_name: str, layer_names) -> str | None:
    first = tensor_name.split(";")[0]
    for part in first.split("/")[1:]:
        if part in layer_names:
            return part
    return None


def _elements(layer) -> int | None:
    shape = layer.output_shape
    if isinstance(shape, list) or any(d is None for d in shape[1:]):
        return None
    return int(np.prod(shape[1:], dtype=np.int64))


def _per_sample(shape) -> int:
    shape = [int(d) for d in shape]
    return int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else int(np.prod(shape, dtype=np.int64))


def tflite_intermediates(tflite_bytes: bytes, x: np.ndarray, tensors: list[int],
                         runtime: str = "litert") -> tuple[dict[int, np.ndarray], np.ndarray]:
    """({tensor index: float values (N, elements)}, final output (N, elements)) of the model run on x, one
    sample per invoke (models are converted at batch 1)."""
    if runtime not in RUNTIMES:
        raise BadInputError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
    interpreter = _litert(tflite_bytes)
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
        raise UnsupportedModelError(f"validation handles one input and one output; this model has {len(inputs)} "
                                    f"inputs and {len(outputs)} outputs")
    in_detail, out_index = inputs[0], int(outputs[0]["index"])
    shape = [int(d) for d in in_detail["shape"]]
    x = np.asarray(x, np.float32)
    if tuple(x.shape[1:]) != tuple(shape[1:]):
        raise BadInputError(f"samples shaped {tuple(x.shape)} do not match the TFLite model input {tuple(shape)}")
    wanted = list(dict.fromkeys([*tensors, out_index]))
    micro = _tflm(tflite_bytes, details) if runtime == "tflm" else None
    values: dict[int, list[np.ndarray]] = {i: [] for i in wanted}
    for sample in x:
        tensor = to_input_tensor(sample[None], in_detail["dtype"], _quant(in_detail))
        try:
            if micro is None:
                interpreter.set_tensor(in_detail["index"], tensor)
                interpreter.reset_all_variables()  # a fused LSTM's state must not carry over between samples
                interpreter.invoke()
                read = interpreter.get_tensor
            else:
                micro.set_input(tensor, 0)
                micro.reset()
                micro.invoke()
                read = _tflm_reader(micro)
        except (RuntimeError, ValueError) as exc:
            first = " ".join(str(exc).split())[:200]
            raise UnsupportedModelError(f"{runtime} failed to run the TFLite model: {first}") from exc
        for i in wanted:
            raw = read(i)
            q = _quant(details[i])
            values[i].append(dequantize(raw, *q) if q else np.asarray(raw, np.float32))
    out = {i: np.stack([v.reshape(-1) for v in values[i]]) for i in tensors}
    return out, np.stack([v.reshape(-1) for v in values[out_index]])


def _tflm_reader(micro):
    return lambda i: micro.GetTensor(i, 0)["tensor_data"]


def layer_errors(model, tflite_bytes: bytes, x: np.ndarray, runtime: str = "litert") -> RuntimeErrors:
    """Error of each matched layer's TFLite tensor and of the final output vs the Keras model, worst first."""
    matched, unmatched = match_tensors(model, tflite_bytes)
    reference = keras_layer_outputs(model, x, [t.layer for t in matched])
    from edgekit.runners.isolated import call_isolated

    # the interpreter runs in the isolated worker: a kernel that aborts becomes UnsupportedModelError
    values, final = call_isolated(tflite_intermediates, tflite_bytes, x, [t.tensor_index for t in matched], runtime,
                                  what=f"a {len(tflite_bytes)} byte model", stage=f"per-layer run on {runtime}",
                                  timeout_s=600.0)
    keras_final = np.asarray(model.predict(np.asarray(x, np.float32), batch_size=64, verbose=0), np.float32)
    named = [(t.layer, error_stats(reference[t.layer], values[t.tensor_index])) for t in matched]
    by_layer = {t.layer: t for t in matched}
    layers = tuple(LayerError(name, by_layer[name].tensor_name, by_layer[name].dtype, stats)
                   for name, stats in worst_first(named))
    output = error_stats(keras_final.reshape(len(x), -1), final.reshape(len(x), -1))
    return RuntimeErrors(runtime, layers, output, tuple(unmatched))


def _quant(detail: dict) -> tuple[float, int] | None:
    scale, zero_point = detail["quantization"]
    return (float(scale), int(zero_point)) if scale and np.issubdtype(np.dtype(detail["dtype"]), np.integer) else None


def _litert(tflite_bytes: bytes):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    if len(tflite_bytes) < 8 or tflite_bytes[4:8] != b"TFL3":
        raise BadInputError(f"not a TFLite flatbuffer ({len(tflite_bytes)} bytes, no 'TFL3' identifier)")
    try:
        with captured_stderr(), warnings.catch_warnings():  # "preserve_all_tensors is for debugging"
            warnings.simplefilter("ignore")
            interpreter = Interpreter(model_content=bytes(tflite_bytes), experimental_preserve_all_tensors=True,
                                      experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        first = " ".join(str(exc).split())[:300]
        raise BadInputError(f"LiteRT could not load the TFLite model: {first}") from exc
    return interpreter


def _tflm(tflite_bytes: bytes, details: dict):
    """A TFLM interpreter that keeps every tensor (arena: all tensors side by side, at least 1 MiB)."""
    from tflite_micro.python.tflite_micro import runtime

    from edgekit.runners.tflm import _raise_for_failure

    total = sum(int(np.prod(d["shape"], dtype=np.int64)) * np.dtype(d["dtype"]).itemsize for d in details.values())
    arena = max(_TFLM_MIN_ARENA_BYTES, 2 * total + 65536)
    with captured_stderr() as log:
        try:
            return runtime.Interpreter.from_bytes(bytes(tflite_bytes), arena_size=int(arena),
                                                  intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
        except RuntimeError:
            pass
    _raise_for_failure(log.text, tflite_bytes, arena)
