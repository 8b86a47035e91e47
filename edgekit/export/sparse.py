"""Sparse-aware export: zero weights in a layout a runtime can skip, encode them sparsely, say who skips them.

    >>> sparse = sparsify_for_export(model, 0.8, data=(x, y))          # doctest: +SKIP
    >>> result = convert(sparse.model, "int8", x, sparse=True)          # doctest: +SKIP
    >>> sparsity_verdict(result.tflite_bytes).summary                   # doctest: +SKIP

What the TFLite toolchain does with zeros (converter and ai-edge-litert 2.3, checked by hand; see the
export report in the project notes for the measurements):

- The converter's `Optimize.EXPERIMENTAL_SPARSITY` stores a weight tensor sparsely when at least 30 %
  of it is zero (dense_to_sparse.cc, kMinSparsityLevel). If the op has a kernel for a block layout the
  zeros follow (int8 FULLY_CONNECTED: 1x16 blocks along the input axis), the tensor is stored in that
  layout and the op runs on it directly. Otherwise it is stored element-wise (CSR) behind a DENSIFY op
  that rebuilds the dense tensor when the model loads: a smaller file, the same speed.
- LiteRT's built-in FULLY_CONNECTED has sparse kernels for 1x16-block int8 weights
  (FullyConnectedSparseWeight1x16, single-threaded) and 1x4-block float32 weights; XNNPACK does not
  take FULLY_CONNECTED ops with sparse weights and leaves them to these kernels.
- float16 weights stored in blocks (no DENSIFY, a DEQUANTIZE in front of the op) and dynamic-range
  int8 FULLY_CONNECTED on 1x16 blocks give wrong outputs in ai-edge-litert 2.3 (measured: NaN, and
  errors ten times the output range): `convert(..., sparse=True)` compares every sparse conversion with
  the dense one and keeps the dense one when they disagree.
- XNNPACK runs sparse weights sparsely only for float models (weights behind DENSIFY), in subgraphs of
  1x1 convolutions, 3x3/5x5 depthwise convolutions and element-wise ops between a 3x3 stride-2 stem with
  3 input channels (padding 1 on each side) and a spatial mean, when at least 2/3 of the 1x1 weights are
  zero (Fast Sparse ConvNets, Elsen et al. 2020: 1.3-2.4x on ARM phones; edgekit.export.xnnpack checks
  these conditions). On x86 CPUs with AVX it never
  does: XNNPACK's `xnn_is_chw_compatible_config` (src/xnnpack/hardware-config.h) returns false there,
  as its sparse microkernels target SSE only. This host (AVX-512) therefore cannot show that speed-up.
- In ai-edge-litert 2.3 the XNNPACK delegate fails to prepare an int8 FULLY_CONNECTED (full-integer or
  dynamic-range) or a dynamic-range CONV_2D whose weights come from a DENSIFY op: the model does not load
  with default settings. `convert(..., sparse=True)` therefore stores such weights densely again
  (`densify_weights`), and says so.
- TFLite Micro has no DENSIFY kernel and its FULLY_CONNECTED ignores sparsity metadata: MCU exports
  never use the sparse encoding (zeros still make a compressed firmware update smaller).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass

import numpy as np

from edgekit.errors import BadInputError
from edgekit.model_io.flatbuffer import compact, ints, op_name, op_sources, read_model, write_model

CONVERTER_MIN_SPARSITY = 0.3        # below this the converter keeps a tensor dense
INT8_FC_BLOCK = 16                  # LiteRT's int8 sparse FULLY_CONNECTED kernel works on 1x16 blocks

_TYPE_NAMES = {0: "float32", 1: "float16", 9: "int8"}


# ----------------------------------------------------------------------------- Keras side


@dataclass(frozen=True)
class KernelSparsity:
    layer: str
    op: str
    weights: int
    zeros: int

    @property
    def sparsity(self) -> float:
        return self.zeros / self.weights if self.weights else 0.0


def kernel_sparsity(model) -> tuple[KernelSparsity, ...]:
    """Zeros in every conv / dense kernel of a tf_keras model (the weights sparsity can apply to)."""
    out = []
    for layer in model.layers:
        for weight in layer.weights:
            short = weight.name.split("/")[-1].split(":")[0]
            if short in ("kernel", "depthwise_kernel", "pointwise_kernel") and len(weight.shape) >= 2:
                array = weight.numpy()
                out.append(KernelSparsity(layer.name, type(layer).__name__, int(array.size),
                                          int(np.count_nonzero(array == 0))))
    return tuple(out)


def is_sparse(model, threshold: float = CONVERTER_MIN_SPARSITY) -> bool:
    """Whether any kernel is at least `threshold` zeros (the converter's own bar for sparse storage)."""
    return any(k.sparsity >= threshold for k in kernel_sparsity(model))


@dataclass(frozen=True)
class SparseModel:
    """A plain tf_keras model (pruning wrappers stripped) with zeroed weights, and how they were chosen."""

    model: object
    target_sparsity: float
    kernels: tuple[KernelSparsity, ...]
    notes: tuple[str, ...]

    @property
    def sparsity(self) -> float:
        total = sum(k.weights for k in self.kernels)
        return sum(k.zeros for k in self.kernels) / total if total else 0.0


def sparsify_for_export(model, sparsity: float, data: tuple[np.ndarray, np.ndarray | None] | None = None,
                        epochs: int = 2, batch_size: int = 64, learning_rate: float = 1e-3,
                        dense_blocks: bool = True, seed: int = 0) -> SparseModel:
    """Zero `sparsity` of every Conv / Dense kernel with tfmot, in the layout runtimes can use.

    Dense kernels are pruned in blocks of 16 consecutive input weights (tfmot block_size (16, 1)) when
    `dense_blocks` and their input size is a multiple of 16: the layout of LiteRT's int8 sparse
    FULLY_CONNECTED kernel. Convolutions are pruned weight by weight (XNNPACK's sparse 1x1 kernels
    take any pattern). With data=(x, y) the model is fine-tuned for `epochs` while the masks grow
    (PolynomialDecay); y None fine-tunes towards the original model's outputs. Without data the masks
    are applied once by magnitude. `model` is not modified.
    """
    from edgekit._tf import tf_keras

    keras = tf_keras()
    import tensorflow_model_optimization as tfmot

    from edgekit.prune.sparsity import private_copy

    if not 0.0 < sparsity < 1.0:
        raise BadInputError(f"sparsity must be between 0 and 1 (e.g. 0.8), got {sparsity}")
    steps = 0 if data is None else max(1, epochs * int(np.ceil(len(data[0]) / batch_size)))
    frequency = max(1, steps // 20)
    end_step = max(frequency, frequency * (steps // frequency))
    if steps:
        schedule = tfmot.sparsity.keras.PolynomialDecay(0.0, sparsity, begin_step=0, end_step=end_step,
                                                        frequency=frequency)
    else:
        schedule = tfmot.sparsity.keras.ConstantSparsity(sparsity, begin_step=0, frequency=frequency)
    notes: list[str] = []
    prunable = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense,
                keras.layers.SeparableConv2D)

    def wrap(layer):
        if not isinstance(layer, prunable) or isinstance(layer, keras.layers.Conv2DTranspose):
            return layer
        block = (1, 1)
        if isinstance(layer, keras.layers.Dense) and dense_blocks:
            if int(layer.kernel.shape[0]) % INT8_FC_BLOCK == 0:
                block = (INT8_FC_BLOCK, 1)
            else:
                notes.append(f"{layer.name}: {int(layer.kernel.shape[0])} inputs is not a multiple of "
                             f"{INT8_FC_BLOCK}: pruned weight by weight, so no int8 sparse kernel can use it")
        return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule, block_size=block)

    wrapped = keras.models.clone_model(private_copy(model), clone_function=wrap)
    wrappers = [layer for layer in wrapped.layers if hasattr(layer, "pruning_obj")]
    if not wrappers:
        raise BadInputError(f"model {model.name!r} has no Conv or Dense layer to sparsify")
    if data is not None:
        from edgekit.prune.training import fine_tune

        fine_tune(wrapped, data[0], data[1], epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                  teacher=model, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()], seed=seed)
    else:
        notes.append("no data: masks applied once by weight magnitude, without fine-tuning")
    for layer in wrappers:  # the final masks, at the schedule's last step
        layer.pruning_step.assign(end_step)
        layer.pruning_obj.conditional_mask_update()
        layer.pruning_obj.weight_mask_op()
    stripped = tfmot.sparsity.keras.strip_pruning(wrapped)
    return SparseModel(stripped, float(sparsity), kernel_sparsity(stripped), tuple(notes))


# ----------------------------------------------------------------------------- TFLite side


@dataclass(frozen=True)
class SparseWeight:
    """A weight tensor the converter stored sparsely, and the op that uses it."""

    op_index: int
    op: str                  # the op consuming the weights: FULLY_CONNECTED, CONV_2D, ...
    layer: str | None
    dtype: str               # float32 | float16 | int8
    encoding: str            # "elementwise (CSR)" or "blocks 1xN"
    densified_at_load: bool  # a DENSIFY op rebuilds the dense tensor before the op runs
    dense_elements: int
    stored_elements: int

    @property
    def zero_fraction(self) -> float:
        return 1.0 - self.stored_elements / self.dense_elements if self.dense_elements else 0.0


def sparse_weights(tflite_bytes: bytes, layer_names=()) -> tuple[SparseWeight, ...]:
    """Every sparsely stored weight of the main subgraph, with its consuming op and encoding."""
    model = read_model(tflite_bytes)
    subgraph = model.subgraphs[0]
    layers = {s.index: s.layer for s in op_sources(tflite_bytes, layer_names)} if layer_names else {}
    producers = {t: i for i, op in enumerate(subgraph.operators or []) for t in ints(op.outputs)}
    found = []
    for i, op in enumerate(subgraph.operators or []):
        name = op_name(model, op)
        if name in ("DENSIFY", "DEQUANTIZE"):
            continue
        for t in ints(op.inputs):
            if t < 0:
                continue
            source, densified = t, False
            for _ in range(2):  # weight -> [DENSIFY] -> [DEQUANTIZE (float16)] -> op
                producer = producers.get(source)
                if producer is None:
                    break
                producer_name = op_name(model, subgraph.operators[producer])
                if producer_name not in ("DENSIFY", "DEQUANTIZE"):
                    break
                densified |= producer_name == "DENSIFY"
                source = ints(subgraph.operators[producer].inputs)[0]
            tensor = subgraph.tensors[source]
            if tensor.sparsity is None:
                continue
            dense = int(np.prod(ints(tensor.shape)))
            stored = len(model.buffers[tensor.buffer].data) // np.dtype(_numpy_type(tensor.type)).itemsize
            blocks = ints(tensor.sparsity.blockMap)
            encoding = "elementwise (CSR)"
            if blocks:
                size = tensor.sparsity.dimMetadata[-1].denseSize
                encoding = f"blocks 1x{size}"
            found.append(SparseWeight(i, name, layers.get(i), _TYPE_NAMES.get(tensor.type, str(tensor.type)),
                                      encoding, densified, dense, int(stored)))
    return tuple(found)


def _numpy_type(tensor_type: int):
    return {0: np.float32, 1: np.float16, 9: np.int8}.get(tensor_type, np.uint8)


def densify_weights(tflite_bytes: bytes, consumers=("FULLY_CONNECTED",), int8_only: bool = True) -> tuple[bytes, int]:
    """Store DENSIFY-fed weights densely again and drop their DENSIFY ops; returns (bytes, ops removed).

    Only weights whose DENSIFY output feeds one of `consumers` (all ops when None), and only int8 ones
    when int8_only. The dense data is decoded from the CSR encoding the converter writes for
    element-wise sparsity; the model computes exactly what it did before.
    """
    model = read_model(tflite_bytes)
    subgraph = model.subgraphs[0]
    operators = list(subgraph.operators or [])
    consumers_of: dict[int, list[str]] = {}
    for op in operators:
        for t in ints(op.inputs):
            consumers_of.setdefault(t, []).append(op_name(model, op))
    keep, removed = [], 0
    for op in operators:
        if op_name(model, op) == "DENSIFY":
            source, target = ints(op.inputs)[0], ints(op.outputs)[0]
            tensor = subgraph.tensors[source]
            users = consumers_of.get(target, [])
            wanted = consumers is None or any(u in consumers for u in users)
            if wanted and (tensor.type == 9 or not int8_only):
                dense = _csr_to_dense(model, tensor)
                model.buffers.append(_buffer(dense.tobytes()))
                subgraph.tensors[target].buffer = len(model.buffers) - 1
                removed += 1
                continue
        keep.append(op)
    if not removed:
        return tflite_bytes, 0
    subgraph.operators = keep
    compact(model)
    return write_model(model), removed


def _buffer(raw: bytes):
    from ai_edge_litert import schema_py_generated as schema

    buffer = schema.BufferT()
    buffer.data = np.frombuffer(raw, dtype=np.uint8).copy()
    return buffer


def _csr_to_dense(model, tensor) -> np.ndarray:
    """Decode the converter's element-wise encoding: every axis dense but the last, which is CSR."""
    sparsity = tensor.sparsity
    shape = ints(tensor.shape)
    order = ints(sparsity.traversalOrder)
    meta = sparsity.dimMetadata
    if ints(sparsity.blockMap) or order != list(range(len(shape))) or meta[-1].format != 1 \
            or any(m.format != 0 for m in meta[:-1]):
        raise BadInputError("densify_weights handles element-wise (CSR over the last axis) sparse tensors only")
    values = np.frombuffer(bytes(np.asarray(model.buffers[tensor.buffer].data, np.uint8)),
                           dtype=_numpy_type(tensor.type))
    segments = np.asarray(meta[-1].arraySegments.values, dtype=np.int64)
    columns = np.asarray(meta[-1].arrayIndices.values, dtype=np.int64)
    rows = int(np.prod(shape[:-1]))
    dense = np.zeros((rows, shape[-1]), dtype=values.dtype)
    row_of_value = np.repeat(np.arange(rows), np.diff(segments))
    dense[row_of_value, columns] = values
    return dense.reshape(shape)


# ----------------------------------------------------------------------------- who skips the zeros


@dataclass(frozen=True)
class SparsityVerdict:
    """Per model: what is stored sparsely, and which runtime (if any) computes on it sparsely."""

    weights: tuple[SparseWeight, ...]
    exploited_by: tuple[str, ...]   # e.g. "LiteRT built-in sparse FULLY_CONNECTED (1x16 int8)"; () if none
    xnnpack_eligible: bool | None   # float models: XNNPACK's sparse-inference conditions met; None otherwise
    notes: tuple[str, ...]

    @property
    def summary(self) -> str:
        if not self.weights:
            return "no weight stored sparsely: sparsity only helps compression (gzip) of the file"
        who = "; ".join(self.exploited_by) if self.exploited_by else "nobody: weights are densified at load"
        return f"{len(self.weights)} weight tensor(s) stored sparsely; zeros skipped by: {who}"


def sparsity_verdict(tflite_bytes: bytes, layer_names=(), runtime: str = "litert") -> SparsityVerdict:
    """Say, for this converted model, whether its sparsity is exploited at run time and by what."""
    weights = sparse_weights(tflite_bytes, layer_names)
    notes: list[str] = []
    if runtime == "tflm":
        return SparsityVerdict(weights, (), None, ("TFLite Micro has no sparse kernels and no DENSIFY op",))
    by: list[str] = []
    block_fc = [w for w in weights if w.op == "FULLY_CONNECTED" and w.dtype == "int8" and not w.densified_at_load
                and w.encoding == f"blocks 1x{INT8_FC_BLOCK}"]
    if block_fc:
        by.append(f"LiteRT built-in sparse FULLY_CONNECTED kernel ({len(block_fc)} op(s), 1x16 int8 blocks, "
                  "one thread; XNNPACK leaves these ops to it)")
    float_fc = [w for w in weights if w.op == "FULLY_CONNECTED" and w.dtype == "float32"
                and not w.densified_at_load and w.encoding == "blocks 1x4"]
    if float_fc:
        by.append(f"LiteRT built-in sparse FULLY_CONNECTED kernel ({len(float_fc)} op(s), 1x4 float blocks; "
                  "XNNPACK leaves these ops to it)")
    eligible = None
    if _is_float_model(tflite_bytes):
        from edgekit.export.xnnpack import xnnpack_sparse_eligible

        eligible, reason = xnnpack_sparse_eligible(tflite_bytes)
        if eligible:
            by.append("XNNPACK sparse inference on ARM / WebAssembly CPUs (not on x86 with AVX)")
        notes.append(f"XNNPACK sparse inference: {reason}")
    densified = [w for w in weights if w.densified_at_load]
    if densified and not eligible:
        notes.append(f"{len(densified)} tensor(s) behind DENSIFY: rebuilt dense at load, so only the file shrinks")
    return SparsityVerdict(weights, tuple(by), eligible, tuple(notes))


def _is_float_model(tflite_bytes: bytes) -> bool:
    model = read_model(tflite_bytes)
    subgraph = model.subgraphs[0]
    return all(subgraph.tensors[t].type == 0 for t in ints(subgraph.inputs)) and not any(
        op_name(model, op) in ("QUANTIZE",) for op in subgraph.operators or [])


def gzip_bytes(data: bytes) -> int:
    """Size after gzip -9: what a compressed download of the file costs."""
    return len(gzip.compress(bytes(data), compresslevel=9, mtime=0))
