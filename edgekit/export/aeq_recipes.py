"""ai-edge-quantizer (AEQ) recipes per Keras layer: int8, int16x8 (int16 activations, int8 weights) or float32.

    >>> blob = quantize_per_layer(float_tflite, {"wide": "int16x8", "up": "float32"}, x_calibration)  # doctest: +SKIP

AEQ's recipes select ops by a regular expression over the op's output tensor names (each followed by ';');
the converter names those tensors `<model>/<layer>/...`, so `^[^;/]+/<layer>/` selects one top-level layer's
ops. AEQ inserts the QUANTIZE / DEQUANTIZE ops between layers of different precision and keeps the model's
input and output float32, unless `integer_io`: then AEQ's INPUT / OUTPUT recipes store the input at the type
of the layer reading it and the output at the type of the layer writing it (int8, or int16 next to an int16x8
layer; a float layer there keeps its side float). That drops the first QUANTIZE and the last DEQUANTIZE and
nothing else: the firmware quantises with the same scale and zero point the QUANTIZE op used, so the outputs
are the float-I/O model's exactly. Calibration ranges are computed here (`tensor_ranges`), for computed tensors
only: AEQ takes a range given for a weight instead of its own per-channel ranges, which made every weight
per-tensor and per-layer 16x8 useless on a layer with one wide channel.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping

import numpy as np

from edgekit.errors import BadInputError, UnsupportedModelError
from edgekit.runners.base import captured_stderr

LAYER_PRECISIONS = ("int8", "int16x8", "float32")
_ACTIVATION_BITS = {"int8": 8, "int16x8": 16}
CALIBRATION_SAMPLES = 200


def layer_regex(layer: str, tensor_name: str | None = None) -> str:
    """The AEQ scope regex selecting the ops of one top-level Keras layer (or exactly `tensor_name`, for the
    output layer whose tensor the converter names `StatefulPartitionedCall:0`). AEQ's scope of an op is its
    output tensor names, each followed by ';'."""
    own = rf"^[^;/]+/{re.escape(layer)}/"
    return own if tensor_name is None else rf"(?:{own}|^{re.escape(tensor_name)};)"


def quantize_per_layer(float_tflite: bytes, precisions: Mapping[str, str], calibration: np.ndarray,
                       samples: int = CALIBRATION_SAMPLES, tensor_names: Mapping[str, str] | None = None,
                       default: str = "int8", integer_io: bool = False) -> bytes:
    """A .tflite with each named layer at its precision and every other op at `default` (int8), float32 input
    and output (integer_io: input and output at the type of the layers next to them).

    float_tflite: the float32 conversion (edgekit.export.tflite.convert(model, "float32")).
    calibration: float samples (N, *input) for the activation ranges (up to `samples` are used).
    tensor_names: {layer: its output tensor's name} for layers whose tensors do not carry the layer name.
    """
    from ai_edge_quantizer import qtyping, quantizer

    for layer, precision in [*precisions.items(), ("(default)", default)]:
        if precision not in LAYER_PRECISIONS:
            raise BadInputError(f"layer {layer!r}: unknown precision {precision!r}; use one of "
                                f"{', '.join(LAYER_PRECISIONS)}")
    ops = [op for op in qtyping.TFLOperationName if op.value not in ("*", "INPUT", "OUTPUT")]
    raised = [name for name, p in precisions.items() if p != default]
    names = dict(tensor_names or {})
    regexes = {n: layer_regex(n, names.get(n)) for n in raised}
    default_regex = "^(?!" + "|".join(regexes.values()) + ")" if raised else ".*"
    configs = [(regexes[n], _ACTIVATION_BITS[precisions[n]]) for n in raised if precisions[n] in _ACTIVATION_BITS]
    if default in _ACTIVATION_BITS:
        configs.insert(0, (default_regex, _ACTIVATION_BITS[default]))
    q = quantizer.Quantizer(bytearray(float_tflite))
    for regex, bits in configs:
        for op in ops:
            try:
                q.add_static_config(regex, op, activation_num_bits=bits, weight_num_bits=8)
            except ValueError:  # AEQ has no such config for this op: the op stays float
                pass
    if integer_io:
        edge_bits = _edge_bits(float_tflite, {n: precisions[n] for n in raised}, regexes, default)
        for op, bits in zip((qtyping.TFLOperationName.INPUT, qtyping.TFLOperationName.OUTPUT), edge_bits):
            if bits is not None:
                q.add_static_config(".*", op, activation_num_bits=bits, weight_num_bits=8)
    _signature(float_tflite)
    x = np.asarray(calibration, np.float32)[:samples]
    try:
        with captured_stderr(), warnings.catch_warnings():  # AEQ's progress bar and debug-mode warnings
            warnings.simplefilter("ignore")
            if not q.need_calibration:  # no op left to quantise: every layer stays float
                return bytes(float_tflite)
            calibration_result = tensor_ranges(float_tflite, x)
            result = q.quantize(calibration_result, enable_progress_report=False)
    except (ValueError, RuntimeError, KeyError) as exc:
        first = " ".join(str(exc).split())[:200]
        raise UnsupportedModelError(f"ai-edge-quantizer could not apply the per-layer recipe: {first}") from exc
    return bytes(result.quantized_model)


def tensor_ranges(float_tflite: bytes, x: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """{tensor name: {"min", "max"}} over every sample, for the model input and every op output (constants
    excluded: AEQ would take a range given for a weight instead of its per-channel ranges), AEQ's format.

    Computed here rather than by `Quantizer.calibrate`: ai-edge-quantizer 0.10 calibrates with the XNNPACK
    delegate, whose fused intermediate tensors are not written back, and its ranges came out of one
    sample (a 16-unit Dense layer's output range 0..28.7 where 300 samples reach 225, input +-1.3 for
    standard-normal data); that made its int8 and 16x8 models 40 % off where the converter's were 2 %.
    """
    from edgekit.export.layer_outputs import _litert

    interpreter = _litert(float_tflite)
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    in_index = interpreter.get_input_details()[0]["index"]
    computed = [in_index, *(int(i) for op in interpreter._get_ops_details() for i in op["outputs"])]
    wanted = sorted({i for i in computed if i >= 0 and np.dtype(details[i]["dtype"]) == np.float32})
    low = {i: np.inf for i in wanted}
    high = {i: -np.inf for i in wanted}
    for sample in np.asarray(x, np.float32):
        interpreter.set_tensor(in_index, sample[None])
        interpreter.invoke()
        for i in wanted:
            value = interpreter.get_tensor(i)
            if value.size:
                low[i], high[i] = min(low[i], float(value.min())), max(high[i], float(value.max()))
    return {details[i]["name"]: {"min": np.array([[low[i]]], np.float32), "max": np.array([[high[i]]], np.float32)}
            for i in wanted if np.isfinite(low[i])}


def _edge_bits(float_tflite: bytes, precisions: Mapping[str, str], regexes: Mapping[str, str],
               default: str) -> tuple[int | None, int | None]:
    """Activation bits of the layers reading the model input and writing its output (None: float, or readers
    at different types)."""
    from edgekit.export.layer_outputs import _litert

    interpreter = _litert(float_tflite)
    names = {d["index"]: d["name"] for d in interpreter.get_tensor_details()}
    model_in = int(interpreter.get_input_details()[0]["index"])
    model_out = int(interpreter.get_output_details()[0]["index"])

    def bits(op) -> int | None:
        scope = "".join(names[int(i)] + ";" for i in op["outputs"] if int(i) >= 0)
        layer = next((n for n, regex in regexes.items() if re.search(regex, scope)), None)
        return _ACTIVATION_BITS.get(precisions[layer] if layer is not None else default)

    ops = interpreter._get_ops_details()
    readers = {bits(op) for op in ops if model_in in [int(i) for i in op["inputs"]]}
    writers = [bits(op) for op in ops if model_out in [int(i) for i in op["outputs"]]]
    return (readers.pop() if len(readers) == 1 else None), (writers[0] if writers else None)


def _signature(float_tflite: bytes) -> tuple[str, str]:
    from ai_edge_litert.interpreter import Interpreter

    signatures = Interpreter(model_content=bytes(float_tflite)).get_signature_list()
    if len(signatures) != 1:
        raise UnsupportedModelError(f"per-layer quantisation needs one signature; the model has {len(signatures)}")
    key, io = next(iter(signatures.items()))
    if len(io["inputs"]) != 1:
        raise UnsupportedModelError(f"per-layer quantisation handles one input; the model has {len(io['inputs'])}")
    return key, io["inputs"][0]
