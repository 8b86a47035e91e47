"""The latency / energy model (edgekit.costmodel.latency), on IR graphs built here: no TensorFlow, fast."""

from __future__ import annotations

import dataclasses
import math

import pytest

from edgekit.costmodel.analysis import analyze_graph
from edgekit.costmodel.latency import (
    KernelTraits,
    estimate_for_profile,
    estimate_latency,
    int8_channel_group,
    op_seconds,
    op_workloads,
)
from edgekit.costmodel.predict import predicted_costs
from edgekit.costmodel.size import estimate_tflite_bytes, estimate_tflm_arena
from edgekit.ir.graph import Graph, Node, Tensor, Weight
from edgekit.ir.lowering import fold_same_padding
from edgekit.profiles import list_profiles, load_profile


class IRNet:
    """Builds a per-sample IR graph layer by layer (SAME padding), the way keras_ir.from_keras would."""

    def __init__(self, shape: tuple[int, ...]):
        self.tensors = [Tensor("input", shape)]
        self.nodes: list[Node] = []
        self.last = "input"

    @property
    def shape(self) -> tuple[int, ...]:
        return next(t.shape for t in self.tensors if t.name == self.last)

    def add(self, op: str, shape, attrs=None, weights=(), inputs=None) -> IRNet:
        name = f"{op.lower()}_{len(self.nodes)}"
        self.tensors.append(Tensor(name, tuple(shape)))
        self.nodes.append(Node(name, op, tuple(inputs or (self.last,)), (name,), attrs or {}, tuple(weights)))
        self.last = name
        return self

    def conv(self, filters: int, k: int = 3, stride: int = 1, activation: str = "linear", bias: bool = True):
        *spatial, c = self.shape
        out = [-(-d // stride) for d in spatial]
        ks = (k,) * len(spatial)
        weights = [Weight("kernel", (*ks, c, filters), "kernel")] + (
            [Weight("bias", (filters,), "bias")] if bias else []
        )
        op = "Conv2D" if len(spatial) == 2 else "Conv1D"
        return self.add(
            op,
            (*out, filters),
            {
                "kernel_size": ks,
                "strides": (stride,) * len(spatial),
                "padding": "same",
                "activation": activation,
            },
            weights,
        )

    def depthwise(self, k: int = 3, stride: int = 1):
        h, w, c = self.shape
        return self.add(
            "DepthwiseConv2D",
            (-(-h // stride), -(-w // stride), c),
            {
                "kernel_size": (k, k),
                "strides": (stride, stride),
                "padding": "same",
                "activation": "linear",
                "depth_multiplier": 1,
            },
            [Weight("dw", (k, k, c, 1), "depthwise_kernel")],
        )

    def bn(self):
        c = self.shape[-1]
        return self.add(
            "BatchNormalization",
            self.shape,
            {},
            [Weight(r, (c,), r) for r in ("gamma", "beta", "moving_mean", "moving_variance")],
        )

    def relu(self):
        return self.add("ReLU", self.shape, {})

    def gap(self):
        return self.add("GlobalAveragePooling2D", (self.shape[-1],), {})

    def flatten(self):
        return self.add("Flatten", (math.prod(self.shape),), {})

    def maxpool1d(self):
        length, c = self.shape
        return self.add("MaxPooling1D", (length // 2, c), {"pool_size": 2, "strides": 2})

    def add_from(self, other: str):
        """ADD of the current tensor and an earlier one (a residual), then ReLU."""
        self.add("Add", self.shape, {}, inputs=(other, self.last))
        return self.relu()

    def dense(self, units: int, activation: str = "linear"):
        n = self.shape[-1]
        return self.add(
            "Dense",
            (units,),
            {"units": units, "activation": activation},
            [Weight("kernel", (n, units), "kernel"), Weight("bias", (units,), "bias")],
        )

    def graph(self) -> Graph:
        return Graph.build(self.tensors, self.nodes, ["input"], [self.last])


def ds_cnn(width: int, resolution: int = 24) -> Graph:
    """Conv-BN-ReLU, two depthwise-separable blocks, GAP, Dense: every op class at `width` channels."""
    net = IRNet((resolution, resolution, 3)).conv(width, stride=2, bias=False).bn().relu()
    for _ in range(2):
        net.depthwise().bn().relu().conv(width, k=1, bias=False).bn().relu()
    return net.gap().dense(10).graph()


def conv1d_net(width: int) -> Graph:
    net = IRNet((40, 1))
    for _ in range(2):
        net.conv(width, k=5, activation="relu").maxpool1d()
    return net.flatten().dense(10).graph()


def resnet8() -> Graph:
    """MLPerf Tiny image classification ResNet-8 (12.5 M MACs), as edgekit.examples.zoo.resnet8 builds it."""
    net = IRNet((32, 32, 3)).conv(16).bn().relu()
    for filters, stride in ((16, 1), (32, 2), (64, 2)):
        shortcut = net.last
        net.conv(filters, stride=stride).bn().relu().conv(filters).bn()
        main = net.last
        if stride != 1:
            net.last = shortcut
            net.conv(filters, k=1, stride=stride)
            shortcut, net.last = net.last, main
        net.add_from(shortcut)
    return net.gap().dense(10).graph()


def mobilenet_v1_025(channels: int = 3, classes: int = 2) -> Graph:
    """MobileNetV1-0.25 at 96x96 (MLPerf Tiny VWW with 3 channels, TFLM person_detection with 1)."""
    net = IRNet((96, 96, channels)).conv(8, stride=2, bias=False).bn().relu()
    for filters, stride in (
        (16, 1),
        (32, 2),
        (32, 1),
        (64, 2),
        (64, 1),
        (128, 2),
        (128, 1),
        (128, 1),
        (128, 1),
        (128, 1),
        (128, 1),
        (256, 2),
        (256, 1),
    ):
        net.depthwise(stride=stride).bn().relu().conv(filters, k=1, bias=False).bn().relu()
    return net.gap().dense(classes).graph()


PROFILES = [p.name for p in list_profiles()]


@pytest.mark.parametrize("profile_name", PROFILES)
def test_costs_never_rise_when_channels_fall(profile_name):
    profile = load_profile(profile_name)
    for build in (ds_cnn, conv1d_net):
        for precision in profile.precisions_supported:
            previous = None
            for width in (96, 64, 48, 33, 32, 17, 16, 8, 5, 4, 1):
                graph = build(width)
                est = estimate_for_profile(graph, profile, precision)
                figures = (
                    est.latency_ms,
                    est.energy_mj,
                    estimate_tflite_bytes(graph, precision).flash_bytes,
                    estimate_tflm_arena(graph).arena_bytes,
                )
                if previous is not None:
                    assert all(now <= before for now, before in zip(figures, previous)), (
                        f"{profile_name} {build.__name__} {precision} width {width}: {figures} > {previous}"
                    )
                previous = figures


@pytest.mark.parametrize("profile_name", PROFILES)
def test_energy_is_latency_times_active_power(profile_name):
    profile = load_profile(profile_name)
    graph = ds_cnn(32)
    est = estimate_for_profile(graph, profile)
    assert profile.cost_model.energy_pj_per_mac is None and profile.cost_model.energy_pj_per_byte is None
    assert est.energy_mj == pytest.approx(est.latency_ms * profile.power.active_mw / 1000, rel=1e-12)
    # per-MAC and per-byte energies add to it
    with_pj = dataclasses.replace(profile.cost_model, energy_pj_per_mac=2.0, energy_pj_per_byte=1.0)
    est2 = estimate_latency(
        graph, None, with_pj, profile.power, profile.precision_preferred, KernelTraits.from_profile(profile)
    )
    macs = analyze_graph(graph).macs
    moved = sum(
        w.bytes_moved
        for w in op_workloads(graph, profile.precision_preferred, KernelTraits.from_profile(profile))
    )
    assert est2.latency_ms == est.latency_ms
    assert est2.energy_mj == pytest.approx(est.energy_mj + (2.0 * macs + 1.0 * moved) * 1e-9, rel=1e-12)


def test_predicts_on_the_converted_ops_not_the_keras_layers():
    net = IRNet((40, 1)).conv(16, k=5).bn().relu().flatten().dense(10, activation="softmax")
    work = op_workloads(net.graph(), "int8", KernelTraits(runtime="tflm"))
    # BN folded, ReLU fused; Conv1D run as CONV_2D on a reshaped view (the squeeze merges with the Flatten);
    # float I/O adds QUANTIZE / DEQUANTIZE
    assert [w.kind for w in work] == [
        "QUANTIZE",
        "RESHAPE",
        "CONV_2D",
        "RESHAPE",
        "FULLY_CONNECTED",
        "SOFTMAX",
        "DEQUANTIZE",
    ]
    assert [w.macs for w in work] == [0, 0, 40 * 16 * 5, 0, 640 * 10, 0, 0]
    assert [w.op_class for w in work][2:6] == ["conv", "layout", "dense", "elementwise"]


def test_macs_are_padded_to_the_kernel_tiles():
    graph = IRNet((8, 8, 3)).conv(10).gap().dense(10).graph()
    plain = op_workloads(graph, "int8")
    tiled = op_workloads(graph, "int8", KernelTraits(channel_multiple=16, int8_input_channel_group=8))
    conv, dense = (w for w in tiled if w.kind in ("CONV_2D", "FULLY_CONNECTED"))
    assert conv.macs == 64 * 16 * 9 * 8  # 10 output channels -> 16, 3 input channels per tap -> 8
    assert dense.macs == 16 * 16  # 10 inputs -> 8-groups, 10 outputs -> 16
    assert [w.macs for w in plain if w.macs] == [64 * 10 * 27, 100]
    # float kernels do not pack input channels
    assert (
        next(w for w in op_workloads(graph, "float32", KernelTraits(16, 8)) if w.kind == "CONV_2D").macs
        == 64 * 16 * 27
    )


def test_int8_channel_group_follows_the_dot_product_instructions():
    assert int8_channel_group("litert", "AVX-512 (F, BW, VL, VNNI, BF16)") == 8
    assert int8_channel_group("litert", "NEON/ASIMD with dot product (SDOT/UDOT)") == 4
    assert int8_channel_group("litert", "NEON/ASIMD (Armv8.0-A, no dot product)") == 2
    assert int8_channel_group("tflm", "AVX-512 VNNI") == 1


def test_op_time_is_a_roofline_plus_dispatch():
    profile = load_profile("stm32l4r5")
    cm = profile.cost_model
    graph = IRNet((256,)).dense(256).graph()
    (work,) = op_workloads(graph, "float32")
    compute = (
        work.macs / cm.macs_per_s["dense"]["float32"] + work.elements / cm.ops_per_s["elementwise"]["float32"]
    )
    memory = work.bytes_moved / (cm.memory_bandwidth_mb_s * 1e6)
    assert work.bytes_moved == 256 * 256 * 4 + 256 * 4 + 2 * 256 * 4
    assert op_seconds(work, cm, "float32") == pytest.approx(
        max(compute, memory) + cm.per_op_overhead_us * 1e-6
    )
    fast = dataclasses.replace(
        cm,
        macs_per_s={c: {"float32": 1e15} for c in cm.macs_per_s},
        ops_per_s={c: {"float32": 1e15} for c in cm.ops_per_s},
    )
    assert op_seconds(work, fast, "float32") == pytest.approx(memory + cm.per_op_overhead_us * 1e-6)


def test_per_inference_overhead_is_added_once_when_the_cost_model_has_it():
    profile = load_profile("host")
    without = dataclasses.replace(profile.cost_model, per_inference_overhead_us=0.0)
    fitted = dataclasses.replace(profile.cost_model, per_inference_overhead_us=2.5)
    graph = ds_cnn(16)
    base = estimate_latency(graph, None, without, profile.power, "int8", KernelTraits.from_profile(profile))
    more = estimate_latency(graph, None, fitted, profile.power, "int8", KernelTraits.from_profile(profile))
    assert more.latency_ms - base.latency_ms == pytest.approx(0.0025)
    assert more.per_op_ms[0] == ("INVOKE", "", pytest.approx(0.0025))
    assert sum(ms for _, _, ms in more.per_op_ms) == pytest.approx(more.latency_ms)
    edges = sum(ms for kind, layer, ms in more.per_op_ms if not layer)  # INVOKE, QUANTIZE, DEQUANTIZE
    assert [kind for kind, layer, _ in more.per_op_ms if not layer] == ["INVOKE", "QUANTIZE", "DEQUANTIZE"]
    assert sum(more.per_layer_ms.values()) == pytest.approx(more.latency_ms - edges)


def test_ops_xnnpack_does_not_take_cost_a_dispatch_on_litert_only():
    graph = IRNet((64,)).dense(10, activation="softmax").graph()
    litert = {w.kind: w.dispatches for w in op_workloads(graph, "int8", KernelTraits(runtime="litert"))}
    tflm = {w.kind: w.dispatches for w in op_workloads(graph, "int8", KernelTraits(runtime="tflm"))}
    assert litert["SOFTMAX"] == 2 and tflm["SOFTMAX"] == 1
    assert litert["FULLY_CONNECTED"] == tflm["FULLY_CONNECTED"] == 1


def _padded_mobilenet_block(pad, size=16):
    net = IRNet((size, size, 8))
    net.add("ZeroPadding2D", (size + sum(pad[0]), size + sum(pad[1]), 8), {"padding": pad})
    h, w, c = net.shape
    out = ((h - 3) // 2 + 1, (w - 3) // 2 + 1, c)
    net.add(
        "DepthwiseConv2D",
        out,
        {"kernel_size": (3, 3), "strides": (2, 2), "padding": "valid", "activation": "linear"},
        [Weight("dw", (3, 3, c, 1), "depthwise_kernel")],
    )
    return net.graph()


def test_zero_padding_equal_to_same_padding_is_folded_like_the_converter_does():
    folded = fold_same_padding(_padded_mobilenet_block(((0, 1), (0, 1))))
    assert [n.op for n in folded.nodes] == ["DepthwiseConv2D"]
    assert folded.nodes[0].attrs["padding"] == "same" and folded.nodes[0].inputs == ("input",)
    kept = fold_same_padding(_padded_mobilenet_block(((1, 1), (1, 1))))  # stride 2 SAME would pad (0, 1)
    assert [n.op for n in kept.nodes] == ["ZeroPadding2D", "DepthwiseConv2D"]
    assert [w.kind for w in op_workloads(kept, "float32")] == ["PAD", "DEPTHWISE_CONV_2D"]


def test_budgets_use_the_latency_model():
    profile = load_profile("nrf52840")
    analysis = analyze_graph(ds_cnn(32))
    costs = predicted_costs(analysis, profile)
    est = estimate_for_profile(analysis.graph, profile)
    assert costs["latency_ms"][0] == pytest.approx(est.latency_ms)
    assert costs["energy_mj"][0] == pytest.approx(est.energy_mj)


def test_a_microcontroller_is_orders_of_magnitude_slower_than_the_host():
    graph = ds_cnn(64, resolution=48)
    host = estimate_for_profile(graph, load_profile("host"), "int8").latency_ms
    mcu = estimate_for_profile(graph, load_profile("stm32l4r5"), "int8").latency_ms
    assert 300 < mcu / host < 30000


@pytest.mark.parametrize(
    ("profile_name", "graph", "published_ms", "tolerance"),
    [
        # MLPerf Tiny v0.5 reference, TFLM 2.3.1 + CMSIS-NN on the NUCLEO-L4R5ZI: calibrated on these two
        ("stm32l4r5", "resnet8", 1000 / 1.420, 0.02),
        ("stm32l4r5", "vww", 1000 / 1.665, 0.02),
        # TFLM person_detection, figures the profiles were NOT calibrated on (benchmarks/mcu_published.py)
        ("nrf52840", "person_detection", 1200.0, 0.15),
        ("esp32-s3", "person_detection", 54.0, 0.15),
    ],
)
def test_mcu_profiles_predict_the_published_tflm_latencies(profile_name, graph, published_ms, tolerance):
    graphs = {
        "resnet8": resnet8,
        "vww": mobilenet_v1_025,
        "person_detection": lambda: mobilenet_v1_025(channels=1),
    }
    built = graphs[graph]()
    assert analyze_graph(built).macs == pytest.approx(
        {"resnet8": 12.5e6, "vww": 7.49e6, "person_detection": 7.16e6}[graph], rel=0.01
    )
    est = estimate_for_profile(built, load_profile(profile_name), "int8")
    assert est.latency_ms == pytest.approx(published_ms, rel=tolerance)
