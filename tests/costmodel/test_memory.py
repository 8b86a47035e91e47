"""Greedy arena planner and the TFLite lowering (pure parts)."""

from edgekit.costmodel.memory import Buffer, peak_activation_bytes, plan_greedy
from edgekit.ir.graph import Graph, Node, Tensor, Weight
from edgekit.ir.lowering import lower


def test_planner_reuses_space_of_dead_buffers():
    plan = plan_greedy([Buffer("a", 100, 0, 1), Buffer("b", 48, 1, 2), Buffer("c", 100, 2, 3)], alignment=16)
    assert plan.offsets["a"] == plan.offsets["c"] == 0
    assert plan.offsets["b"] == 112  # after a, 100 rounded up to 16-byte alignment
    assert plan.peak_bytes == 160


def test_planner_all_live_is_the_sum():
    bufs = [Buffer(str(i), 64, 0, 5) for i in range(4)]
    assert plan_greedy(bufs).peak_bytes == 256


def test_planner_fills_gap_between_buffers():
    # x (0..1) and z (0..3) are placed first; y (2..3) fits where x was, not above z.
    plan = plan_greedy([Buffer("z", 256, 0, 3), Buffer("x", 128, 0, 1), Buffer("y", 128, 2, 3)])
    assert plan.offsets["y"] == plan.offsets["x"] == 256
    assert plan.peak_bytes == 384


def _conv1d_graph(batchnorm_relu=True):
    tensors = [Tensor("in", (40, 1)), Tensor("c", (40, 16))]
    nodes = [Node("conv", "Conv1D", ("in",), ("c",), {"activation": "linear"},
                  (Weight("k", (5, 1, 16), "kernel"), Weight("b", (16,), "bias")))]
    last = "c"
    if batchnorm_relu:
        tensors += [Tensor("bn", (40, 16)), Tensor("r", (40, 16))]
        nodes += [Node("bn", "BatchNormalization", ("c",), ("bn",),
                       weights=tuple(Weight(n, (16,), n) for n in ("gamma", "beta", "moving_mean", "moving_variance"))),
                  Node("relu", "ReLU", ("bn",), ("r",))]
        last = "r"
    tensors += [Tensor("f", (640,)), Tensor("out", (10,))]
    nodes += [Node("flat", "Flatten", (last,), ("f",)),
              Node("fc", "Dense", ("f",), ("out",), {"activation": "softmax"},
                   (Weight("k", (640, 10), "kernel"), Weight("b", (10,), "bias")))]
    return Graph.build(tensors, nodes, ["in"], ["out"])


def test_lowering_folds_bn_fuses_relu_and_expands_conv1d():
    ops = lower(_conv1d_graph()).ops
    # what the TF 2.21 converter emits at batch 1 for Conv1D+BN+ReLU -> Flatten -> Dense(softmax):
    # expand to 4D, conv with BN folded and ReLU fused, one RESHAPE for squeeze + Flatten
    assert [op.kind for op in ops] == ["RESHAPE", "CONV_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]


def _chain_1d(ops):
    tensors, nodes, prev = [Tensor("x", (32, 4))], [], "x"
    for i, op in enumerate(ops):
        out = f"t{i}"
        length = 16 if op == "MaxPooling1D" else 32
        tensors.append(Tensor(out, (length, 4)))
        weights = (Weight("k", (3, 4, 4), "kernel"),) if op == "Conv1D" else ()
        nodes.append(Node(f"n{i}", op, (prev,), (out,), {"activation": "relu"} if op == "Conv1D" else {}, weights))
        prev = out
    return Graph.build(tensors, nodes, ["x"], [prev])


def test_same_layout_1d_ops_need_no_reshape_between_them():
    # Conv1D runs as 1 x L x C, pooling as L x 1 x C: only a change of layout costs a RESHAPE
    kinds = [op.kind for op in lower(_chain_1d(["Conv1D", "Conv1D", "MaxPooling1D"])).ops]
    assert kinds == ["RESHAPE", "CONV_2D", "CONV_2D", "RESHAPE", "MAX_POOL_2D", "RESHAPE"]


def test_float_io_adds_the_float_input_to_the_arena():
    g = _chain_1d(["Conv1D"])
    int8_io = peak_activation_bytes(g, "int8", float_io=False).peak_bytes
    float_io = peak_activation_bytes(g, "int8", float_io=True).peak_bytes
    # QUANTIZE reads the 512 B float input while writing the 128 B int8 copy
    assert int8_io == 256 and float_io == 640


def test_peak_counts_reshape_copies():
    # peak is at the RESHAPE after CONV_2D: two 640-byte int8 buffers live together
    assert peak_activation_bytes(_conv1d_graph(), "int8").peak_bytes == 1280
    assert peak_activation_bytes(_conv1d_graph(), "float32").peak_bytes == 5120
