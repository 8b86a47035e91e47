"""Sparse-aware export: block-sparse Dense layers, the converter's sparse encoding, and who skips the zeros."""

import numpy as np
import pytest

from edgekit.export import sparse as sp
from edgekit.export.tflite import convert
from edgekit.export.xnnpack import xnnpack_sparse_eligible
from edgekit.model_io.flatbuffer import read_model, tflite_op_list
from edgekit.runners import litert


@pytest.fixture(scope="module")
def mlp():
    from edgekit._tf import tf_keras
    from edgekit.examples import zoo

    tf_keras().utils.set_random_seed(0)
    model = zoo.mlp(inputs=64, hidden=(128, 128), classes=10)
    x = np.random.default_rng(0).normal(size=(128, 64)).astype(np.float32)
    return model, x


@pytest.fixture(scope="module")
def blocked(mlp):
    model, _ = mlp
    return sp.sparsify_for_export(model, 0.8)  # no data: one-shot magnitude masks


def test_dense_kernels_are_zeroed_in_blocks_of_16_inputs(blocked, mlp):
    assert blocked.sparsity == pytest.approx(0.8, abs=0.01)
    for layer in blocked.model.layers:
        if hasattr(layer, "kernel"):
            kernel = layer.kernel.numpy()
            blocks = kernel.reshape(kernel.shape[0] // 16, 16, kernel.shape[1])
            zero_blocks = np.all(blocks == 0, axis=1)
            assert np.array_equal(zero_blocks, np.any(blocks == 0, axis=1))  # each block all zero or none
            assert zero_blocks.mean() == pytest.approx(0.8, abs=0.02)
    assert all(np.count_nonzero(w.numpy()) for w in mlp[0].weights if "kernel" in w.name)  # input untouched


def test_int8_blocks_are_stored_sparsely_and_run_by_litert_builtin_kernel(blocked, mlp):
    _model, x = mlp
    dense = convert(blocked.model, "int8", x)
    sparse = convert(blocked.model, "int8", x, sparse=True)
    assert sparse.sparse and sparse.warnings == ()
    assert sparse.size_bytes < 0.45 * dense.size_bytes  # 80 % of the int8 weights gone, block indices added
    weights = sp.sparse_weights(sparse.tflite_bytes, [layer.name for layer in blocked.model.layers])
    assert [(w.op, w.dtype, w.encoding, w.densified_at_load) for w in weights] == \
        [("FULLY_CONNECTED", "int8", "blocks 1x16", False)] * 3
    assert [w.layer for w in weights][:2] == ["fc0", "fc1"]
    assert all(w.zero_fraction == pytest.approx(0.8, abs=0.02) for w in weights)
    verdict = sp.sparsity_verdict(sparse.tflite_bytes)
    assert len(verdict.exploited_by) == 1 and "built-in sparse FULLY_CONNECTED" in verdict.exploited_by[0]
    # the sparse kernel computes what the dense one does, up to int8 rounding
    step = np.ptp(litert.predict(dense.tflite_bytes, x)) / 255
    assert np.max(np.abs(litert.predict(sparse.tflite_bytes, x) - litert.predict(dense.tflite_bytes, x))) <= 3 * step
    assert sp.sparsity_verdict(sparse.tflite_bytes, runtime="tflm").exploited_by == ()


def test_int8_elementwise_sparsity_is_stored_densely_again_so_litert_loads_it(mlp):
    from edgekit.errors import BadInputError

    model, x = mlp
    unstructured = sp.sparsify_for_export(model, 0.8, dense_blocks=False).model
    from edgekit._tf import tensorflow

    tf = tensorflow()
    converter = tf.lite.TFLiteConverter.from_keras_model(unstructured)
    converter.optimizations = [tf.lite.Optimize.DEFAULT, tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    converter.representative_dataset = lambda: ([s[None]] for s in x)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    broken = converter.convert()
    assert "DENSIFY" in tflite_op_list(broken)
    with pytest.raises(BadInputError, match="XNNPack|XNNPACK|delegate"):
        litert.predict(broken, x[:2])  # ai-edge-litert 2.3: XNNPACK fails to prepare DENSIFY -> int8 FC
    fixed, removed = sp.densify_weights(broken)
    assert removed == 3 and "DENSIFY" not in tflite_op_list(fixed)
    # LiteRT's built-in kernels run the DENSIFY model: same numbers as with the weights decoded by edgekit
    np.testing.assert_array_equal(litert.predict(fixed, x, xnnpack=False), litert.predict(broken, x, xnnpack=False))
    litert.predict(fixed, x[:2])  # and the default (XNNPACK) interpreter now loads it
    result = convert(unstructured, "int8", x, sparse=True)
    assert any("stored densely again" in w for w in result.warnings)
    np.testing.assert_array_equal(litert.predict(result.tflite_bytes, x),
                                  litert.predict(convert(unstructured, "int8", x).tflite_bytes, x))


def test_csr_decoding_matches_what_densify_computes(mlp):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    model, x = mlp
    unstructured = sp.sparsify_for_export(model, 0.7, dense_blocks=False).model
    sparse = convert(unstructured, "float32", sparse=True).tflite_bytes
    decoded = {}
    flat = read_model(sparse)
    subgraph = flat.subgraphs[0]
    for op in subgraph.operators:
        if tflite_op_list(sparse)[list(subgraph.operators).index(op)] == "DENSIFY":
            decoded[int(op.outputs[0])] = sp._csr_to_dense(flat, subgraph.tensors[int(op.inputs[0])])
    interpreter = Interpreter(model_content=sparse, experimental_preserve_all_tensors=True,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x[:1])
    interpreter.invoke()
    assert len(decoded) == 3
    for index, dense in decoded.items():
        np.testing.assert_array_equal(interpreter.get_tensor(index), dense)
        assert np.mean(dense == 0) == pytest.approx(0.7, abs=0.02)


def test_sparse_conversions_litert_runs_wrongly_fall_back_to_dense(blocked, mlp):
    _, x = mlp
    result = convert(blocked.model, "dynamic_int8", x, sparse=True)
    assert any("sparse encoding not used" in w and "wrongly" in w for w in result.warnings)
    assert sp.sparse_weights(result.tflite_bytes) == ()
    assert result.tflite_bytes == convert(blocked.model, "dynamic_int8", x).tflite_bytes


def _fast_sparse_convnet(stem_pad_symmetric: bool = True):
    """The Fast Sparse ConvNets shape: padded 3x3 stride-2 stem, depthwise + 1x1 blocks, global mean."""
    from edgekit._tf import tf_keras

    keras = tf_keras()
    L = keras.layers
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = L.ZeroPadding2D(1 if stem_pad_symmetric else ((0, 1), (0, 1)))(inputs)
    x = L.Conv2D(16, 3, strides=2, activation="relu", name="stem")(x)
    for i, width in enumerate((32, 32)):
        x = L.DepthwiseConv2D(3, padding="same", activation="relu", name=f"dw{i}")(x)
        x = L.Conv2D(width, 1, activation="relu", name=f"pw{i}")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(10, name="head")(x))


def test_xnnpack_sparse_inference_eligibility():
    model = _fast_sparse_convnet()
    pruned = sp.sparsify_for_export(model, 0.8).model
    result = convert(pruned, "float32", sparse=True)
    eligible, why = xnnpack_sparse_eligible(result.tflite_bytes)
    assert eligible, why
    verdict = sp.sparsity_verdict(result.tflite_bytes)
    assert verdict.xnnpack_eligible and any("XNNPACK sparse inference on ARM" in b for b in verdict.exploited_by)
    # too few zeros in the 1x1 convolutions
    light = convert(sp.sparsify_for_export(model, 0.5).model, "float32", sparse=True).tflite_bytes
    assert xnnpack_sparse_eligible(light) == (False, "50% of 1x1-conv weights are zero, XNNPACK needs at least 67%")
    # keras.applications-style stem padding (0, 1): not the symmetric padding XNNPACK's sparse stem needs
    asym = convert(sp.sparsify_for_export(_fast_sparse_convnet(False), 0.8).model, "float32", sparse=True)
    assert xnnpack_sparse_eligible(asym.tflite_bytes)[1].startswith("no float 3x3 stride-2 CONV_2D stem")
    # int8 models never qualify: XNNPACK's sparse kernels are float only
    assert sp.sparsity_verdict(convert(pruned, "int8", sparse=True).tflite_bytes).xnnpack_eligible is None


def test_gzip_sees_the_zeros_even_when_the_file_does_not(blocked, mlp):
    model, x = mlp
    dense = convert(model, "int8", x).tflite_bytes
    zeros = convert(blocked.model, "int8", x).tflite_bytes  # same size: zeros stored as zeros
    assert abs(len(zeros) - len(dense)) < 64
    assert sp.gzip_bytes(zeros) < 0.5 * sp.gzip_bytes(dense)
