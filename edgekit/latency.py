"""Latency and energy predictions from a device profile's cost model (pure, roofline style).

Per Keras layer: compute time = MACs / the profile's MAC rate for its op class and precision (or other
ops / the element-op rate), memory time = bytes moved (weights + input and output activations) / memory
bandwidth; the layer costs the larger of the two, plus a fixed per-op overhead for every runtime op it
becomes (edgekit.memory.lower: folded BatchNorm and fused activations cost nothing).
Energy = latency x active power, plus per-MAC / per-byte energy where the profile gives them.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.costs import (
    CONV_OPS,
    DENSE_OPS,
    DEPTHWISE_OPS,
    GLOBAL_POOL_OPS,
    POOL_OPS,
    SEPARABLE_OPS,
    TRANSPOSED_CONV_OPS,
    ModelCost,
)
from edgekit.graph import Graph
from edgekit.memory import lower


@dataclass(frozen=True)
class LatencyEstimate:
    latency_ms: float
    energy_mj: float
    per_layer_ms: dict[str, float]


def _op_class(op: str) -> str | None:
    if op in CONV_OPS | TRANSPOSED_CONV_OPS:
        return "conv"
    if op in DEPTHWISE_OPS:
        return "depthwise"
    if op in DENSE_OPS:
        return "dense"
    if op in SEPARABLE_OPS:
        return "separable"
    return None


def _rate(table, op_class: str, precision: str) -> float:
    by_precision = table.get(op_class) or next(iter(table.values()))
    return by_precision.get(precision) or by_precision.get("float32") or next(iter(by_precision.values()))


def estimate_latency(graph: Graph, cost: ModelCost, cost_model, power, precision: str) -> LatencyEstimate:
    """Predicted latency (ms) and energy (mJ) of one inference at `precision` on a profile's cost model."""
    act_precision = "int8" if precision == "int8" else "float32"
    act_bytes = 1 if act_precision == "int8" else 4
    ops_per_layer: dict[str, int] = {}
    for op in lower(graph).ops:
        ops_per_layer[op.layer] = ops_per_layer.get(op.layer, 0) + (2 if op.kind == "SEPARABLE" else 1)
    per_layer: dict[str, float] = {}
    total_bytes = 0
    for node, layer in zip(graph.nodes, cost.layers):
        klass = _op_class(node.op)
        compute_s = 0.0
        if klass == "separable":
            compute_s = layer.macs / _rate(cost_model.macs_per_s, "conv", act_precision)
        elif klass is not None:
            compute_s = layer.macs / _rate(cost_model.macs_per_s, klass, act_precision)
        if layer.ops and ops_per_layer.get(node.name):
            pool = node.op in POOL_OPS | GLOBAL_POOL_OPS
            compute_s += layer.ops / _rate(cost_model.ops_per_s, "pooling" if pool else "elementwise", act_precision)
        moved = layer.weight_bytes.at(precision) + act_bytes * (
            sum(graph.tensors[t].elements for t in node.inputs) + sum(graph.tensors[t].elements for t in node.outputs))
        if not ops_per_layer.get(node.name):
            moved = 0
        total_bytes += moved
        memory_s = moved / (cost_model.memory_bandwidth_mb_s * 1e6)
        overhead_s = ops_per_layer.get(node.name, 0) * cost_model.per_op_overhead_us * 1e-6
        per_layer[node.name] = 1e3 * (max(compute_s, memory_s) + overhead_s)
    latency_ms = sum(per_layer.values())
    energy_mj = latency_ms * power.active_mw / 1e3
    if getattr(cost_model, "energy_pj_per_mac", None):
        energy_mj += cost.macs * cost_model.energy_pj_per_mac * 1e-9
    if getattr(cost_model, "energy_pj_per_byte", None):
        energy_mj += total_bytes * cost_model.energy_pj_per_byte * 1e-9
    return LatencyEstimate(latency_ms, energy_mj, per_layer)
