"""TensorFlow Lite Micro basics shared by edgekit's TFLM code: build an interpreter in this process,
read what TFLM printed when it refused a model, and the checks run before TFLM sees a model.

A TFLM kernel that meets parameters it cannot handle does not always return an error: some CHECK
and abort the process (SIGABRT). `check_kernel_limits` finds the known cases in the flatbuffer
first, so the user gets the op, the tensor and what to do rather than a dead process.
"""

from __future__ import annotations

import re

import numpy as np

from edgekit.errors import BadInputError, UnsupportedModelError
from edgekit.runners.base import captured_stderr

# TFLM's int8 SOFTMAX computes QuantizeMultiplierGreaterThanOne(input_scale * beta * 2^26) and aborts
# when that is not above 1 (tflite-micro softmax_common.cc, CalculateSoftmaxParams).
SOFTMAX_MIN_INPUT_SCALE = 2.0 ** -26

# ----------------------------------------------------------------------------- failures

# "Too many buffers" is the memory planner running out of the scratch it takes from the arena.
_ARENA_SHORTFALL = re.compile(r"Failed to allocate|Unable to allocate|missing: \d+|Too many buffers")
_MISSING_OP = re.compile(r"Didn't find op for builtin opcode '(\w+)'")
_MISSING_CUSTOM = re.compile(r"Failed to get registration from op code (\w+)")
_NODE_FAILED = re.compile(r"Node (\w+) \(number (\d+)\) failed to (prepare|invoke)")


def _is_arena_shortfall(log: str) -> bool:
    return _ARENA_SHORTFALL.search(log) is not None


def _unsupported_error(log: str, model_bytes: bytes) -> UnsupportedModelError | None:
    """The op-level reason TFLM refused the model, as an error naming the op, or None."""
    if (match := _MISSING_OP.search(log)) is not None:
        return UnsupportedModelError(
            f"TFLite Micro has no kernel for op {match.group(1)}; change the layer that produces it "
            "or target LiteRT instead"
        )
    if _MISSING_CUSTOM.search(log) is not None:
        from edgekit.model_io.flatbuffer import tflite_op_list

        custom = sorted({op for op in tflite_op_list(model_bytes) if op.startswith("CUSTOM")})
        return UnsupportedModelError(
            f"TFLite Micro cannot run custom op(s) {', '.join(custom) or 'CUSTOM'} (Select TF / custom "
            "kernels are not registered); convert with builtin ops only"
        )
    if (match := _NODE_FAILED.search(log)) is not None:
        lines = log[: match.start()].strip().splitlines()
        reason = lines[-1].strip() if lines else "no reason printed"
        return UnsupportedModelError(
            f"TFLite Micro cannot {match.group(3)} op {match.group(1)} (node {match.group(2)}): {reason}; "
            "TFLM kernels take int8 (or float32) tensors: convert with precision 'int8'"
        )
    return None


class ArenaTooSmallError(UnsupportedModelError):
    """The tensor arena given to TFLM is too small for the model."""


def _raise_for_failure(log: str, model_bytes: bytes, arena_size: int) -> None:
    if _is_arena_shortfall(log):
        raise ArenaTooSmallError(
            f"TFLite Micro could not fit the model in a {arena_size} byte arena; "
            "find the size it needs with edgekit.runners.tflm.measure_arena"
        )
    error = _unsupported_error(log, model_bytes)
    if error is not None:
        raise error
    detail = " ".join(log.split())[:300] or "no reason printed"
    raise UnsupportedModelError(f"TFLite Micro could not load the model: {detail}")


# ----------------------------------------------------------------------------- in-process interpreter


def _micro_interpreter(model_bytes: bytes, arena_size: int):
    """A TFLM interpreter with tensors allocated; errors become one-line edgekit errors."""
    from tflite_micro.python.tflite_micro import runtime

    _io_counts(model_bytes)  # refuse non-TFLite bytes before the C++ side sees them
    with captured_stderr() as log:
        try:
            return runtime.Interpreter.from_bytes(bytes(model_bytes), arena_size=int(arena_size))
        except RuntimeError:
            pass
    _raise_for_failure(log.text, model_bytes, arena_size)


def _io_counts(model_bytes: bytes) -> tuple[int, int]:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    data = bytearray(model_bytes)
    if len(data) < 8 or not schema.Model.ModelBufferHasIdentifier(data, 0):
        raise BadInputError(f"not a TFLite flatbuffer ({len(data)} bytes, no 'TFL3' identifier)")
    subgraph = schema.Model.GetRootAs(data, 0).Subgraphs(0)
    return subgraph.InputsLength(), subgraph.OutputsLength()


def _quantization(detail: dict) -> tuple[float, int] | None:
    params = detail.get("quantization_parameters", {})
    scales, zero_points = params.get("scales", ()), params.get("zero_points", ())
    if len(scales) == 0 or not np.issubdtype(np.dtype(detail["dtype"]), np.integer):
        return None
    return float(scales[0]), int(zero_points[0])



def check_kernel_limits(model_bytes: bytes) -> None:
    """UnsupportedModelError for the model parameters known to abort a TFLM kernel (before TFLM runs it)."""
    from ai_edge_litert import schema_py_generated as schema

    data = bytearray(model_bytes)
    model = schema.Model.GetRootAs(data, 0)
    if model.SubgraphsLength() == 0:
        return
    subgraph = model.Subgraphs(0)
    for i in range(subgraph.OperatorsLength()):
        operator = subgraph.Operators(i)
        opcode = model.OperatorCodes(operator.OpcodeIndex())
        if max(opcode.BuiltinCode(), opcode.DeprecatedBuiltinCode()) != schema.BuiltinOperator.SOFTMAX:
            continue
        tensor = subgraph.Tensors(operator.Inputs(0))
        quantization = tensor.Quantization()
        if tensor.Type() != schema.TensorType.INT8 or quantization is None or quantization.ScaleLength() == 0:
            continue
        beta = 1.0
        options = operator.BuiltinOptions()
        if options is not None:
            softmax_options = schema.SoftmaxOptions()
            softmax_options.Init(options.Bytes, options.Pos)
            beta = softmax_options.Beta() or 1.0
        scale = float(quantization.Scale(0))
        if scale * beta <= SOFTMAX_MIN_INPUT_SCALE:
            name = tensor.Name().decode("utf-8", "replace") if tensor.Name() else ""
            where = f" (input tensor {name!r})" if name else ""
            raise UnsupportedModelError(
                f"TensorFlow Lite Micro's int8 SOFTMAX, op {i}{where}, needs an input scale above "
                f"{SOFTMAX_MIN_INPUT_SCALE:.3g} and this model's is {scale:.3g}: its activations collapse to "
                "almost zero on the calibration data (an untrained model, or calibration data unlike real "
                "inputs); calibrate on real samples (--data) or train the model first"
            )
