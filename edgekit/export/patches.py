"""Patch-based execution for stock TFLite Micro: rewrite the first stage of an int8 model per spatial patch.

MCUNetV2 (Lin et al. 2021) runs a CNN's first stage patch by patch in its own runtime. Here the same
is a graph rewrite in stock ops, so any TFLM build runs it: for every patch of the stage output, a
SLICE of the input region its receptive field covers, the stage's ops on that region (explicit PAD
where the original SAME padding or PAD op touches the image border, then the op with VALID padding,
sharing the original weights and biases), and CONCATENATION of the pieces (along the columns within a
row of patches, then along the rows) into the original stage output tensor. Ops are stored patch after
patch, so one patch's intermediates are alive at a time.

    >>> patched = patch_model(int8_bytes, split_op=4, grid=(4, 1))     # doctest: +SKIP
    >>> patched.extra_macs, len(patched.tflite_bytes)                   # doctest: +SKIP

Outputs are bit-identical by construction: every piece keeps the quantisation of the tensor it is a
piece of (SLICE, PAD and CONCATENATION copy int8 values), TFLite's SAME padding skips the taps outside
the image, which is the same as padding with the input's zero point (what PAD writes), and each
output value sums the same products in the same order. edgekit.export.patch_search checks it in TFLM.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from edgekit.costmodel.patches import (
    PAD_OPS,
    POINTWISE_OPS,
    WINDOW_OPS,
    ChainOp,
    PatchPlan,
    Region,
    plan_patches,
    same_pad_before,
)
from edgekit.errors import UnsupportedModelError
from edgekit.model_io.flatbuffer import compact, ints, op_name, read_model, tensor_bytes, write_model

_INT32 = 2  # schema TensorType


@dataclass(frozen=True)
class Stage:
    """The first `split_op` ops of a model as a chain, or why they are not one."""

    chain: tuple[ChainOp, ...]
    input_tensor: int
    output_tensor: int
    why_not: str = ""


@dataclass(frozen=True)
class PatchedModel:
    tflite_bytes: bytes
    split_op: int
    grid: tuple[int, int]
    plan: PatchPlan

    @property
    def extra_macs(self) -> int:
        return self.plan.extra_macs


def stage_chain(model, split_op: int) -> Stage:
    """The first split_op ops of a `ModelT` as ChainOps; `why_not` names the op that stops the rewrite."""
    if len(model.subgraphs or []) != 1:
        return Stage((), -1, -1, "several subgraphs")
    subgraph = model.subgraphs[0]
    operators = list(subgraph.operators or [])
    if not 0 < split_op < len(operators):
        return Stage((), -1, -1, f"split point {split_op} outside 1..{len(operators) - 1}")
    tensors, chain, previous = subgraph.tensors, [], None
    consumers: dict[int, int] = {}
    for operator in operators:
        for t in ints(operator.inputs):
            consumers[t] = consumers.get(t, 0) + 1
    graph_outputs = set(ints(subgraph.outputs))
    for index, operator in enumerate(operators[:split_op]):
        kind = op_name(model, operator)
        source, out = ints(operator.inputs)[0], ints(operator.outputs)
        label = f"op {index} ({kind})"
        if previous is not None and source != previous:
            return Stage((), -1, -1, f"{label} does not read the previous op's output: the stage is not a chain")
        if previous is not None and (consumers.get(previous, 0) != 1 or previous in graph_outputs):
            return Stage((), -1, -1, f"the output of op {index - 1} is also used elsewhere (a branch or residual)")
        if len(out) != 1:
            return Stage((), -1, -1, f"{label} has {len(out)} outputs")
        in_shape, out_shape = ints(tensors[source].shape), ints(tensors[out[0]].shape)
        if len(in_shape) != 4 or len(out_shape) != 4 or in_shape[0] != 1:
            return Stage((), -1, -1, f"{label} is not on a batch-1 NHWC feature map")
        op = _chain_op(model, operator, kind, in_shape, out_shape)
        if isinstance(op, str):
            return Stage((), -1, -1, f"{label}: {op}")
        chain.append(op)
        previous = out[0]
    if previous in graph_outputs or not consumers.get(previous):
        return Stage((), -1, -1, "the stage output is a model output: nothing follows the stage")
    return Stage(tuple(chain), ints(operators[0].inputs)[0], previous)


def _chain_op(model, operator, kind: str, in_shape: list[int], out_shape: list[int]) -> ChainOp | str:
    subgraph = model.subgraphs[0]
    common = {"kind": kind, "in_hw": (in_shape[1], in_shape[2]), "out_hw": (out_shape[1], out_shape[2]),
              "in_channels": in_shape[3], "out_channels": out_shape[3]}
    options = operator.builtinOptions
    if kind in WINDOW_OPS:
        weights = ints(subgraph.tensors[ints(operator.inputs)[1]].shape)
        kernel = (weights[1], weights[2])
        stride = (int(options.strideH), int(options.strideW))
        dilation = (max(1, int(options.dilationHFactor)), max(1, int(options.dilationWFactor)))
        same = int(options.padding) == 0
        pads = tuple(same_pad_before(common["in_hw"][a], common["out_hw"][a], kernel[a], stride[a], dilation[a])
                     if same else 0 for a in (0, 1))
        per_pixel = kernel[0] * kernel[1] * out_shape[3] * (weights[3] if kind == "CONV_2D" else 1)
        return ChainOp(**common, kernel=kernel, stride=stride, dilation=dilation, pad_before=pads,
                       macs_per_pixel=per_pixel)
    if kind in PAD_OPS:
        inputs = ints(operator.inputs)
        if kind == "PADV2" and len(inputs) > 2:
            value = tensor_bytes(model, subgraph, inputs[2])
            zero_point = ints(subgraph.tensors[inputs[0]].quantization.zeroPoint)
            if value is None or not zero_point or int(value.view(np.int8)[0]) != zero_point[0]:
                return "PADV2 pads with a value other than the zero point"
        amounts = tensor_bytes(model, subgraph, inputs[1])
        if amounts is None:
            return "its paddings are not constant"
        pads = amounts.view(np.int32 if len(amounts) == 32 else np.int64).reshape(4, 2)
        if pads[0].any() or pads[3].any():
            return "it pads the batch or channel axis"
        return ChainOp(**common, pad_before=(int(pads[1][0]), int(pads[2][0])))
    if kind in POINTWISE_OPS and in_shape == out_shape:
        return ChainOp(**common)
    return f"{kind} is not supported inside a patched stage (CONV_2D, DEPTHWISE_CONV_2D, PAD and activations are)"


def patch_model(tflite_bytes: bytes, split_op: int, grid: tuple[int, int], peel: bool = False) -> PatchedModel:
    """The model with its first split_op ops run per patch of a grid (rows, columns) of the stage output.

    peel: run the rows of patches bottom up and, after each row's last SLICE, SLICE the input rows the
    rows above still read into a tensor of their own: a prefix of the input, which edgekit's plan with
    overlaps places in place (a copy onto itself), so the rows below it are freed while the patches run.
    Without that plan the copy costs memory, so it is off by default.

    Raises UnsupportedModelError naming the op when the first split_op ops are not a chain of
    CONV_2D / DEPTHWISE_CONV_2D / PAD / activation ops on batch-1 NHWC feature maps, or when the
    grid has more patches than the stage output has pixels in a direction.
    """
    model = read_model(tflite_bytes)
    stage = stage_chain(model, split_op)
    if stage.why_not:
        raise UnsupportedModelError(f"cannot patch the first {split_op} ops: {stage.why_not}")
    out_h, out_w = stage.chain[-1].out_hw
    if not (1 <= grid[0] <= out_h and 1 <= grid[1] <= out_w) or grid == (1, 1):
        raise UnsupportedModelError(f"grid {grid} does not split a {out_h}x{out_w} stage output into patches")
    plan = plan_patches(stage.chain, grid)
    _Rewriter(model, stage, plan).rewrite(split_op, peel)
    compact(model)
    return PatchedModel(write_model(model), split_op, tuple(grid), plan)


class _Rewriter:
    """Emits the patched stage's tensors and ops into a ModelT."""

    def __init__(self, model, stage: Stage, plan: PatchPlan) -> None:
        from ai_edge_litert import schema_py_generated as schema

        self.schema, self.model, self.stage, self.plan = schema, model, stage, plan
        self.subgraph = model.subgraphs[0]
        self.originals = list(self.subgraph.operators)
        self.emitted: list = []
        self.constants: dict[bytes, int] = {}  # one tensor per distinct begin / size / paddings vector

    def rewrite(self, split_op: int, peel: bool) -> None:
        rows, cols = self.plan.grid
        width = self.stage.chain[0].in_hw[1]
        rest, pieces = self.stage.input_tensor, [0] * len(self.plan.patches)
        order = range(rows - 1, -1, -1) if peel else range(rows)
        for i in order:  # peeling runs the rows bottom up: `rest` is then a prefix of the input
            for j in range(cols):
                steps = self.plan.patches[i * cols + j]
                current = self._slice(rest, steps[0].in_region)
                if peel and j == cols - 1 and i > 0:
                    # the rows the patches above still read: a prefix of `rest`, planned in place
                    # (edgekit.export.memory_plan), so the rows below it are free for this patch
                    bottom = self.plan.patches[(i - 1) * cols][0].in_region.bottom
                    rest = self._slice(rest, Region(0, bottom, 0, width))
                pieces[i * cols + j] = self._patch(steps, current)
        last = self.stage.output_tensor
        if cols > 1:
            row_outputs = []
            for i in range(rows):
                target = last if rows == 1 else self._activation(last, self.plan.patches[i * cols][-1].out_region,
                                                                 full_width=True)
                self._concat(pieces[i * cols:(i + 1) * cols], target, axis=2)
                row_outputs.append(target)
            pieces = row_outputs
        if len(pieces) > 1:
            self._concat(pieces, last, axis=1)
        self.subgraph.operators = self.emitted + self.originals[split_op:]

    def _patch(self, steps, current: int) -> int:
        """Emit one patch's ops on its input region; returns the tensor holding its piece of the stage output."""
        for step in steps:
            original = self.originals[step.op]
            kind = op_name(self.model, original)
            source = ints(original.inputs)[0]
            if any(step.padding):
                current = self._pad(current, source, step.in_region, step.padding)
            if kind in PAD_OPS:
                continue
            out = self._activation(ints(original.outputs)[0], step.out_region)
            operator = copy.deepcopy(original)
            operator.inputs = [current, *ints(original.inputs)[1:]]
            operator.outputs = [out]
            if kind in WINDOW_OPS:
                operator.builtinOptions.padding = self.schema.Padding.VALID
            self.emitted.append(operator)
            current = out
        return current

    def _activation(self, like: int, region: Region, full_width: bool = False, padding=(0, 0, 0, 0)) -> int:
        """A new activation tensor with the type and quantisation of tensor `like` and a region's shape."""
        tensor = copy.deepcopy(self.subgraph.tensors[like])
        shape = ints(tensor.shape)
        height = region.shape[0] + padding[0] + padding[1]
        width = shape[2] if full_width else region.shape[1] + padding[2] + padding[3]
        tensor.shape = [1, height, width, shape[3]]
        tensor.shapeSignature, tensor.name, tensor.buffer = None, None, 0
        self.subgraph.tensors.append(tensor)
        return len(self.subgraph.tensors) - 1

    def _constant(self, values: np.ndarray) -> int:
        raw = values.astype("<i4").tobytes()
        key = raw + bytes(values.shape)
        if key in self.constants:  # TFLM spends a tensor struct per tensor: share equal vectors
            return self.constants[key]
        buffer = self.schema.BufferT()
        buffer.data = np.frombuffer(raw, dtype=np.uint8).copy()
        self.model.buffers.append(buffer)
        tensor = self.schema.TensorT()
        tensor.shape, tensor.type, tensor.buffer = list(values.shape), _INT32, len(self.model.buffers) - 1
        self.subgraph.tensors.append(tensor)
        self.constants[key] = len(self.subgraph.tensors) - 1
        return self.constants[key]

    def _slice(self, source: int, region: Region) -> int:
        """SLICE of a region of the stage input out of `source` (the input or a prefix of its rows)."""
        channels = ints(self.subgraph.tensors[source].shape)[3]
        begin = self._constant(np.array([0, region.top, region.left, 0]))
        size = self._constant(np.array([1, *region.shape, channels]))
        out = self._activation(source, region)
        self._emit("SLICE", [source, begin, size], out, "SliceOptions")
        return out

    def _pad(self, current: int, like: int, region: Region, padding) -> int:
        top, bottom, left, right = padding
        amounts = self._constant(np.array([[0, 0], [top, bottom], [left, right], [0, 0]]))
        out = self._activation(like, region, padding=padding)
        self._emit("PAD", [current, amounts], out, "PadOptions")
        return out

    def _concat(self, pieces: list[int], out: int, axis: int) -> None:
        options = self._emit("CONCATENATION", pieces, out, "ConcatenationOptions")
        options.axis = axis

    def _emit(self, kind: str, inputs: list[int], out: int, options_name: str):
        operator = self.schema.OperatorT()
        operator.opcodeIndex = self._opcode(kind)
        operator.inputs, operator.outputs = inputs, [out]
        operator.builtinOptionsType = getattr(self.schema.BuiltinOptions, options_name)
        operator.builtinOptions = getattr(self.schema, options_name + "T")()
        self.emitted.append(operator)
        return operator.builtinOptions

    def _opcode(self, kind: str) -> int:
        code = getattr(self.schema.BuiltinOperator, kind)
        for index, existing in enumerate(self.model.operatorCodes):
            if max(int(existing.builtinCode), int(existing.deprecatedBuiltinCode)) == code:
                return index
        entry = self.schema.OperatorCodeT()
        entry.builtinCode, entry.deprecatedBuiltinCode, entry.version = code, min(code, 127), 2
        self.model.operatorCodes.append(entry)
        return len(self.model.operatorCodes) - 1
