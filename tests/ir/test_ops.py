"""ir.ops.TFLM_BUILTINS against the kernels the installed tflite-micro build registers (catches drift)."""

from __future__ import annotations

import re
from pathlib import Path

from edgekit.ir.ops import TFLM_BUILTINS, builtin_ops, supported


def _registered_kernels() -> set[str]:
    import tflite_micro

    runtime = next(Path(tflite_micro.__file__).parent.rglob("_runtime*.so"))
    # Itanium-mangled `tflite::Register_<OP>()` (some in tflite::tflm): ...Register_CONV_2DEv
    return {m.decode() for m in re.findall(rb"Register_([A-Z0-9_]+?)Ev", runtime.read_bytes())}


def _builtin_operator_names() -> set[str]:
    from ai_edge_litert import schema_py_generated as schema

    return {name for name in vars(schema.BuiltinOperator) if not name.startswith("_")}


def test_tflm_builtins_equal_the_builtin_kernels_tflite_micro_registers():
    registered = _registered_kernels()
    assert "CONV_2D" in registered and "FULLY_CONNECTED" in registered  # the scan reads real symbols
    assert TFLM_BUILTINS == registered & _builtin_operator_names()


def test_support_lookup_by_runtime():
    assert supported("CONV_2D", "tflm") and supported("CONV_2D", "litert")
    assert not supported("RFFT2D", "tflm") and supported("RFFT2D", "litert")
    assert not supported("CUSTOM:FlexCumprod", "litert")
    assert builtin_ops("SEPARABLE") == ("DEPTHWISE_CONV_2D", "CONV_2D")
    assert builtin_ops("LOGISTIC+MUL") == ("LOGISTIC", "MUL")
