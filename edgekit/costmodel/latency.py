"""Latency and energy of one inference, predicted from a device profile's cost model (pure, no TensorFlow).

The model works on the ops the runtime executes, not on Keras layers: `edgekit.costmodel.memory.lower` predicts the
converted TFLite graph (BatchNorm folded into the conv before it, ReLU/ReLU6 fused, Dropout gone, Conv1D
as EXPAND_DIMS -> CONV_2D -> RESHAPE, SeparableConv as DEPTHWISE_CONV_2D -> CONV_2D), as nn-Meter's kernel
detection does; `fold_same_padding` drops the ZeroPadding2D layers the converter folds into the next conv.
Layers may run at different precisions (`layer_precisions`, edgekit.export.mixed): every op runs at its
layer's precision, and a QUANTIZE / DEQUANTIZE converts a tensor wherever it is stored at one activation type
and read at another (edgekit.costmodel.precision_map), an int8 model with float input/output at its edges.

Each runtime op gets a workload (`OpWork`): MACs, element operations and bytes moved. MACs are counted as
the kernels compute them (`KernelTraits`): output channels rounded up to the SIMD tile
(`channel_multiple`); for int8 GEMM kernels the input channels of every kernel tap rounded up to the
group the dot-product instructions consume (8 on x86 VNNI, 4 with Arm SDOT); for depthwise kernels one
more channel tile per output pixel, the cost of setting up each pixel (measured on XNNPACK: without it
MobileNets at width 0.25-0.35 come out 10-13 % fast). Element operations are what
pooling and element-wise ops do per element, plus, for conv / depthwise / dense ops, one per output element
(bias, requantisation and activation applied to each output). An op's time is a roofline plus a fixed cost:

    t_op = max(MACs / macs_per_s[class][precision] + elements / ops_per_s[class][precision],
               bytes_moved / memory_bandwidth) + dispatches x per_op_overhead

where class is conv, depthwise, dense (MACs) and pooling or elementwise (elements; conv epilogues use the
elementwise rate). Layout ops (RESHAPE, EXPAND_DIMS, CONCATENATION, PAD) only move bytes. QUANTIZE and
DEQUANTIZE are element-wise: one operation per element at the float32 rate when either side is float, at the
int16x8 rate for int8 <-> int16 requantisation, bytes moved at both sides' sizes. int16x8 ops (int16
activations, 2 B per element) use the profile's int16x8 rates, derived in edgekit.costmodel.int16_rates
when it has none. On LiteRT, an op the XNNPACK delegate does not take (every int16x8 op) splits the
delegated graph and costs one more dispatch. The inference costs sum(t_op) + per_inference_overhead
(interpreter invoke, delegate entry): `per_inference_overhead_us` is read from the cost model when it has that
field and is 0 otherwise.

Energy = latency x power.active_mw, plus energy_pj_per_mac x MACs and energy_pj_per_byte x bytes moved
where the profile gives them.

    >>> from edgekit.ir.graph import Graph, Node, Tensor, Weight
    >>> g = Graph.build([Tensor("x", (64,)), Tensor("y", (10,))],
    ...                 [Node("fc", "Dense", ("x",), ("y",), {"units": 10},
    ...                       (Weight("k", (64, 10), "kernel"), Weight("b", (10,), "bias")))], ["x"], ["y"])
    >>> [(w.kind, w.op_class, w.macs) for w in op_workloads(g, "float32", KernelTraits(channel_multiple=16))]
    [('FULLY_CONNECTED', 'dense', 1024)]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from edgekit.costmodel.int16_rates import int16x8_cost_model
from edgekit.costmodel.layer_costs import ModelCost, layer_macs, layer_weight_bytes
from edgekit.costmodel.precision_map import precision_graph
from edgekit.ir.graph import Graph, Node
from edgekit.ir.ops import MAC_OPS, SEPARABLE_OPS

MAC_CLASSES = ("conv", "depthwise", "dense")
ELEMENT_CLASSES = ("pooling", "elementwise")
LAYOUT_CLASS = "layout"  # ops that only move data: cost = bytes / bandwidth + overhead

_KIND_CLASS = {
    "CONV_2D": "conv",
    "TRANSPOSE_CONV": "conv",
    "DEPTHWISE_CONV_2D": "depthwise",
    "FULLY_CONNECTED": "dense",
    "MAX_POOL_2D": "pooling",
    "AVERAGE_POOL_2D": "pooling",
    "MEAN": "pooling",
    "REDUCE_MAX": "pooling",
    "RESHAPE": LAYOUT_CLASS,
    "EXPAND_DIMS": LAYOUT_CLASS,
    "SQUEEZE": LAYOUT_CLASS,
    "PAD": LAYOUT_CLASS,
    "TRANSPOSE": LAYOUT_CLASS,
    "STRIDED_SLICE": LAYOUT_CLASS,
    "GATHER": LAYOUT_CLASS,
    "TILE": LAYOUT_CLASS,
}
_POOL_KINDS = frozenset({"MEAN", "REDUCE_MAX", "MAX_POOL_2D", "AVERAGE_POOL_2D"})
#: Ops LiteRT's XNNPACK delegate leaves to the TFLite interpreter, by activation precision (probed with
#: ai-edge-litert 2.3 by counting DELEGATE nodes on one-op models): each splits the delegated graph.
XNNPACK_UNDELEGATED = {
    "int8": frozenset(
        {
            "EXPAND_DIMS",
            "SOFTMAX",
            "AVERAGE_POOL_2D",
            "RELU",
            "RELU6",
            "HARD_SWISH",
            "RESIZE_NEAREST_NEIGHBOR",
            "RESIZE_BILINEAR",
            "GATHER",
        }
    ),
    "float32": frozenset({"RESIZE_NEAREST_NEIGHBOR", "GATHER"}),
}


def undelegated(runtime: str, precision: str, kind: str) -> bool:
    """Whether LiteRT's XNNPACK delegate leaves `kind` at `precision` to the interpreter (XNNPACK has no
    int16-activation kernels: every int16x8 op); never on TFLM (no delegate)."""
    if runtime != "litert":
        return False
    if precision == "int16x8":
        return True
    return kind in XNNPACK_UNDELEGATED["int8" if precision == "int8" else "float32"]


@dataclass(frozen=True)
class KernelTraits:
    """How a device's runtime kernels tile the work (taken from a profile by `from_profile`).

    channel_multiple: output channels one vector tile computes (MACs are rounded up to it).
    int8_input_channel_group: input channels per kernel tap an int8 dot-product instruction consumes
        (XNNPACK packs them in groups of 8 with x86 VNNI, 4 with Arm SDOT); 1 for no padding.
    runtime: "litert" (XNNPACK delegate) or "tflm".
    """

    channel_multiple: int = 1
    int8_input_channel_group: int = 1
    runtime: str = "litert"

    @classmethod
    def from_profile(cls, profile) -> KernelTraits:
        return cls(
            profile.channel_multiple, int8_channel_group(profile.runtime, profile.cpu.simd), profile.runtime
        )


DEFAULT_TRAITS = KernelTraits()


def int8_channel_group(runtime: str, simd: str | None) -> int:
    """Input channels an int8 GEMM kernel packs per tap: XNNPACK on VNNI 8, on Arm SDOT 4; CMSIS-NN 1."""
    text = (simd or "").lower()
    if runtime != "litert":
        return 1
    if "vnni" in text:
        return 8
    if "dot" in text and "no dot" not in text:
        return 4
    return 2


@dataclass(frozen=True)
class OpWork:
    """What one runtime op has to do: MACs, element operations and bytes moved, per inference."""

    kind: str  # TFLite builtin op name, e.g. CONV_2D
    layer: str  # the Keras layer it comes from ("" for QUANTIZE / DEQUANTIZE at the graph edges)
    op_class: str  # conv | depthwise | dense | pooling | elementwise | layout
    macs: int  # multiply-accumulates as the kernel computes them (padded to its tiles)
    elements: int  # element operations (pooling reads, element-wise outputs, conv outputs)
    bytes_moved: int  # weights at the precision + input and output activations
    dispatches: int = 1  # runtime dispatches this op costs (LOGISTIC+MUL counts 2, a delegate split 1 more)
    precision: str = ""  # the precision this op runs at ("": the model's)


@dataclass(frozen=True)
class LatencyEstimate:
    latency_ms: float
    energy_mj: float
    per_layer_ms: dict[str, float]
    #: (op kind, layer, ms) per runtime op in execution order; kind "INVOKE" is the per-inference overhead
    per_op_ms: tuple[tuple[str, str, float], ...] = ()


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple if multiple > 1 else n


# ------------------------------------------------------------------------------ converter rewrites


def _kernel_macs(
    graph: Graph, node: Node, kind: str, precision: str, traits: KernelTraits
) -> tuple[int, int]:
    """(MACs as the kernel computes them, weight bytes) of one MAC op; SeparableConv splits in two ops."""
    x = graph.tensors[node.inputs[0]]
    y = graph.tensors[node.outputs[0]]
    # CPU runtimes dequantise float16 weights to float32 when they load the model
    weights = layer_weight_bytes(graph, node).at("float32" if precision == "float16" else precision)
    n_mult = traits.channel_multiple
    k_group = traits.int8_input_channel_group if precision == "int8" else 1
    pixels = y.elements // max(1, y.channels)
    if node.op in SEPARABLE_OPS:
        mid = x.channels * int(node.attrs.get("depth_multiplier", 1) or 1)
        dw, pw = node.weight("depthwise_kernel"), node.weight("pointwise_kernel")
        share = (dw.size if dw else 0) / max(1, (dw.size if dw else 0) + (pw.size if pw else 0))
        if kind == "DEPTHWISE_CONV_2D":
            taps = math.prod(dw.shape[:-2]) if dw else 9
            return pixels * (_round_up(mid, n_mult) + max(n_mult, 1)) * taps, round(weights * share)
        return pixels * _round_up(y.channels, n_mult) * _round_up(mid, k_group), round(weights * (1 - share))
    if kind == "DEPTHWISE_CONV_2D":
        channels = x.channels * int(node.attrs.get("depth_multiplier", 1) or 1)
        # one more channel tile per output pixel: the kernel's per-pixel setup (input pointers, loop)
        padded = _round_up(channels, n_mult) + max(n_mult, 1)
        return layer_macs(graph, node) * padded // max(1, channels), weights
    kernel = node.weight("kernel")
    if node.op in MAC_OPS and kind in ("CONV_2D", "FULLY_CONNECTED") and kernel is not None:
        taps = math.prod(kernel.shape[:-2]) if kind == "CONV_2D" else 1
        per_tap = kernel.shape[-2] if kind == "CONV_2D" else x.channels
        outputs = y.elements // max(1, y.channels) if kind == "CONV_2D" else x.elements // max(1, x.channels)
        return outputs * _round_up(y.channels, n_mult) * taps * _round_up(per_tap, k_group), weights
    macs = layer_macs(graph, node)
    return macs * _round_up(y.channels, n_mult) // max(1, y.channels), weights


def _element_ops(kind: str, n_in: int, n_out: int, n_inputs: int) -> int:
    if kind in _POOL_KINDS:
        return max(n_in, n_out)  # every input element is read once (non-overlapping windows)
    return n_out * max(1, n_inputs - 1)


def op_workloads(
    graph: Graph, precision: str, traits: KernelTraits = DEFAULT_TRAITS, float_io: bool = True,
    layer_precisions: Mapping[str, str] | None = None,
) -> tuple[OpWork, ...]:
    """The runtime ops of `graph` converted at `precision`, with their MACs, element ops and bytes moved.

    float_io: an integer model takes and returns float32 (QUANTIZE first, DEQUANTIZE last), as
    `edgekit.export.tflite.convert` makes it by default.
    layer_precisions: {layer: int8 | int16x8 | float32} for layers at another precision than `precision`
    (a mixed model); the conversions between them are ops of their own (layer "").
    """
    pgraph = precision_graph(graph, precision, layer_precisions, float_io)
    graph = pgraph.graph
    nodes = {n.name: n for n in graph.nodes}
    elements = pgraph.tensor_elements
    work = []
    for op, p in zip(pgraph.ops, pgraph.precisions):
        node = nodes.get(op.layer)
        n_in = sum(elements.get(t, 0) for t in op.inputs)
        n_out = sum(elements.get(t, 0) for t in op.outputs)
        moved = sum(pgraph.tensor_bytes(t) for t in (*op.inputs, *op.outputs))
        parts = op.kind.split("+")
        op_class = _KIND_CLASS.get(parts[0], "elementwise")
        dispatches = len(parts) + sum(1 for part in parts if undelegated(traits.runtime, p, part))
        if op_class in MAC_CLASSES and node is not None and node.op in MAC_OPS:
            macs, weights = _kernel_macs(graph, node, op.kind, p, traits)
            work.append(OpWork(op.kind, op.layer, op_class, macs, n_out, moved + weights, dispatches, p))
        elif op_class == LAYOUT_CLASS:
            work.append(OpWork(op.kind, op.layer, op_class, 0, 0, moved, dispatches, p))
        else:
            op_class = op_class if op_class in ELEMENT_CLASSES else "elementwise"
            ops = _element_ops(parts[0], n_in, n_out, len(op.inputs)) * len(parts)
            work.append(OpWork(op.kind, op.layer, op_class, 0, ops, moved, dispatches, p))
    return tuple(work)


# ------------------------------------------------------------------------------------- time, energy


def rate_precision(precision: str) -> str:
    """The precision whose rates a model at `precision` runs with (dynamic_int8 keeps float activations)."""
    return "float32" if precision == "dynamic_int8" else precision


def _rate(table: Mapping[str, Mapping[str, float]], op_class: str, precision: str) -> float:
    """The rate of an op class at a precision; a precision the table lacks falls back to float32."""
    by_precision = table[op_class]
    for p in (precision, "float32"):
        if p in by_precision:
            return float(by_precision[p])
    return float(next(iter(by_precision.values())))


def op_seconds(work: OpWork, cost_model, precision: str) -> float:
    """Predicted time of one runtime op: roofline of compute and memory time, plus the dispatch overhead.

    precision: the model's; an op that carries its own (`OpWork.precision`, a mixed model) uses that.
    """
    p = rate_precision(work.precision or precision)
    compute = 0.0
    if work.macs:
        compute += work.macs / _rate(cost_model.macs_per_s, work.op_class, p)
    if work.elements:
        compute += work.elements / _rate(
            cost_model.ops_per_s, "pooling" if work.op_class == "pooling" else "elementwise", p
        )
    memory = work.bytes_moved / (cost_model.memory_bandwidth_mb_s * 1e6)
    return max(compute, memory) + work.dispatches * cost_model.per_op_overhead_us * 1e-6


def per_inference_overhead_s(cost_model) -> float:
    """Fixed cost of one invoke; 0 for cost models without a `per_inference_overhead_us` field."""
    return float(getattr(cost_model, "per_inference_overhead_us", 0.0) or 0.0) * 1e-6


def predict_seconds(work: tuple[OpWork, ...], cost_model, precision: str) -> float:
    """Predicted latency in seconds of one inference made of these op workloads."""
    return per_inference_overhead_s(cost_model) + sum(op_seconds(w, cost_model, precision) for w in work)


def estimate_latency(
    graph: Graph,
    cost: ModelCost | None,
    cost_model,
    power,
    precision: str,
    traits: KernelTraits = DEFAULT_TRAITS,
    layer_precisions: Mapping[str, str] | None = None,
    float_io: bool = True,
) -> LatencyEstimate:
    """Predicted latency (ms) and energy (mJ) of one inference at `precision`.

    cost_model: a profile's CostModelParams; power: its PowerSpec (active_mw); cost: the graph's
    `costs.analyze` result (its MACs feed the per-MAC energy; recomputed when None); traits: the
    device's kernel tiling (`KernelTraits.from_profile`). layer_precisions / float_io: see `op_workloads`.
    """
    work = op_workloads(graph, precision, traits, float_io, layer_precisions)
    fixed_ms = per_inference_overhead_s(cost_model) * 1e3
    per_op = [("INVOKE", "", fixed_ms)] if fixed_ms else []
    per_layer: dict[str, float] = {n.name: 0.0 for n in graph.nodes}
    for w in work:
        ms = op_seconds(w, cost_model, precision) * 1e3
        per_op.append((w.kind, w.layer, ms))
        if w.layer:
            per_layer[w.layer] = per_layer.get(w.layer, 0.0) + ms
    latency_ms = sum(ms for _, _, ms in per_op)
    energy_mj = latency_ms * power.active_mw / 1e3
    if getattr(cost_model, "energy_pj_per_mac", None):
        macs = cost.macs if cost is not None else sum(layer_macs(graph, n) for n in graph.nodes)
        energy_mj += macs * cost_model.energy_pj_per_mac * 1e-9
    if getattr(cost_model, "energy_pj_per_byte", None):
        energy_mj += sum(w.bytes_moved for w in work) * cost_model.energy_pj_per_byte * 1e-9
    return LatencyEstimate(latency_ms, energy_mj, per_layer, tuple(per_op))


def estimate_for_profile(
    graph: Graph, profile, precision: str | None = None, cost: ModelCost | None = None,
    layer_precisions: Mapping[str, str] | None = None, float_io: bool = True,
) -> LatencyEstimate:
    """`estimate_latency` with everything taken from a DeviceProfile (precision: its preferred one); int16x8
    ops use the profile's int16x8 rates, or those `edgekit.costmodel.int16_rates` derives for it.

    >>> graph, host = from_keras(model), load_profile("host")                        # doctest: +SKIP
    >>> est = estimate_for_profile(graph, host, "int8")                              # doctest: +SKIP
    >>> mixed = estimate_for_profile(graph, host, "int8", {"conv1": "int16x8"})     # doctest: +SKIP
    >>> est.latency_ms, est.energy_mj, mixed.latency_ms - est.latency_ms             # doctest: +SKIP
    """
    precision = precision or profile.precision_preferred
    cost_model = profile.cost_model
    if precision == "int16x8" or "int16x8" in (layer_precisions or {}).values():
        cost_model, _ = int16x8_cost_model(profile)
    return estimate_latency(graph, cost, cost_model, profile.power, precision, KernelTraits.from_profile(profile),
                            layer_precisions, float_io)
