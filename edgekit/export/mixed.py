"""Per-layer mixed precision: int8, int16x8 (int16 activations, int8 weights) or float32 per Keras layer.

    >>> plan = choose_mixed(model, x_train, x_val, runtime="tflm", profile=load_profile("stm32h743"))  # doctest: +SKIP
    >>> [(c.layer, c.precision) for c in plan.choices], plan.size_bytes - plan.int8_size_bytes       # doctest: +SKIP

The per-layer models are built by ai-edge-quantizer recipes (edgekit.export.aeq_recipes: a regex per
layer over the converter's tensor names, int8 weights per channel, QUANTIZE / DEQUANTIZE between layers of
different precision, float32 input and output). Per-layer 16x8 first failed because edgekit's calibration
ranges covered the weights too, which AEQ then quantised per-tensor; aeq_recipes says more.

Choosing (`choose_mixed`): the all-int8 model's final-output error is measured on the target runtime;
each layer's sensitivity is the output SNR when only that layer and its readers are float (everything else
int8), the isolation QuantizationDebugger's selective quantisation uses. While the output is worse than
`max_relative_rms`, the most sensitive remaining layer (alone, then with the layers reading its output: a
tensor is rounded where its reader reads it) is raised to int16x8, else to float32, keeping a change only
if it gains; a last pass lowers each raised layer again where the error stays within the target. Only
precisions whose kernels the runtime has for every op of the layer are tried (edgekit.export.kernel_probe
runs one tiny model per op type on the real interpreter), every candidate runs on the target runtime in
the isolated worker, and candidates over `max_size_bytes` / the cost model's `max_latency_ms` are skipped.
Every layer's sensitivity is measured on LiteRT (a ranking only: its float kernels cover every op). The cost
model prices each candidate with its per-layer precisions (edgekit.costmodel.latency: int16x8 rates, and the
QUANTIZE / DEQUANTIZE between precisions). `integer_io` rebuilds the chosen model with its input and output at
the type of the layers next to them (int8 or int16; exact, edgekit.export.aeq_recipes), as MCU firmware feeds.

`mixed_for_device` is the choice `edgekit fit` and `edgekit export --precision mixed` both make: calibrated
and chosen on training samples, with the device's runtime, budgets and I/O convention.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from edgekit.costmodel.sensitivity import ErrorStats, error_stats
from edgekit.errors import BadInputError, UnsupportedModelError
from edgekit.export.aeq_recipes import (  # noqa: F401 - re-exported: the recipes are part of this module's API
    CALIBRATION_SAMPLES,
    LAYER_PRECISIONS,
    layer_regex,
    quantize_per_layer,
    tensor_ranges,
)

DEFAULT_MAX_RELATIVE_RMS = 0.05    # final-output RMS error / RMS of the float output (SNR 26 dB)
CHOICE_CALIBRATION_SAMPLES = 300   # samples calibrating the per-layer choice (and fit's int8 model: both agree)
EVALUATION_SAMPLES = 200
MIN_GAIN_DB = 1.0                  # a raise that gains less output SNR than this is not kept


@dataclass(frozen=True)
class LayerChoice:
    layer: str
    precision: str                 # int8 | int16x8 | float32
    alone_float_snr_db: float      # output SNR with only this layer (and readers) float: higher = more sensitive
    note: str = ""
    ops: tuple[str, ...] = ()      # the TFLite op types of the layer


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
    layer_latency_ms: dict = field(default_factory=dict)   # layer -> predicted ms at its chosen precision
    conversions: tuple[str, ...] = ()    # the QUANTIZE / DEQUANTIZE ops the cost model counts, in order
    conversion_ms: float = 0.0           # their predicted time
    latency_basis: str = ""              # where the int16x8 rates come from
    int8_tflite_bytes: bytes = b""       # the all-int8 model the choice started from (same quantiser, float I/O)
    integer_io: bool = False             # input / output stored at the adjacent layers' integer types

    @property
    def size_bytes(self) -> int:
        return len(self.tflite_bytes)

    @property
    def raised(self) -> dict[str, str]:
        return {c.layer: c.precision for c in self.choices if c.precision != "int8"}


def output_error(model_outputs: np.ndarray, tflite_bytes: bytes, x: np.ndarray, runtime: str) -> ErrorStats:
    """Final-output error of a .tflite run by `runtime` against the Keras outputs (raises if it cannot run)."""
    from edgekit.export.layer_outputs import tflite_intermediates

    _, final = tflite_intermediates(tflite_bytes, x, [], runtime)
    return error_stats(model_outputs.reshape(len(x), -1), final)


def build_candidate(float_tflite: bytes, precisions: Mapping[str, str], calibration: np.ndarray,
                    tensor_names: Mapping[str, str], reference: np.ndarray, x: np.ndarray,
                    runtime: str, integer_io: bool = False) -> tuple[bytes, ErrorStats] | str:
    """(the per-layer model, its output error on `runtime`), or why it could not be built or run; the
    quantiser and the interpreter run in the isolated worker, so a kernel that aborts is a refusal too."""
    from edgekit.runners.isolated import call_isolated

    try:
        return call_isolated(_build_here, float_tflite, dict(precisions), calibration, dict(tensor_names),
                             reference, x, runtime, integer_io, what=f"a {len(float_tflite)} byte model",
                             stage=f"per-layer quantisation and {runtime} run", timeout_s=600.0)
    except (UnsupportedModelError, BadInputError) as exc:
        return str(exc)


def _build_here(float_tflite, precisions, calibration, tensor_names, reference, x, runtime, integer_io=False):
    blob = quantize_per_layer(float_tflite, precisions, calibration, tensor_names=tensor_names, integer_io=integer_io)
    return blob, output_error(reference, blob, x, runtime)


def layer_ops(float_tflite: bytes, layers: list[str], tensor_names: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """{layer: the TFLite op types its recipe regex selects in the float model}."""
    from edgekit.export.layer_outputs import _litert

    interpreter = _litert(float_tflite)
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    scopes = [(op["op_name"], "".join(details[int(i)]["name"] + ";" for i in op["outputs"] if int(i) >= 0))
              for op in interpreter._get_ops_details()]
    return {layer: tuple(dict.fromkeys(name for name, scope in scopes
                                       if re.search(layer_regex(layer, tensor_names.get(layer)), scope)))
            for layer in layers}


@dataclass
class _Costs:
    """Prices a set of per-layer precisions: the cost model's latency and the budgets it must stay within."""

    graph: object | None                 # the model's IR graph (None without a profile)
    profile: object | None
    max_size_bytes: int | None
    max_latency_ms: float | None
    float_io: bool = True
    _cache: dict = field(default_factory=dict)

    def estimate(self, precisions: Mapping[str, str]):
        """The cost model's LatencyEstimate of the model with these layers raised (None without a profile)."""
        from edgekit.costmodel.latency import estimate_for_profile

        if self.profile is None:
            return None
        key = tuple(sorted((n, p) for n, p in precisions.items() if p != "int8"))
        if key not in self._cache:
            self._cache[key] = estimate_for_profile(self.graph, self.profile, "int8", layer_precisions=dict(key),
                                                    float_io=self.float_io)
        return self._cache[key]

    def latency_ms(self, precisions: Mapping[str, str]) -> float | None:
        found = self.estimate(precisions)
        return None if found is None else found.latency_ms

    def over(self, size_bytes: int, precisions: Mapping[str, str]) -> str:
        if self.max_size_bytes is not None and size_bytes > self.max_size_bytes:
            return f"{size_bytes:,} B > the {self.max_size_bytes:,} B size budget"
        ms = self.latency_ms(precisions)
        if self.max_latency_ms is not None and ms is not None and ms > self.max_latency_ms:
            return f"predicted {ms:.3f} ms > the {self.max_latency_ms:g} ms latency budget"
        return ""


def choose_mixed(model, calibration: np.ndarray, evaluation: np.ndarray, runtime: str = "litert",
                 profile=None, max_relative_rms: float = DEFAULT_MAX_RELATIVE_RMS,
                 allowed: tuple[str, ...] = ("int16x8", "float32"), max_size_bytes: int | None = None,
                 max_latency_ms: float | None = None, whole_model_fallback: bool = True,
                 integer_io: bool = False) -> MixedPlan:
    """Raise the most sensitive layers of an int8 model to int16x8 / float32 until the output error is small.

    model: tf_keras model; calibration / evaluation: float samples (N, *input); runtime: litert | tflm (every
    candidate is run there, only precisions whose kernels it has are tried); profile: a DeviceProfile whose
    cost model prices the latency (optional); max_size_bytes / max_latency_ms: skip candidates over them;
    integer_io: the delivered model's input and output at the adjacent layers' integer types.
    """
    from edgekit.export.kernel_probe import supported_ops
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
    ops = layer_ops(float_bytes, layers, aliases)
    kernels = {p: supported_ops(runtime, p, [o for names in ops.values() for o in names]) for p in allowed}
    runnable = {n: tuple(p for p in allowed if all(kernels[p][o] is not False for o in ops[n])) for n in layers}
    costs = _Costs(_graph(model) if profile is not None else None, profile, max_size_bytes, max_latency_ms,
                   float_io=not integer_io)
    notes = [f"{runtime} has no {p} kernel for {', '.join(o for o, ok in kernels[p].items() if ok is False)}"
             for p in allowed if any(ok is False for ok in kernels[p].values())]

    def build(precisions: dict[str, str], on: str = runtime):
        return build_candidate(float_bytes, precisions, calibration, aliases, reference, x, on)

    base = build({})
    if isinstance(base, str):
        raise UnsupportedModelError(f"the all-int8 model does not run on {runtime}: {base}")
    int8_bytes, int8_stats = base
    groups = {layer: consumer_group(model, layer, layers) for layer in layers}
    sensitivity = {}
    for layer in layers:  # a ranking only: measured on LiteRT, whose float kernels cover every op
        alone = build(dict.fromkeys(groups[layer], "float32"), "litert")
        sensitivity[layer] = alone[1].snr_db if not isinstance(alone, str) else -math.inf
    current, stats, chosen, why = int8_bytes, int8_stats, {}, {}
    for layer in sorted(layers, key=lambda n: -sensitivity[n]):
        if stats.relative_rms <= max_relative_rms:
            break
        trial = _first_gain(build, chosen, [[layer], groups[layer]], allowed, runnable, costs, stats, why,
                            notes)
        if trial is not None:
            current, stats, chosen = trial
    if chosen and stats.relative_rms <= max_relative_rms:
        current, stats, chosen = _lower_again(build, current, stats, chosen, runnable, max_relative_rms)
    if stats.relative_rms > max_relative_rms and "int16x8" in allowed and whole_model_fallback:
        whole = _whole_model_16x8(model, calibration, reference, x, runtime)
        if isinstance(whole, str):
            notes.append(f"whole-model int16x8: {whole}")
        elif whole[1].snr_db >= stats.snr_db + MIN_GAIN_DB and not costs.over(len(whole[0]), {}):
            notes.append(f"per-layer recipes reached {stats.relative_rms:.1%} RMS error; the converter's whole-model "
                         f"int16x8 reaches {whole[1].relative_rms:.1%} and is used")
            current, stats = whole
            chosen = dict.fromkeys(layers, "int16x8")
            integer_io = False  # the converter's whole-model 16x8 keeps float I/O
    if stats.relative_rms > max_relative_rms:
        notes.append(f"output error still {stats.relative_rms:.1%} RMS after raising {len(chosen)} of "
                     f"{len(layers)} layers (target {max_relative_rms:.1%})")
    choices = tuple(LayerChoice(n, chosen.get(n, "int8"), sensitivity[n], why.get(n, ""), ops[n]) for n in layers)
    io = False
    if integer_io:
        rebuilt = build_candidate(float_bytes, chosen, calibration, aliases, reference, x, runtime, integer_io=True)
        if isinstance(rebuilt, str):
            notes.append(f"integer input/output not possible ({rebuilt}); the model keeps float32 I/O")
        else:
            (current, stats), io = rebuilt, True
    return MixedPlan(current, runtime, choices, int8_stats, stats, len(int8_bytes), len(float_bytes),
                     costs.latency_ms({}), costs.latency_ms(chosen), tuple(notes), int8_tflite_bytes=int8_bytes,
                     integer_io=io, **_priced(costs, chosen))


def _priced(costs: _Costs, chosen: Mapping[str, str]) -> dict:
    """MixedPlan's per-layer latency, conversion ops and rate basis from the cost model (empty without one)."""
    from edgekit.costmodel.int16_rates import int16x8_cost_model

    estimate = costs.estimate(chosen)
    if estimate is None:
        return {}
    conversions = tuple(kind for kind, layer, _ in estimate.per_op_ms if kind in ("QUANTIZE", "DEQUANTIZE")
                        and not layer)
    return {"layer_latency_ms": dict(estimate.per_layer_ms), "conversions": conversions,
            "conversion_ms": sum(ms for kind, layer, ms in estimate.per_op_ms if kind in conversions and not layer),
            "latency_basis": int16x8_cost_model(costs.profile)[1]}


def mixed_for_device(model, x_train: np.ndarray, x_val: np.ndarray, profile=None, limits: Mapping | None = None,
                     max_relative_rms: float = DEFAULT_MAX_RELATIVE_RMS,
                     calibration_samples: int = CHOICE_CALIBRATION_SAMPLES,
                     integer_io: bool | None = None) -> MixedPlan:
    """`choose_mixed` as `edgekit fit` and `edgekit export --precision mixed` run it for a device.

    Calibrated on the first `calibration_samples` training samples and chosen on up to EVALUATION_SAMPLES
    training samples after them (on x_val when fewer than 50 are left), so a score on x_val stays held out
    whenever the data allow; on the profile's runtime (LiteRT without a profile), only at precisions it has
    kernels for, within `limits`' flash_bytes and latency_ms; integer I/O by default on TFLM (MCU firmware
    feeds int8 tensors, as `edgekit export` makes int8 MCU models); no whole-model 16x8 fallback.
    """
    runtime = profile.runtime if profile is not None else "litert"
    x_train = np.asarray(x_train, np.float32)
    calibration = x_train[:calibration_samples]
    spare = x_train[len(calibration):len(calibration) + EVALUATION_SAMPLES]
    choose_on = spare if len(spare) >= 50 else np.asarray(x_val, np.float32)
    limits = dict(limits or {})
    return choose_mixed(model, calibration, choose_on, runtime=runtime, profile=profile,
                        max_relative_rms=max_relative_rms, max_size_bytes=limits.get("flash_bytes"),
                        max_latency_ms=limits.get("latency_ms"), whole_model_fallback=False,
                        integer_io=runtime == "tflm" if integer_io is None else integer_io)


def _first_gain(build, chosen, sets, allowed, runnable, costs, stats, why, notes):
    """The first of (layer alone, layer and its readers) x precisions (16x8 before float) that gains
    MIN_GAIN_DB within the budgets, as (bytes, stats, precisions), or None."""
    for precision in [p for p in LAYER_PRECISIONS[1:] if p in allowed]:
        for names in [list(s) for i, s in enumerate(sets) if i == 0 or list(s) != list(sets[0])]:
            lacking = [n for n in names if precision not in runnable[n]]
            if lacking:
                why.setdefault(lacking[0], f"{precision}: no kernel on this runtime for its ops")
                continue
            precisions = {**chosen, **{n: max(chosen.get(n, "int8"), precision, key=LAYER_PRECISIONS.index)
                                       for n in names}}
            trial = build(precisions)
            if isinstance(trial, str):
                why[names[0]] = f"{precision} refused: {trial}"
                notes.append(f"{'+'.join(names)}: {why[names[0]]}")
                continue
            over = costs.over(len(trial[0]), precisions)
            if over:
                notes.append(f"{'+'.join(names)} at {precision}: {over}")
                continue
            if trial[1].snr_db >= stats.snr_db + MIN_GAIN_DB:
                return trial[0], trial[1], precisions
    return None


def _lower_again(build, current, stats, chosen, runnable, max_relative_rms):
    """Lower each raised layer one step (float32 -> int16x8 -> int8) while the output stays within the target."""
    for layer in list(chosen):
        rank = LAYER_PRECISIONS.index(chosen[layer])
        for lower in LAYER_PRECISIONS[:rank]:
            if lower != "int8" and lower not in runnable[layer]:
                continue
            precisions = {**chosen, layer: lower}
            trial = build({n: p for n, p in precisions.items() if p != "int8"})
            if not isinstance(trial, str) and trial[1].relative_rms <= max_relative_rms:
                current, stats, chosen = trial[0], trial[1], {n: p for n, p in precisions.items() if p != "int8"}
                break
    return current, stats, chosen


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
        from edgekit.runners.isolated import call_isolated

        blob = convert_16x8(model, calibration)
        return blob, call_isolated(output_error, reference, blob, x, runtime, what=f"model {model.name!r} at int16x8",
                                   stage=f"{runtime} run", timeout_s=600.0)
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


def _graph(model):
    from edgekit.ir.from_keras import from_keras

    return from_keras(model)
