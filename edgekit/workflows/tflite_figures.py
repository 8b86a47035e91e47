"""Predicted figures of a converted .tflite file, read from its flatbuffer alone (no interpreter, no Keras).

`edgekit check` gates what pipelines ship: a .tflite, often without the Keras model it came from. The
cost model (`edgekit.costmodel.latency`) prices runtime ops; here the ops come from the file itself instead
of from a lowered Keras graph: each operator's MACs from its weight tensor's shape and its output's shape,
its bytes moved from its tensors' types, then the same `op_seconds` roofline and the profile's rates.
Peak activation memory is the largest sum of live non-constant tensors over the execution order (a lower
bound any memory planner meets or exceeds; TFLite's greedy planner is usually within a few percent).

    >>> figures = tflite_figures(open("model.tflite", "rb").read(), load_profile("pixel7"))  # doctest: +SKIP
    >>> figures.latency_ms, figures.energy_mj, figures.peak_activation_bytes                 # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgekit.costmodel.latency import (
    _KIND_CLASS,
    LAYOUT_CLASS,
    MAC_CLASSES,
    XNNPACK_UNDELEGATED,
    KernelTraits,
    OpWork,
    _element_ops,
    _round_up,
    op_seconds,
    per_inference_overhead_s,
)
from edgekit.errors import BadInputError

# TFLite TensorType code -> bytes per element (schema.fbs: FLOAT32 0, FLOAT16 1, INT32 2, UINT8 3, INT64 4,
# STRING 5, BOOL 6, INT16 7, COMPLEX64 8, INT8 9, FLOAT64 10, ..., UINT32 15, UINT16 16, INT4 17)
MAX_TENSOR_ELEMENTS = 1 << 34  # more than any device holds: a damaged or hostile shape
_ELEMENT_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 5: 1, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 15: 4, 16: 2, 17: 1}


@dataclass(frozen=True)
class TfliteFigures:
    """What the flatbuffer predicts on one device profile."""

    precision: str                    # as `infer_precision` reads it from the tensor types
    ops: tuple[str, ...]              # builtin op names, execution order (all subgraphs)
    macs: int                         # as the model computes them (no kernel tile padding)
    latency_ms: float                 # predicted with the profile's cost model
    energy_mj: float
    peak_activation_bytes: int        # largest sum of live non-constant tensors, main subgraph


def tflite_figures(tflite_bytes: bytes, profile) -> TfliteFigures:
    """Ops, MACs, predicted latency/energy and peak live activations of a .tflite on `profile`.

    Raises BadInputError when the bytes are not a readable TFLite flatbuffer.
    """
    from edgekit.model_io.flatbuffer import infer_precision, read_model, tflite_op_list

    try:
        ops = tuple(tflite_op_list(tflite_bytes))
        model = read_model(tflite_bytes)
        precision = infer_precision(tflite_bytes)
        subgraph = model.subgraphs[0]
        work, macs = _workloads(model, subgraph, precision, KernelTraits.from_profile(profile))
        peak = _peak_live_bytes(model, subgraph)
    except BadInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - a truncated or hand-edited flatbuffer: offsets point anywhere
        raise BadInputError(f"the TFLite flatbuffer is damaged ({type(exc).__name__} while reading its "
                            "tensors); re-export the model") from None
    cost_model = profile.cost_model
    seconds = per_inference_overhead_s(cost_model) + sum(op_seconds(w, cost_model, precision) for w in work)
    latency_ms = seconds * 1e3
    energy_mj = latency_ms * profile.power.active_mw / 1e3
    if getattr(cost_model, "energy_pj_per_mac", None):
        energy_mj += macs * cost_model.energy_pj_per_mac * 1e-9
    if getattr(cost_model, "energy_pj_per_byte", None):
        energy_mj += sum(w.bytes_moved for w in work) * cost_model.energy_pj_per_byte * 1e-9
    return TfliteFigures(precision, ops, macs, latency_ms, energy_mj, peak)


def _tensor_info(model, subgraph, index: int) -> tuple[tuple[int, ...], int, bool]:
    """(shape, bytes, is_constant) of one tensor."""
    from edgekit.model_io.flatbuffer import ints

    tensor = subgraph.tensors[index]
    shape = tuple(max(1, d) for d in ints(tensor.shape))  # -1 (dynamic batch) counts as 1
    if math.prod(shape) > MAX_TENSOR_ELEMENTS:
        raise BadInputError(f"tensor {index} claims shape {list(shape)}: the TFLite flatbuffer is damaged; "
                            "re-export the model")
    buffer = model.buffers[tensor.buffer] if 0 < tensor.buffer < len(model.buffers) else None
    data = getattr(buffer, "data", None)
    constant = data is not None and len(data) > 0
    nbytes = len(data) if constant else math.prod(shape) * _ELEMENT_BYTES.get(int(tensor.type), 4)
    return shape, int(nbytes), constant


def _workloads(model, subgraph, precision: str, traits: KernelTraits) -> tuple[list[OpWork], int]:
    from edgekit.model_io.flatbuffer import ints, op_name

    undelegated = frozenset()
    if traits.runtime == "litert":
        undelegated = XNNPACK_UNDELEGATED["int8" if precision == "int8" else "float32"]
    work: list[OpWork] = []
    total_macs = 0
    for operator in subgraph.operators or []:
        kind = op_name(model, operator)
        ins = [_tensor_info(model, subgraph, i) for i in ints(operator.inputs) if i >= 0]
        outs = [_tensor_info(model, subgraph, i) for i in ints(operator.outputs) if i >= 0]
        activations = [t for t in ins if not t[2]]
        weights = sum(t[1] for t in ins if t[2])
        moved = sum(t[1] for t in activations) + sum(t[1] for t in outs) + weights
        n_in = sum(math.prod(t[0]) for t in activations)
        n_out = sum(math.prod(t[0]) for t in outs)
        op_class = _KIND_CLASS.get(kind, "elementwise")
        dispatches = 1 + (kind in undelegated)
        if op_class in MAC_CLASSES:
            raw, padded = _macs(kind, ins, outs, traits, precision)
            total_macs += raw
            work.append(OpWork(kind, "", op_class, padded, n_out, moved, dispatches))
        elif op_class == LAYOUT_CLASS:
            work.append(OpWork(kind, "", op_class, 0, 0, moved, dispatches))
        else:
            work.append(OpWork(kind, "", op_class, 0, _element_ops(kind, n_in, n_out, len(activations)), moved,
                               dispatches))
    return work, total_macs


def _macs(kind: str, ins, outs, traits: KernelTraits, precision: str) -> tuple[int, int]:
    """(MACs, MACs as the kernel computes them: channels padded to its tiles) of one MAC op."""
    filt = next((t[0] for t in ins if t[2] and len(t[0]) >= 2), None)
    if filt is None or not outs:  # weights fed at run time: priced as element work only
        return 0, 0
    out_shape = outs[0][0]
    n_mult = traits.channel_multiple
    k_group = traits.int8_input_channel_group if precision == "int8" else 1
    if kind == "CONV_2D":                          # filter [O, KH, KW, I]
        o, taps, i = filt[0], math.prod(filt[1:-1]), filt[-1]
        pixels = math.prod(out_shape) // max(1, out_shape[-1])
        return pixels * o * taps * i, pixels * _round_up(o, n_mult) * taps * _round_up(i, k_group)
    if kind == "DEPTHWISE_CONV_2D":                # filter [1, KH, KW, C]
        channels, taps = filt[-1], math.prod(filt[1:-1])
        pixels = math.prod(out_shape) // max(1, out_shape[-1])
        return pixels * channels * taps, pixels * (_round_up(channels, n_mult) + max(n_mult, 1)) * taps
    if kind == "FULLY_CONNECTED":                  # weights [O, I]
        o, i = filt[0], filt[-1]
        rows = max(1, math.prod(out_shape) // max(1, o))
        return rows * o * i, rows * _round_up(o, n_mult) * _round_up(i, k_group)
    if kind == "TRANSPOSE_CONV":                   # filter [O, KH, KW, I]; every input pixel scatters
        o, taps, i = filt[0], math.prod(filt[1:-1]), filt[-1]
        source = next((t[0] for t in ins if not t[2] and len(t[0]) == len(out_shape)), out_shape)
        pixels = math.prod(source) // max(1, source[-1])
        return pixels * o * taps * i, pixels * _round_up(o, n_mult) * taps * i
    return 0, 0


def _peak_live_bytes(model, subgraph) -> int:
    """Largest sum of bytes of non-constant tensors alive at once, over the operators in order."""
    from edgekit.model_io.flatbuffer import ints

    operators = subgraph.operators or []
    last = len(operators)
    first_use: dict[int, int] = {i: -1 for i in ints(subgraph.inputs)}
    last_use: dict[int, int] = {i: last for i in ints(subgraph.outputs)}
    for step, operator in enumerate(operators):
        for i in ints(operator.outputs):
            first_use.setdefault(i, step)
        for i in ints(operator.inputs):
            if i >= 0:
                last_use[i] = max(last_use.get(i, step), step)
    sizes = {}
    for i in set(first_use) | set(last_use):
        if i < 0:
            continue
        _, nbytes, constant = _tensor_info(model, subgraph, i)
        if not constant:
            sizes[i] = nbytes
    peak = 0
    for step in range(-1, last + 1):
        live = sum(size for i, size in sizes.items()
                   if first_use.get(i, -1) <= step <= last_use.get(i, first_use.get(i, -1)))
        peak = max(peak, live)
    return int(peak)


__all__ = ["TfliteFigures", "tflite_figures"]
