"""TensorFlow Lite Micro sources for a converted model: C array, op resolver, arena constant, example main.

    >>> export = build_mcu_sources(int8_bytes, keras_model=model)      # doctest: +SKIP
    >>> export.files["model_ops.h"]                                     # doctest: +SKIP
    >>> export.arena_constant_bytes, export.strip.after.weight_bytes    # doctest: +SKIP

`check_tflm_ops` runs first and refuses a model with an op TFLite Micro has no kernel for, naming the
op and the Keras layer it came from, before anything is measured or written. The flatbuffer is then
stripped (edgekit.export.strip), TFLM is asked for the exact arena on the stripped model (bisection
in a child process, see edgekit.runners.tflm), and both models must give bit-identical outputs.

Files (for a model named `model`):
    model_data.h / .cc   `alignas(16) const unsigned char g_model_data[]`, its length, kTensorArenaSize
    model_ops.h          RegisterModelOps(): exactly the builtin ops the model uses, in a
                         tflite::MicroMutableOpResolver<N>
    main.cc              load, allocate, fill the input, invoke, read the output
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from edgekit.errors import EdgekitError, UnsupportedModelError
from edgekit.export.strip import StripResult, strip_for_mcu
from edgekit.ir.ops import TFLM_BUILTINS
from edgekit.model_io.flatbuffer import op_sources, tflite_op_list

ARENA_MARGIN_FRACTION = 0.10  # over the measured minimum: other TFLM versions, kernels with optimised scratch
ARENA_MARGIN_MIN_BYTES = 512
BYTES_PER_LINE = 12
STRIP_CHECK_SAMPLES = 4  # run through TFLM before and after stripping; outputs must be bit-identical

# MicroMutableOpResolver's Add* method per builtin op (tflite-micro micro_mutable_op_resolver.h).
RESOLVER_METHODS = {
    "ABS": "AddAbs", "ADD": "AddAdd", "ADD_N": "AddAddN", "ARG_MAX": "AddArgMax", "ARG_MIN": "AddArgMin",
    "ASSIGN_VARIABLE": "AddAssignVariable", "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_MATMUL": "AddBatchMatMul", "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
    "BROADCAST_ARGS": "AddBroadcastArgs", "BROADCAST_TO": "AddBroadcastTo", "CALL_ONCE": "AddCallOnce",
    "CAST": "AddCast", "CEIL": "AddCeil", "CONCATENATION": "AddConcatenation", "CONV_2D": "AddConv2D",
    "COS": "AddCos", "CUMSUM": "AddCumSum", "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "DEQUANTIZE": "AddDequantize", "DIV": "AddDiv",
    "DYNAMIC_UPDATE_SLICE": "AddDynamicUpdateSlice", "ELU": "AddElu", "EMBEDDING_LOOKUP": "AddEmbeddingLookup",
    "EQUAL": "AddEqual", "EXP": "AddExp", "EXPAND_DIMS": "AddExpandDims", "FILL": "AddFill", "FLOOR": "AddFloor",
    "FLOOR_DIV": "AddFloorDiv", "FLOOR_MOD": "AddFloorMod", "FULLY_CONNECTED": "AddFullyConnected",
    "GATHER": "AddGather", "GATHER_ND": "AddGatherNd", "GREATER": "AddGreater",
    "GREATER_EQUAL": "AddGreaterEqual", "HARD_SWISH": "AddHardSwish", "IF": "AddIf",
    "L2_NORMALIZATION": "AddL2Normalization", "L2_POOL_2D": "AddL2Pool2D", "LEAKY_RELU": "AddLeakyRelu",
    "LESS": "AddLess", "LESS_EQUAL": "AddLessEqual", "LOG": "AddLog", "LOGICAL_AND": "AddLogicalAnd",
    "LOGICAL_NOT": "AddLogicalNot", "LOGICAL_OR": "AddLogicalOr", "LOGISTIC": "AddLogistic",
    "LOG_SOFTMAX": "AddLogSoftmax", "MAXIMUM": "AddMaximum", "MAX_POOL_2D": "AddMaxPool2D",
    "MEAN": "AddMean", "MINIMUM": "AddMinimum", "MIRROR_PAD": "AddMirrorPad", "MUL": "AddMul", "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual", "PACK": "AddPack", "PAD": "AddPad", "PADV2": "AddPadV2", "PRELU": "AddPrelu",
    "QUANTIZE": "AddQuantize", "READ_VARIABLE": "AddReadVariable", "REDUCE_ALL": "AddReduceAll",
    "REDUCE_MAX": "AddReduceMax", "REDUCE_MIN": "AddReduceMin", "RELU": "AddRelu", "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape", "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor", "REVERSE_V2": "AddReverseV2", "ROUND": "AddRound",
    "RSQRT": "AddRsqrt", "SELECT_V2": "AddSelectV2", "SHAPE": "AddShape", "SIN": "AddSin", "SLICE": "AddSlice",
    "SOFTMAX": "AddSoftmax", "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd", "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit", "SPLIT_V": "AddSplitV", "SQRT": "AddSqrt", "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference", "SQUEEZE": "AddSqueeze", "STRIDED_SLICE": "AddStridedSlice",
    "SUB": "AddSub", "SUM": "AddSum", "SVDF": "AddSvdf", "TANH": "AddTanh", "TRANSPOSE": "AddTranspose",
    "TRANSPOSE_CONV": "AddTransposeConv", "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
    "UNPACK": "AddUnpack", "VAR_HANDLE": "AddVarHandle", "WHILE": "AddWhile", "ZEROS_LIKE": "AddZerosLike",
}


@dataclass(frozen=True)
class McuExport:
    """What `build_mcu_sources` produced: the stripped model, the source files and the figures behind them."""

    tflite_bytes: bytes          # stripped; the bytes the C array holds
    files: dict[str, str]        # file name -> text
    ops: tuple[str, ...]         # builtin ops registered, in first-use order
    arena_bytes: int             # measured minimum (bisection), 16-byte aligned arena
    recorded_arena_bytes: int    # TFLM's recording allocator
    arena_constant_bytes: int    # kTensorArenaSize: measured + margin, rounded up to 16
    strip: StripResult
    notes: tuple[str, ...] = ()
    memory: object | None = None  # edgekit.export.memory_plan.McuMemoryOptimisation when memory_plan
    placement: object | None = None  # edgekit.costmodel.placement.ArenaPlacement when the profile has RAM regions


# ----------------------------------------------------------------------------- op support


def layers_of_ops(tflite_bytes: bytes, keras_model=None) -> list[str | None]:
    """The Keras layer each op of the main subgraph comes from (None where it cannot be told).

    Read from the converter's tensor names; ops whose names mention no layer (e.g. the model's last op,
    named after the signature) take the layer edgekit.costmodel.memory.lower predicts for the same occurrence of
    that op kind.
    """
    if keras_model is None:
        return [None] * len(tflite_op_list(tflite_bytes))
    names = [layer.name for layer in keras_model.layers]
    sources = op_sources(tflite_bytes, names)
    predicted = _predicted_op_layers(keras_model)
    seen: dict[str, int] = {}
    out = []
    for source in sources:
        k = seen.get(source.op, 0)
        seen[source.op] = k + 1
        fallback = predicted.get(source.op, [])
        out.append(source.layer or (fallback[k] if k < len(fallback) else None))
    return out


def _predicted_op_layers(keras_model) -> dict[str, list[str]]:
    try:
        from edgekit.ir.from_keras import from_keras
        from edgekit.ir.lowering import lower
        from edgekit.ir.ops import builtin_ops

        runtime = lower(from_keras(keras_model))
    except (EdgekitError, ValueError, KeyError, TypeError):  # a layer the IR does not know: names alone then
        return {}
    predicted: dict[str, list[str]] = {}
    for op in runtime.ops:
        for kind in builtin_ops(op.kind):
            predicted.setdefault(kind, []).append(op.layer)
    return predicted


def check_tflm_ops(tflite_bytes: bytes, keras_model=None) -> tuple[str, ...]:
    """The model's builtin ops in first-use order; UnsupportedModelError naming op and layer if TFLM lacks one."""
    ops = tflite_op_list(tflite_bytes)
    missing = [(i, op) for i, op in enumerate(ops) if op not in TFLM_BUILTINS or op not in RESOLVER_METHODS]
    if missing:
        layers = layers_of_ops(tflite_bytes, keras_model)
        described = []
        for i, op in missing:
            where = f" from layer {layers[i]!r}" if i < len(layers) and layers[i] else ""
            described.append(f"{op}{where}")
        unique = list(dict.fromkeys(described))
        raise UnsupportedModelError(
            f"TensorFlow Lite Micro has no kernel for op {', '.join(unique)}; replace that layer with one TFLM "
            "supports (see edgekit inspect --device) or target a LiteRT device"
        )
    return tuple(dict.fromkeys(ops))


# ----------------------------------------------------------------------------- source files


def c_identifier(name: str) -> str:
    """A C identifier from a file stem: 'mnist-1d.v2' -> 'mnist_1d_v2'."""
    ident = re.sub(r"\W", "_", name).strip("_") or "model"
    return f"m_{ident}" if ident[0].isdigit() else ident


def model_data_sources(tflite_bytes: bytes, name: str, arena_constant_bytes: int | None,
                       comment: str = "") -> tuple[str, str]:
    """(header, source) defining g_<name>_data (16-byte aligned) and g_<name>_data_len."""
    ident = c_identifier(name)
    guard = f"EDGEKIT_{ident.upper()}_DATA_H_"
    arena = (f"// Tensor arena for this model: measured minimum plus margin (see the export report).\n"
             f"constexpr size_t k{_camel(ident)}TensorArenaSize = {arena_constant_bytes};\n\n"
             if arena_constant_bytes else "")
    header = (
        f"// Generated by edgekit: {len(tflite_bytes)} byte TFLite model '{name}'.{_comment(comment)}\n"
        f"#ifndef {guard}\n#define {guard}\n\n#include <cstddef>\n\n{arena}"
        f"extern const unsigned char g_{ident}_data[];\n"
        f"extern const unsigned int g_{ident}_data_len;\n\n#endif  // {guard}\n"
    )
    source = (
        f"// Generated by edgekit: {len(tflite_bytes)} byte TFLite model '{name}'.\n"
        f'#include "{name}_data.h"\n\n'
        "// 16-byte alignment: TFLite Micro reads weights and biases in place.\n"
        f"alignas(16) const unsigned char g_{ident}_data[] = {{\n" + c_array_rows(tflite_bytes) + "\n};\n"
        f"const unsigned int g_{ident}_data_len = {len(tflite_bytes)};\n"
    )
    return header, source


# "0x00, " ... "0xff, ": one 6-byte cell per byte value, so a model of megabytes is formatted by numpy indexing
_HEX_CELLS = np.frombuffer("".join(f"0x{b:02x}, " for b in range(256)).encode("ascii"), np.uint8).reshape(256, 6)


def c_array_rows(data: bytes) -> str:
    """The body of a C byte array: BYTES_PER_LINE bytes a line as '    0x1c, 0x00, ...,', lines joined by newlines."""
    cells = _HEX_CELLS[np.frombuffer(data, np.uint8)]
    full = len(data) // BYTES_PER_LINE
    parts = []
    if full:
        rows = np.empty((full, 4 + 6 * BYTES_PER_LINE), np.uint8)
        rows[:, :4] = ord(" ")
        rows[:, 4:] = cells[:full * BYTES_PER_LINE].reshape(full, -1)
        rows[:, -1] = ord("\n")  # the last cell's space: each line ends in ","
        parts.append(rows.tobytes())
    rest = cells[full * BYTES_PER_LINE:]
    if len(rest):
        parts.append(b"    " + rest.tobytes()[:-1] + b"\n")
    return b"".join(parts).decode("ascii")[:-1]


def op_resolver_header(ops, name: str) -> str:
    """model_ops.h: a MicroMutableOpResolver sized for exactly `ops`, and a function registering them."""
    ident = c_identifier(name)
    camel = _camel(ident)
    guard = f"EDGEKIT_{ident.upper()}_OPS_H_"
    lines = "\n".join(f"  if (resolver.{RESOLVER_METHODS[op]}() != kTfLiteOk) return kTfLiteError;  // {op}"
                      for op in ops)
    return (
        f"// Generated by edgekit: the {len(ops)} builtin ops model '{name}' uses, nothing more.\n"
        f"#ifndef {guard}\n#define {guard}\n\n"
        '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"\n\n'
        f"constexpr unsigned int k{camel}OpCount = {len(ops)};\n"
        f"using {camel}OpResolver = tflite::MicroMutableOpResolver<k{camel}OpCount>;\n\n"
        f"inline TfLiteStatus Register{camel}Ops({camel}OpResolver& resolver) {{\n{lines}\n  return kTfLiteOk;\n}}\n\n"
        f"#endif  // {guard}\n"
    )


# Ops that keep state in variable tensors between invokes: a new independent sequence needs interpreter.Reset().
STATEFUL_OPS = frozenset({"UNIDIRECTIONAL_SEQUENCE_LSTM", "UNIDIRECTIONAL_SEQUENCE_RNN", "BIDIRECTIONAL_SEQUENCE_LSTM",
                          "BIDIRECTIONAL_SEQUENCE_RNN", "VAR_HANDLE", "ASSIGN_VARIABLE", "READ_VARIABLE"})


def main_example(name: str, placement=None, stateful: bool = False) -> str:
    """A short main.cc: load the array, register ops, allocate the arena, invoke once, print the output.
    stateful: the model keeps state in variable tensors (STATEFUL_OPS): reset them before each sequence.

    placement (edgekit.costmodel.placement.ArenaPlacement): use the arena buffer(s) of {name}_arena.h, placed
    in the device's RAM regions, instead of a local array."""
    ident = c_identifier(name)
    camel = _camel(ident)
    arena = f"namespace {{\nalignas(16) uint8_t tensor_arena[k{camel}TensorArenaSize];\n}}  // namespace\n"
    setup = f"  static tflite::MicroInterpreter interpreter(model, resolver, tensor_arena, k{camel}TensorArenaSize);\n"
    includes, size = "", f"k{camel}TensorArenaSize"
    if placement is not None:
        from edgekit.export.mcu_regions import interpreter_setup

        includes, setup = interpreter_setup(ident, camel, placement)
        includes = f'#include "{name}_arena.h"\n' + includes
        arena = f"// The arena buffer(s) are in {name}_arena.cc, placed in RAM regions (see {name}_memory.md).\n"
        if placement.split:
            size = f"k{camel}PersistentArenaSize + k{camel}NonPersistentArenaSize"
    reset = ("  // This model keeps state (e.g. an LSTM's h and c) in variable tensors between Invoke() calls:\n"
             "  // reset them before each independent sequence, as edgekit's checks do for every sample.\n"
             "  interpreter.Reset();\n") if stateful else ""
    return f"""// Generated by edgekit: minimal example of running model '{name}' with TensorFlow Lite Micro.
// Build it inside a TFLM project (e.g. next to tensorflow/lite/micro/examples/hello_world).
#include <cstdint>
#include <cstring>

#include "{name}_data.h"
#include "{name}_ops.h"
{includes}#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/schema/schema_generated.h"

{arena}
int main() {{
  const tflite::Model* model = tflite::GetModel(g_{ident}_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) {{
    MicroPrintf("model schema %d, expected %d", model->version(), TFLITE_SCHEMA_VERSION);
    return 1;
  }}
  static {camel}OpResolver resolver;
  if (Register{camel}Ops(resolver) != kTfLiteOk) return 1;
{setup}  if (interpreter.AllocateTensors() != kTfLiteOk) {{
    MicroPrintf("AllocateTensors failed: raise {size}");
    return 1;
  }}
  TfLiteTensor* input = interpreter.input(0);
  // Put your sample here. int8 inputs: q = round(x / input->params.scale) + input->params.zero_point.
  std::memset(input->data.raw, 0, input->bytes);
{reset}  if (interpreter.Invoke() != kTfLiteOk) return 1;
  TfLiteTensor* output = interpreter.output(0);
  for (size_t i = 0; i < output->bytes && i < 16; ++i) {{
    MicroPrintf("output byte %d: %d", static_cast<int>(i), static_cast<int>(output->data.int8[i]));
  }}
  MicroPrintf("arena used: %d of %d bytes", static_cast<int>(interpreter.arena_used_bytes()),
              static_cast<int>({size}));
  return 0;
}}
"""


def _camel(ident: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in ident.split("_") if part) or "Model"


def _comment(text: str) -> str:
    return f"\n// {text}" if text else ""


def arena_with_margin(arena_bytes: int) -> int:
    margin = max(int(np.ceil(arena_bytes * ARENA_MARGIN_FRACTION)), ARENA_MARGIN_MIN_BYTES)
    return -(-(arena_bytes + margin) // 16) * 16


# ----------------------------------------------------------------------------- the whole export


def build_mcu_sources(tflite_bytes: bytes, name: str = "model", keras_model=None,
                      check_data: np.ndarray | None = None, strip: bool = True,
                      memory_plan: bool = False, memory_overlap: bool = False,
                      share_vectors: bool = True, ram_regions=(), profile_name: str = "the profile") -> McuExport:
    """Check ops, strip, measure the arena and write the TFLM sources (in memory; nothing touches disk).

    check_data: samples run through TFLM before and after stripping (random ones when None); the
    outputs must be identical or the unstripped model is kept (and a note says so).
    memory_plan: store edgekit's operator order and offline memory plan when TFLM then needs a smaller
    arena with identical outputs (edgekit.export.memory_plan.optimise_for_mcu); memory_overlap: also try
    outputs overlapping their dying input (relies on the reference kernels' write order). share_vectors:
    store repeated quantisation / shape vectors once while stripping (edgekit.export.strip).
    ram_regions (edgekit.ram_regions.RamRegion, from the profile): place the arena's parts in the fastest
    regions they fit (edgekit.costmodel.placement; DoesNotFitError when a part fits none) and write
    {name}_arena.h/.cc with linker section attributes and {name}_memory.md.
    """
    from edgekit.runners import tflm

    ops = check_tflm_ops(tflite_bytes, keras_model)
    notes: list[str] = []
    stripped = strip_for_mcu(tflite_bytes, share=share_vectors) if strip else None
    model_bytes = stripped.tflite_bytes if stripped is not None else tflite_bytes
    if stripped is not None:
        x = _check_inputs(tflite_bytes, check_data)
        before = tflm.predict_named(tflite_bytes, x)
        after = tflm.predict_named(model_bytes, x)
        if not all(np.array_equal(a, b) for a, b in zip(before.values(), after.values())):
            notes.append("stripping changed TFLM's outputs: the unstripped model is exported")
            model_bytes, stripped = tflite_bytes, None
    if stripped is None:
        stripped = StripResult(model_bytes, *(2 * [_breakdown(model_bytes)]), ())
    memory = None
    if memory_plan:
        from edgekit.export.memory_plan import optimise_for_mcu

        memory = optimise_for_mcu(model_bytes, check_data, overlap=memory_overlap)
        model_bytes = memory.tflite_bytes
        notes.append(memory.note())
    arena = tflm.measure_arena(model_bytes)
    constant = arena_with_margin(arena.arena_bytes)
    header, source = model_data_sources(
        model_bytes, name, constant,
        f"Weights {stripped.after.weight_bytes} bytes, everything else {stripped.after.overhead_bytes} bytes; "
        f"arena measured {arena.arena_bytes} bytes on TFLM (host, 64-bit).")
    placement = None
    files = {f"{name}_data.h": header, f"{name}_data.cc": source, f"{name}_ops.h": op_resolver_header(ops, name)}
    if ram_regions:
        from edgekit.export.mcu_regions import arena_sources, place_measured_arena

        placement = place_measured_arena(arena, constant, ram_regions, profile_name, arena_with_margin)
        ident = c_identifier(name)
        files.update(arena_sources(name, ident, _camel(ident), placement, ram_regions, profile_name))
        notes.append(placement.note())
    stateful = sorted(STATEFUL_OPS.intersection(ops))
    if stateful:
        notes.append(f"{', '.join(stateful)} keeps state between invokes: call interpreter.Reset() before each "
                     "independent sequence (main.cc shows where)")
    files["main.cc"] = main_example(name, placement, stateful=bool(stateful))
    return McuExport(model_bytes, files, ops, arena.arena_bytes, arena.recorded_total_bytes, constant,
                     stripped, tuple(notes), memory, placement)


def _breakdown(tflite_bytes: bytes):
    from edgekit.export.strip import size_breakdown

    return size_breakdown(tflite_bytes)


def _check_inputs(tflite_bytes: bytes, check_data) -> list[np.ndarray]:
    """Up to STRIP_CHECK_SAMPLES samples per input: from check_data (an array, or a list / dict per
    input), else standard-normal noise. Stripping changes no arithmetic, so a few samples show it; on a
    large model every TFLM invoke takes seconds."""
    from edgekit.runners.base import ordered_inputs

    if check_data is not None:
        return [x[:STRIP_CHECK_SAMPLES] for x in ordered_inputs(tflite_bytes, check_data)]
    from edgekit.model_io.flatbuffer import ints, read_model

    subgraph = read_model(tflite_bytes).subgraphs[0]
    rng = np.random.default_rng(0)
    return [rng.standard_normal((STRIP_CHECK_SAMPLES, *ints(subgraph.tensors[i].shape)[1:])).astype(np.float32)
            for i in ints(subgraph.inputs)]
