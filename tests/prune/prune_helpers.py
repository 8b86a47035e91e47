"""Helpers for the pruning tests: reference models with non-trivial BatchNorm statistics, channel
zeroing (so removed channels carry nothing and a pruned model must match the original exactly), and
TFLite conversion + LiteRT / TFLM runs through edgekit's own exporter and runners."""

from __future__ import annotations

import numpy as np

TFLM_ARENA_BYTES = 2 << 20  # generous but below sizes that aborted the TFLM interpreter on this host


def randomize_batchnorm(model, seed: int = 0) -> None:
    """Give every BatchNormalization random gamma, beta and moving statistics (untrained ones are identities)."""
    rng = np.random.default_rng(seed)
    for layer in _all_layers(model):
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape).astype("float32"),
                               rng.normal(0, 0.2, beta.shape).astype("float32"),
                               rng.normal(0, 0.2, mean.shape).astype("float32"),
                               rng.uniform(0.5, 2.0, var.shape).astype("float32")])


def _all_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)
        else:
            yield layer


def zero_removed_channels(model, groups, keep) -> None:
    """Zero, in place, every weight that produces a channel `keep` drops: filters and biases of the
    producing layers, BatchNorm gamma and beta, depthwise filters and biases. Consumers' input rows stay."""
    from edgekit.channels.axes import CHANNELWISE_OPS, SOURCE_OPS, weight_axes
    from edgekit.channels.keep import node_masks
    from edgekit.prune.surgery import layer_at

    masks = {t: groups.kept_mask(t, keep) for t in groups.slot_units}
    for node in groups.graph.nodes:
        if node.op not in SOURCE_OPS | CHANNELWISE_OPS or not node.weights:
            continue
        by_kind = node_masks(groups, node, masks)
        layer = layer_at(model, node.name)
        arrays = layer.get_weights()
        for i, w in enumerate(node.weights):
            if w.role in ("moving_mean", "moving_variance"):
                continue
            for axis, kind in weight_axes(node, w).items():
                if node.op in SOURCE_OPS and kind != "out":
                    continue
                dropped = np.flatnonzero(~np.asarray(by_kind[kind], bool))
                index = [slice(None)] * arrays[i].ndim
                index[axis] = dropped
                arrays[i][tuple(index)] = 0.0
        layer.set_weights(arrays)


def random_keep(groups, share: float = 0.5, seed: int = 0) -> dict[int, frozenset[int]]:
    """Keep a random `share` of every prunable group's free units (frozen ones always)."""
    rng = np.random.default_rng(seed)
    keep = {}
    for g in groups.prunable_groups:
        free = [u for u in range(g.size) if u not in g.frozen_units]
        n = max(1, round(len(free) * share))
        keep[g.id] = frozenset(g.frozen_units) | frozenset(int(u) for u in rng.choice(free, n, replace=False))
    return keep


def samples(model, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *model.input_shape[1:])).astype("float32")


def int8_runs(model, calibration: np.ndarray, x: np.ndarray):
    """(tflite bytes, LiteRT outputs, TFLM outputs) of `model` converted to int8."""
    from edgekit.export.tflite import convert
    from edgekit.runners import litert, tflm

    tflite = convert(model, "int8", calibration, calibration_samples=len(calibration)).tflite_bytes
    return tflite, litert.predict(tflite, x), tflm.predict(tflite, x, arena_size=TFLM_ARENA_BYTES)
