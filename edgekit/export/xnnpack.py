"""Would XNNPACK run this float model's sparse weights sparsely? An approximation of its NCHW rewrite rules.

    >>> xnnpack_sparse_eligible(float_sparse_bytes)          # doctest: +SKIP
    (True, 'eligible: 12 ops, 80% of 1x1-conv weights zero')

Follows the published conditions (TFLite XNNPACK delegate README; XNNPACK's
xnn_check_nchw_compatibility): a float 3x3 stride-2 CONV_2D with 3 input channels and padding 1 on
each side starts the sparse subgraph, a MEAN over the spatial axes ends it, every op between is a
1x1 CONV_2D, a 3x3 / 5x5 DEPTHWISE_CONV_2D with symmetric padding, or an element-wise op, and at
least 2/3 of all 1x1 weights are zero. The delegate only hints sparse inference when weights come
through DENSIFY, and XNNPACK ignores the hint on x86 CPUs with AVX (see edgekit.export.sparse), so
this cannot be confirmed by timing on such a host.
"""

from __future__ import annotations

import numpy as np

from edgekit.model_io.flatbuffer import ints, op_name, read_model

XNNPACK_MIN_1X1_SPARSITY = 2 / 3  # share of zero 1x1-conv weights XNNPACK needs for sparse inference
_NUMPY_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 4: np.int64, 9: np.int8}


_XNN_ELEMENTWISE = {"ADD", "MUL", "ABS", "CEIL", "ELU", "FLOOR", "HARD_SWISH", "LEAKY_RELU", "LOGISTIC", "NEG",
                    "RELU", "RELU6", "ROUND", "SQUARE", "SQRT", "RESIZE_BILINEAR"}


def xnnpack_sparse_eligible(tflite_bytes: bytes) -> tuple[bool, str]:
    """Approximate XNNPACK's NCHW (sparse) rewrite conditions on the main subgraph; (eligible, why)."""
    model = read_model(tflite_bytes)
    g = _Graph(model)
    stems = [i for i in g.ops if g.is_stem(i)]
    if not stems:
        return False, "no float 3x3 stride-2 CONV_2D stem with 3 input channels and padding 1 on each side"
    for stem in stems:
        cluster, end, blocker = g.cluster_from(stem)
        if blocker:
            return False, blocker
        if end is None:
            return False, "the stem's subgraph does not end in a spatial MEAN"
        weights = zeros = 0
        for i in cluster:
            if g.name(i) == "CONV_2D" and g.kernel_hw(i) == (1, 1):
                w, z = g.weight_counts(i)
                weights, zeros = weights + w, zeros + z
        if not weights:
            return False, "no 1x1 CONV_2D between the stem and the mean"
        share = zeros / weights
        if share < XNNPACK_MIN_1X1_SPARSITY:
            return False, f"{share:.0%} of 1x1-conv weights are zero, XNNPACK needs at least 67%"
        return True, f"eligible: {len(cluster)} ops, {share:.0%} of 1x1-conv weights zero"
    return False, "no eligible subgraph"  # pragma: no cover


class _Graph:
    """Producer / consumer lookups over the main subgraph, for the XNNPACK eligibility walk."""

    def __init__(self, model) -> None:
        self.model = model
        self.subgraph = model.subgraphs[0]
        self.operators = list(self.subgraph.operators or [])
        self.ops = range(len(self.operators))
        self.producer = {t: i for i, op in enumerate(self.operators) for t in ints(op.outputs)}
        self.consumers: dict[int, list[int]] = {}
        for i, op in enumerate(self.operators):
            for t in ints(op.inputs):
                self.consumers.setdefault(t, []).append(i)

    def name(self, i: int) -> str:
        return op_name(self.model, self.operators[i])

    def tensor(self, t: int):
        return self.subgraph.tensors[t]

    def kernel_hw(self, i: int) -> tuple[int, int]:
        shape = ints(self.tensor(ints(self.operators[i].inputs)[1]).shape)
        return (shape[1], shape[2]) if len(shape) == 4 else (0, 0)

    def weight_counts(self, i: int) -> tuple[int, int]:
        """(weights, zeros) of op i's filter, read through DENSIFY / DEQUANTIZE."""
        t = ints(self.operators[i].inputs)[1]
        while t in self.producer and self.name(self.producer[t]) in ("DENSIFY", "DEQUANTIZE"):
            t = ints(self.operators[self.producer[t]].inputs)[0]
        tensor = self.tensor(t)
        total = int(np.prod(ints(tensor.shape)))
        raw = np.asarray(self.model.buffers[tensor.buffer].data if self.model.buffers[tensor.buffer].data
                         is not None else [], dtype=np.uint8).tobytes()
        values = np.frombuffer(raw, dtype=_NUMPY_TYPES.get(tensor.type, np.uint8))
        return total, total - int(np.count_nonzero(values))

    def padding(self, i: int) -> tuple[int, int, int, int] | None:
        """(top, bottom, left, right) padding of a conv, including a PAD op feeding a VALID conv."""
        op = self.operators[i]
        options = op.builtinOptions
        x = ints(op.inputs)[0]
        in_shape = ints(self.tensor(x).shape)
        kh, kw = self.kernel_hw(i)
        sh, sw = options.strideH, options.strideW
        if options.padding == 0:  # SAME
            return (*_same(in_shape[1], kh, sh), *_same(in_shape[2], kw, sw))
        if x in self.producer and self.name(self.producer[x]) in ("PAD", "PADV2"):
            pads = self._constant(ints(self.operators[self.producer[x]].inputs)[1])
            if pads is not None and pads.size == 8:
                pads = pads.reshape(4, 2)
                return int(pads[1, 0]), int(pads[1, 1]), int(pads[2, 0]), int(pads[2, 1])
        return 0, 0, 0, 0

    def _constant(self, t: int) -> np.ndarray | None:
        tensor = self.tensor(t)
        data = self.model.buffers[tensor.buffer].data
        if data is None or len(data) == 0:
            return None
        return np.frombuffer(np.asarray(data, np.uint8).tobytes(), dtype=np.int32 if tensor.type == 2 else np.int64)

    def is_float(self, i: int) -> bool:
        return all(self.tensor(t).type == 0 for t in ints(self.operators[i].outputs))

    def is_stem(self, i: int) -> bool:
        if self.name(i) != "CONV_2D" or not self.is_float(i) or self.kernel_hw(i) != (3, 3):
            return False
        op = self.operators[i]
        in_shape = ints(self.tensor(ints(op.inputs)[0]).shape)
        options = op.builtinOptions
        return (len(in_shape) == 4 and in_shape[3] == 3 and options.strideH == options.strideW == 2
                and self.padding(i) == (1, 1, 1, 1))

    def cluster_from(self, stem: int) -> tuple[list[int], int | None, str | None]:
        """Ops reachable from the stem until a spatial MEAN: (cluster, mean op, first blocking reason)."""
        cluster, end, frontier, seen = [stem], None, [stem], {stem}
        while frontier:
            i = frontier.pop()
            for t in ints(self.operators[i].outputs):
                for j in self.consumers.get(t, []):
                    if j in seen:
                        continue
                    seen.add(j)
                    name = self.name(j)
                    if name == "MEAN":
                        end = j
                        continue
                    reason = self._blocker(j, name)
                    if reason:
                        return cluster, end, reason
                    cluster.append(j)
                    frontier.append(j)
        return cluster, end, None

    def _blocker(self, j: int, name: str) -> str | None:
        if not self.is_float(j):
            return f"op {j} ({name}) is not float"
        if name == "CONV_2D":
            options = self.operators[j].builtinOptions
            if self.kernel_hw(j) != (1, 1) or (options.strideH, options.strideW) != (1, 1):
                return f"op {j} CONV_2D is not a 1x1 stride-1 convolution"
            return None
        if name == "DEPTHWISE_CONV_2D":
            kh, kw = self.kernel_hw(j)
            pad = (kh - 1) // 2
            if (kh, kw) not in ((3, 3), (5, 5)) or self.padding(j) != (pad,) * 4:
                return f"op {j} DEPTHWISE_CONV_2D is not 3x3/5x5 with padding {pad} on each side"
            return None
        if name in ("PAD", "PADV2"):
            return None  # folded into the convolution it feeds
        if name not in _XNN_ELEMENTWISE:
            return f"op {j} ({name}) is not allowed in a sparse subgraph"
        return None


def _same(size: int, kernel: int, stride: int) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2
