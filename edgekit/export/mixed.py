"""Per-layer mixed precision: int8, int16x8 (int16 activations, int8 weights) or float32 per Keras layer.

    >>> plan = choose_mixed(model, x_train, x_val, runtime="tflm", profile=load_profile("stm32h743"))  # doctest: +SKIP
    >>> [(c.layer, c.precision) for c in plan.choices], plan.size_bytes - plan.int8_size_bytes       # doctest: +SKIP

The per-layer recipes are applied with Google's ai-edge-quantizer (AEQ) to the model's float .tflite:
a static int8 or int16 activation config per layer (int8 weights, per channel), nothing for a float
layer; AEQ inserts the QUANTIZE / DEQUANTIZE ops between layers of different precision and keeps the
model's input and output float32. AEQ's recipes select ops by a regular expression over the op's output
tensor name; the converter names those tensors `<model>/<layer>/...` (see edgekit.export.layer_outputs),
so `^[^;/]+/<layer>/` selects exactly one top-level layer's ops. Ops whose tensor names no layer (the
converter names the model's last op `StatefulPartitionedCall:0`) take the default, int8.

Choosing (`choose_mixed`): the all-int8 model's final-output error is measured on the target runtime;
each layer's sensitivity is the output SNR when only that layer is float (everything else int8), the
isolation QuantizationDebugger's selective quantisation uses. While the output is worse than
`max_relative_rms`, the most sensitive remaining layer is raised to int16x8, or to float32 when 16x8 does
not gain, keeping a change only if it helps. Kernels are not assumed: every candidate model is loaded
and run by the target runtime's real interpreter (LiteRT, or TFLite Micro), and a precision that runtime
refuses for a layer is skipped and said.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from edgekit.costmodel.sensitivity import ErrorStats, error_stats
from edgekit.errors import BadInputError, UnsupportedModelError
from edgekit.runners.base import captured_stderr

LAYER_PRECISIONS = ("int8", "int16x8", "float32")
_ACTIVATION_BITS = {"int8": 8, "int16x8": 16}
DEFAULT_MAX_RELATIVE_RMS = 0.05    # final-output RMS error / RMS of the float output (SNR 26 dB)
CALIBRATION_SAMPLES = 200
EVALUATION_SAMPLES = 200
MIN_GAIN_DB = 1.0                  # a raise that gains less output SNR than this is not kept


@dataclass(frozen=True)
class LayerChoice:
    layer: str
    precision: str                 # int8 | int16x8 | float32
    alone_float_snr_db: float      # output SNR with only this layer float (higher = more sensitive layer)
    note: str = ""


@dataclass(frozen=True)
class MixedPlan:
    """The chosen per-layer precisions, the model built from them, and what they cost against all-int8."""

    tflite_bytes: bytes
    runtime: str
    choices: tuple[LayerChoice, ...]     # every layer, in model order
    int8_output: ErrorStats              # all-int8 model vs Keras on the evaluation samples
    output: ErrorStats                   # this model vs Keras
    int8_size_bytes: int
    float_size_bytes: int
    int8_latency_ms: float | None        # the profile's cost model (None without a profile)
    latency_ms: float | None
    notes: tuple[str, ...]

    @property
    def size_bytes(self) -> int:
        return len(self.tflite_bytes)

    @property
    def raised(self) -> dict[str, str]:
        return {c.layer: c.precision for c in self.choices if c.precision != "int8"}


def layer_regex(layer: str, tensor_name: str | None = None) -> str:
    """The AEQ scope regex selecting the ops of one top-level Keras layer (or exactly `tensor_name`, for the
    output layer whose tensor the converter names `StatefulPartitionedCall:0`). AEQ's scope of an op is its
    output tensor names, each followed by ';'."""
    own = rf"^[^;/]+/{re.escape(layer)}/"
    return own if tensor_name is None else rf"(?:{own}|^{re.escape(tensor_name)};)"


def quantize_per_layer(float_tflite: bytes, precisions: Mapping[str, str], calibration: np.ndarray,
                       samples: int = CALIBRATION_SAMPLES, tensor_names: Mapping[str, str] | None = None) -> bytes:
    """A .tflite with each named layer at its precision and every other op int8, float32 input and output.

    float_tflite: the float32 conversion (edgekit.export.tflite.convert(model, "float32")).
    calibration: float samples (N, *input) for the activation ranges (up to `samples` are used).
    tensor_names: {layer: its output tensor's name} for layers whose tensors do not carry the layer name.
    """
    from ai_edge_quantizer import qtyping, quantizer

    for layer, precision in precisions.items():
        if precision not in LAYER_PRECISIONS:
            raise BadInputError(f"layer {layer!r}: unknown precision {precision!r}; use one of "
                                f"{', '.join(LAYER_PRECISIONS)}")
    ops = [op for op in qtyping.TFLOperationName if op.value not in ("*", "INPUT", "OUTPUT")]
    raised = [name for name, p in precisions.items() if p != "int8"]
    names = dict(tensor_names or {})
    regexes = {n: layer_regex(n, names.get(n)) for n in raised}
    default_regex = "^(?!" + "|".join(regexes.values()) + ")" if raised else ".*"
    configs = [(default_regex, 8)] + [(regexes[n], _ACTIVATION_BITS[precisions[n]]) for n in raised
                                      if precisions[n] in _ACTIVATION_BITS]
    q = quantizer.Quantizer(bytearray(float_tflite))
    for regex, bits in configs:
        for op in ops:
            try:
                q.add_static_config(regex, op, activation_num_bits=bits, weight_num_bits=8)
            except ValueError:  # AEQ has no such config for this op: the op stays float
                pass
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
    """{tensor name: {"min", "max"}} over every sample, for every op input and output: AEQ's calibration format.

    Computed here rather than by `Quantizer.calibrate`: ai-edge-quantizer 0.10 calibrates with the XNNPACK
    delegate, whose fused intermediate tensors are not written back, and its ranges came out of one
    sample (a 16-unit Dense layer's output range 0..28.7 where 300 samples reach 225, input +-1.3 for
    standard-normal data); that made its int8 and 16x8 models 40 % off where the converter's were 2 %.
    """
    from edgekit.export.layer_outputs import _litert

    interpreter = _litert(float_tflite)
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    wanted = sorted({int(i) for op in interpreter._get_ops_details() for i in [*op["inputs"], *op["outputs"]]
                     if int(i) >= 0 and np.dtype(details[int(i)]["dtype"]) == np.float32})
    in_index = interpreter.get_input_details()[0]["index"]
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


def _signature(float_tflite: bytes) -> tuple[str, str]:
    from ai_edge_litert.interpreter import Interpreter

    signatures = Interpreter(model_content=bytes(float_tflite)).get_signature_list()
    if len(signatures) != 1:
        raise UnsupportedModelError(f"per-layer quantisation needs one signature; the model has {len(signatures)}")
    key, io = next(iter(signatures.items()))
    if len(io["inputs"]) != 1:
        raise UnsupportedModelError(f"per-layer quantisation handles one input; the model has {len(io['inputs'])}")
    return key, io["inputs"][0]


def output_error(model_outputs: np.ndarray, tflite_bytes: bytes, x: np.ndarray, runtime: str) -> ErrorStats:
    """Final-output error of a .tflite run by `runtime` against the Keras outputs (raises if it cannot run)."""
    from edgekit.export.layer_outputs import tflite_intermediates

    _, final = tflite_intermediates(tflite_bytes, x, [], runtime)
    return error_stats(model_outputs.reshape(len(x), -1), final)


def choose_mixed(model, calibration: np.ndarray, evaluation: np.ndarray, runtime: str = "litert",
                 profile=None, max_relative_rms: float = DEFAULT_MAX_RELATIVE_RMS,
                 allowed: tuple[str, ...] = ("int16x8", "float32")) -> MixedPlan:
    """Raise the most sensitive layers of an int8 model to int16x8 / float32 until the output error is small.

    model: tf_keras model; calibration / evaluation: float samples (N, *input); runtime: litert | tflm (every
    candidate is run there); profile: a DeviceProfile whose cost model prices the latency (optional).
    """
    from edgekit.export.layer_outputs import match_tensors
    from edgekit.export.tflite import convert

    bad = [p for p in allowed if p not in LAYER_PRECISIONS[1:]]
    if bad:
        raise BadInputError(f"allowed precisions {bad} unknown; use int16x8 and/or float32")
    x = np.asarray(evaluation, np.float32)[:EVALUATION_SAMPLES]
    reference = np.asarray(model.predict(x, batch_size=64, verbose=0), np.float32)
    float_bytes = convert(model, "float32").tflite_bytes
    matched, _ = match_tensors(model, float_bytes)
    layers = [t.layer for t in matched]
    aliases = {t.layer: t.tensor_name for t in matched if f"/{t.layer}/" not in t.tensor_name.split(";")[0]}
    notes: list[str] = []

    def build(precisions: dict[str, str]) -> tuple[bytes, ErrorStats] | str:
        blob = quantize_per_layer(float_bytes, precisions, calibration, tensor_names=aliases)
        try:
            return blob, output_error(reference, blob, x, runtime)
        except (UnsupportedModelError, BadInputError) as exc:
            return str(exc)

    base = build({})
    if isinstance(base, str):
        raise UnsupportedModelError(f"the all-int8 model does not run on {runtime}: {base}")
    int8_bytes, int8_stats = base
    groups = {layer: consumer_group(model, layer, layers) for layer in layers}
    sensitivity = {}
    for layer in layers:
        alone = build(dict.fromkeys(groups[layer], "float32"))
        sensitivity[layer] = alone[1].snr_db if not isinstance(alone, str) else -math.inf
    current, stats, chosen, why = int8_bytes, int8_stats, {}, {}
    for layer in sorted(layers, key=lambda n: -sensitivity[n]):
        if stats.relative_rms <= max_relative_rms:
            break
        trial = _first_gain(build, chosen, [layer], groups[layer], allowed, stats, runtime, why, notes)
        if trial is not None:
            current, stats, chosen = trial
    if stats.relative_rms > max_relative_rms and "int16x8" in allowed:
        whole = _whole_model_16x8(model, calibration, reference, x, runtime)
        if isinstance(whole, str):
            notes.append(f"whole-model int16x8: {whole}")
        elif whole[1].snr_db >= stats.snr_db + MIN_GAIN_DB:
            notes.append(f"per-layer recipes reached {stats.relative_rms:.1%} RMS error; the converter's whole-model "
                         f"int16x8 reaches {whole[1].relative_rms:.1%} and is used")
            current, stats = whole
            chosen = dict.fromkeys(layers, "int16x8")
    if stats.relative_rms > max_relative_rms:
        notes.append(f"output error still {stats.relative_rms:.1%} RMS after raising {len(chosen)} of "
                     f"{len(layers)} layers (target {max_relative_rms:.1%})")
    choices = tuple(LayerChoice(n, chosen.get(n, "int8"), sensitivity[n], why.get(n, "")) for n in layers)
    int8_ms = mixed_ms = None
    if profile is not None:
        int8_ms, mixed_ms, note = predicted_latency_ms(model, profile, chosen)
        notes.append(note)
    return MixedPlan(current, runtime, choices, int8_stats, stats, len(int8_bytes), len(float_bytes),
                     int8_ms, mixed_ms, tuple(notes))


def _first_gain(build, chosen, alone, group, allowed, stats, runtime, why, notes):
    """The first of (layer alone, layer and its consumers) x allowed precisions that gains MIN_GAIN_DB, or None.

    A tensor's int8 rounding happens where its consumer reads it, so raising a layer often only pays
    together with the layers that read its output.
    """
    sets = [alone] + ([group] if list(group) != list(alone) else [])
    for precision in allowed:
        for names in sets:
            precisions = {**chosen, **{n: max(chosen.get(n, "int8"), precision, key=LAYER_PRECISIONS.index)
                                       for n in names}}
            trial = build(precisions)
            if isinstance(trial, str):
                why[names[0]] = f"{precision} refused by {runtime}: {trial}"
                notes.append(f"{'+'.join(names)}: {why[names[0]]}")
                break
            if trial[1].snr_db >= stats.snr_db + MIN_GAIN_DB:
                return trial[0], trial[1], precisions
    return None


def convert_16x8(model, calibration: np.ndarray, samples: int = CALIBRATION_SAMPLES) -> bytes:
    """The TFLite converter's whole-model 16x8 (int16 activations, int8 weights), float input and output."""
    from edgekit._tf import _stderr_silenced, tensorflow
    from edgekit.export.tflite import _batch1_converter, _single_input_shape

    tf = tensorflow()
    with _stderr_silenced():
        converter = _batch1_converter(tf, model, _single_input_shape(model))
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        x = np.asarray(calibration, np.float32)[:samples]
        converter.representative_dataset = lambda: ([s[None]] for s in x)
        int16x8 = tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        converter.target_spec.supported_ops = [int16x8]
        try:
            return bytes(converter.convert())
        except Exception as exc:  # ConverterError: an op without a 16x8 kernel
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UnsupportedModelError(f"16x8 conversion of {model.name!r} failed: {first}") from exc


def _whole_model_16x8(model, calibration, reference, x, runtime) -> tuple[bytes, ErrorStats] | str:
    try:
        blob = convert_16x8(model, calibration)
        return blob, output_error(reference, blob, x, runtime)
    except (UnsupportedModelError, BadInputError) as exc:
        return str(exc)


def consumer_group(model, layer: str, layers: list[str]) -> list[str]:
    """`layer` and the layers that read its output, followed through layers without weights (pooling,
    reshape, activation) up to and including the first layers with weights; only names in `layers`."""
    readers: dict[str, list] = {}
    for candidate in model.layers:
        for node in getattr(candidate, "_inbound_nodes", []):
            inbound = node.inbound_layers
            for source in inbound if isinstance(inbound, (list, tuple)) else [inbound]:
                readers.setdefault(source.name, []).append(candidate)
    group, stack, seen = [layer], list(readers.get(layer, [])), {layer}
    while stack:
        reader = stack.pop(0)
        if reader.name in seen:
            continue
        seen.add(reader.name)
        if reader.name in layers:
            group.append(reader.name)
        if not reader.weights:
            stack.extend(readers.get(reader.name, []))
    return group


def predicted_latency_ms(model, profile, precisions: Mapping[str, str]) -> tuple[float, float, str]:
    """(all-int8 ms, mixed ms, note) from the profile's cost model, each layer priced at its precision."""
    from edgekit.costmodel.latency import estimate_for_profile
    from edgekit.ir.from_keras import from_keras

    graph = from_keras(model)
    by_precision = {p: estimate_for_profile(graph, profile, p) for p in ("int8", "float32")}
    int8 = by_precision["int8"]
    mixed = int8.latency_ms
    for layer, precision in precisions.items():
        rate = "float32" if precision in ("float32", "int16x8") else "int8"
        mixed += by_precision[rate].per_layer_ms.get(layer, 0.0) - int8.per_layer_ms.get(layer, 0.0)
    note = (f"{profile.name}: latency from its cost model; it has no int16x8 rates, so 16x8 layers are priced "
            "at its float32 rate (16x8 kernels are reference code without int8's SIMD paths)")
    return int8.latency_ms, mixed, note
