"""The planner on IR graphs built here (no TensorFlow): NetAdapt moves, costs, the choice, the impossible case."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from edgekit.budgets import BUDGET_KEYS
from edgekit.channels.groups import build_groups
from edgekit.channels.keep import shrink_graph
from edgekit.costmodel.analysis import analyze_graph
from edgekit.costmodel.predict import predicted_costs
from edgekit.errors import DoesNotFitError
from edgekit.ir.graph import Graph, Node, Tensor, Weight
from edgekit.planner.netadapt import netadapt, next_count
from edgekit.planner.plan_json import plan_from_dict, read_plan, write_plan
from edgekit.planner.search import (
    Candidate,
    PlannerOptions,
    StudentSpec,
    candidates_to_evaluate,
    cost_fn,
    decide,
    lean_analysis,
    original_candidates,
    pruning_candidates,
)
from edgekit.planner.types import DEFAULT_OPTIONS
from edgekit.profiles import load_profile


class Net:
    """Builds channels-last IR graphs layer by layer ('same' padding), as keras_ir would describe them."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.tensors = {"x": Tensor("x", shape)}
        self.nodes: list[Node] = []

    def _add(self, name: str, op: str, inputs: list[str], shape: tuple[int, ...], attrs=None, weights=()) -> str:
        self.tensors[name] = Tensor(name, shape)
        self.nodes.append(Node(name, op, tuple(inputs), (name,), attrs or {}, tuple(weights)))
        return name

    def conv(self, name: str, x: str, filters: int, k: int = 3, stride: int = 1) -> str:
        h, w, c = self.tensors[x].shape
        shape = (math.ceil(h / stride), math.ceil(w / stride), filters)
        return self._add(name, "Conv2D", [x], shape,
                         {"filters": filters, "kernel_size": (k, k), "strides": (stride, stride), "padding": "same",
                          "activation": "linear"},
                         [Weight(f"{name}/kernel", (k, k, c, filters), "kernel"), Weight(f"{name}/bias", (filters,),
                                                                                         "bias")])

    def depthwise(self, name: str, x: str) -> str:
        h, w, c = self.tensors[x].shape
        return self._add(name, "DepthwiseConv2D", [x], (h, w, c),
                         {"kernel_size": (3, 3), "strides": (1, 1), "padding": "same", "depth_multiplier": 1},
                         [Weight(f"{name}/depthwise_kernel", (3, 3, c, 1), "depthwise_kernel")])

    def bn(self, name: str, x: str) -> str:
        c = self.tensors[x].channels
        return self._add(name, "BatchNormalization", [x], self.tensors[x].shape, {"axis": -1},
                         [Weight(f"{name}/{r}", (c,), r) for r in ("gamma", "beta", "moving_mean", "moving_variance")])

    def relu(self, name: str, x: str) -> str:
        return self._add(name, "ReLU", [x], self.tensors[x].shape)

    def add(self, name: str, a: str, b: str) -> str:
        return self._add(name, "Add", [a, b], self.tensors[a].shape)

    def gap(self, name: str, x: str) -> str:
        return self._add(name, "GlobalAveragePooling2D", [x], (self.tensors[x].channels,))

    def dense(self, name: str, x: str, units: int) -> str:
        c = self.tensors[x].channels
        return self._add(name, "Dense", [x], (units,), {"units": units, "activation": "linear"},
                         [Weight(f"{name}/kernel", (c, units), "kernel"), Weight(f"{name}/bias", (units,), "bias")])

    def graph(self, output: str, name: str = "net") -> Graph:
        return Graph.build(self.tensors.values(), self.nodes, ["x"], [output], name)



def plan_graph(graph, scores, profile, budgets, options=DEFAULT_OPTIONS, groups=None):
    """The pure planning steps `edgekit.workflows.plan.plan` runs, without students or evaluation."""
    groups = groups or build_groups(graph)
    originals = original_candidates(graph, profile, budgets, options)
    pruned, notes = ((), ())
    if not any(c.fits_margin for c in originals):
        pruned, notes = pruning_candidates(groups, scores, profile, budgets, options)
    return decide(graph.name, graph, profile, budgets, originals + pruned, options, notes=notes)


def ds_cnn(size: int = 24, width: int = 32) -> Graph:
    """Conv stem -> 2 x (depthwise, pointwise) -> global pool -> Dense: a small keyword-spotting-like net."""
    n = Net((size, size, 1))
    x = n.relu("stem_relu", n.bn("stem_bn", n.conv("stem", "x", width, stride=2)))
    for i in range(2):
        x = n.relu(f"dw{i}_relu", n.bn(f"dw{i}_bn", n.depthwise(f"dw{i}", x)))
        x = n.relu(f"pw{i}_relu", n.bn(f"pw{i}_bn", n.conv(f"pw{i}", x, width * (i + 1), k=1)))
    return n.graph(n.dense("logits", n.gap("gap", x), 10), "ds_cnn")


def residual_net(size: int = 16, width: int = 16) -> Graph:
    """Stem + one identity residual block + one conv, so one channel group spans the Add."""
    n = Net((size, size, 3))
    x = n.relu("stem_relu", n.conv("stem", "x", width))
    y = n.relu("b_relu", n.conv("b_conv1", x, width))
    y = n.conv("b_conv2", y, width)
    x = n.relu("b_out", n.add("b_add", x, y))
    x = n.relu("c_relu", n.conv("c", x, 2 * width, stride=2))
    return n.graph(n.dense("logits", n.gap("gap", x), 4), "residual_net")


def mlp(inputs: int = 8, hidden: tuple[int, ...] = (16, 16), classes: int = 2) -> Graph:
    n = Net((inputs,))
    n.tensors["x"] = Tensor("x", (inputs,))
    x = "x"
    for i, units in enumerate(hidden):
        x = n.dense(f"fc{i}", x, units)
    return n.graph(n.dense("out", x, classes), "mlp")


def random_scores(graph: Graph, seed: int = 0) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {g.id: rng.uniform(0.1, 1.0, g.size) for g in build_groups(graph).prunable_groups}


def budgets_of(profile, **overrides):
    return profile.budgets.with_overrides(**overrides)


def costs_of(graph: Graph, profile, precision: str) -> dict[str, float]:
    """The costs the rest of edgekit predicts (the full analysis), to check the planner against."""
    return {k: v for k, (v, _) in predicted_costs(analyze_graph(graph), profile, precision).items()}


# ------------------------------------------------------------------------------------------- the search


def test_next_count_steps_in_simd_multiples():
    assert next_count(64, 8, 8, 0.125) == 56
    assert next_count(64, 8, 8, 0.5) == 32
    assert next_count(10, 4, 4, 0.125) == 8      # aligns down to the multiple first
    assert next_count(8, 8, 8, 0.125) is None    # at the floor
    assert next_count(3, 1, 4, 0.125) == 2       # below one vector: one channel at a time


def test_netadapt_keeps_the_most_important_channels_within_a_params_target():
    graph = mlp(inputs=4, hidden=(16,), classes=2)   # params = 4*16 + 16 + 16*2 + 2 = 114; 7 per hidden unit
    groups = build_groups(graph)
    (group,) = groups.prunable_groups
    scores = {group.id: np.arange(16.0) + 1.0}
    result = netadapt(groups, scores, lambda g: {"params": g.params}, {"params": 75})
    kept = sorted(result.keep[group.id])
    # 2 + 7 * n <= 75 -> n = 10: the ten highest-scored units, and one more would not fit
    assert kept == list(range(6, 16))
    assert result.reached and result.costs["params"] == 72
    assert result.importance_kept == pytest.approx(sum(range(7, 17)) / sum(range(1, 17)))


def test_netadapt_never_takes_a_move_that_raises_a_watched_cost():
    graph = mlp(inputs=8, hidden=(16, 16))
    groups = build_groups(graph)
    first, second = (g.id for g in groups.prunable_groups)
    sizes = {first: 16}

    def costs(g: Graph) -> dict[str, float]:
        # shrinking the first group saves params but raises "ram": the search must leave it alone
        return {"params": g.params, "ram": 100.0 + (sizes[first] - g.tensors["fc0"].channels)}

    scores = {first: np.full(16, 0.01), second: np.ones(16)}   # the first group looks far cheaper to cut
    result = netadapt(groups, scores, costs, {"params": 200, "ram": 1000})
    assert result.reached
    assert len(result.keep[first]) == 16 and len(result.keep[second]) < 16


@pytest.mark.parametrize("device, precision", [("nrf52840", "int8"), ("pixel7", "float32"), ("stm32l4r5", "int8")])
@pytest.mark.parametrize("make", [ds_cnn, residual_net, mlp])
def test_costs_never_rise_when_the_planner_removes_channels(make, device, precision):
    graph = make()
    profile = load_profile(device)
    groups = build_groups(graph)
    fn = cost_fn(profile, precision)
    start = fn(graph)
    # targets at a quarter of every cost: the search runs until it can go no further
    result = netadapt(groups, random_scores(graph), fn, {k: v / 4 for k, v in start.items()},
                      channel_multiple=profile.channel_multiple, give_back=False)
    assert len(result.steps) >= 3
    previous = start
    for step in result.steps:
        assert step.channels_after < step.channels_before
        for key in BUDGET_KEYS:
            assert step.costs[key] <= previous[key] * (1 + 1e-9), (step, key)
        previous = step.costs
    assert all(result.costs[k] < start[k] for k in ("flash_bytes", "latency_ms"))


def test_lean_analysis_predicts_what_the_full_analysis_predicts():
    for graph in (ds_cnn(), residual_net(), mlp()):
        groups = build_groups(graph)
        half = {g.id: frozenset(range(0, g.size, 2)) for g in groups.prunable_groups}
        for g in (graph, shrink_graph(groups, half)):
            for device in ("nrf52840", "pixel7", "raspberry-pi-4"):
                profile = load_profile(device)
                for precision in profile.precisions_supported:
                    lean = predicted_costs(lean_analysis(g, profile, precision), profile, precision)
                    assert lean == predicted_costs(analyze_graph(g), profile, precision)


def test_pruning_thins_several_groups_instead_of_emptying_one():
    # Each fc0 unit costs 8 + |fc1| params, each fc1 unit |fc0| + 2: cutting fc0 always saves more, so a
    # linear importance measure would empty fc0 first. The logarithmic one must spread the cut.
    graph = mlp(inputs=8, hidden=(32, 32), classes=2)
    groups = build_groups(graph)
    scores = {g.id: np.ones(g.size) for g in groups.prunable_groups}
    result = netadapt(groups, scores, lambda g: {"params": g.params}, {"params": graph.params * 0.4})
    assert result.reached
    kept = sorted(len(units) for units in result.keep.values())
    assert kept[0] >= 8, kept


# ------------------------------------------------------------------------------------------- plans


def test_a_model_that_fits_is_kept_as_it_is():
    graph = mlp()
    profile = load_profile("nrf52840")
    plan = plan_graph(graph, random_scores(graph), profile, profile.budgets)
    assert plan.chosen.kind == "original" and plan.precision == "int8"
    assert all(c.kind == "original" for c in plan.candidates)
    costs = costs_of(graph, profile, "int8")
    assert plan.predicted == costs
    limits = profile.budgets.as_dict()
    assert plan.binding_budget == max(limits, key=lambda k: costs[k] / limits[k])


def test_tight_latency_gives_a_pruned_plan_that_fits_with_the_margin():
    graph = ds_cnn()
    profile = load_profile("nrf52840")
    original = costs_of(graph, profile, "int8")
    budgets = budgets_of(profile, latency_ms=original["latency_ms"] * 0.5)
    groups = build_groups(graph)
    plan = plan_graph(graph, random_scores(graph), profile, budgets, groups=groups)
    chosen = plan.chosen
    assert chosen.kind == "pruned" and plan.precision == "int8" and plan.binding_budget == "latency_ms"
    limit = budgets.latency_ms
    assert plan.predicted["latency_ms"] <= 0.9 * limit
    # the plan's figures are what the full analysis predicts for the pruned IR
    shrunk = shrink_graph(groups, chosen.keep)
    assert costs_of(shrunk, profile, "int8") == dict(chosen.predicted)
    by_name = {n.name: n for n in shrunk.nodes}
    for layer in chosen.layers:
        assert layer.channels_after == shrunk.tensors[by_name[layer.name].outputs[0]].channels
        if layer.channels_after < layer.channels_before:   # cut in whole SIMD vectors, never below one
            assert layer.channels_after % profile.channel_multiple == 0 and layer.kept_channels is not None
            assert len(layer.kept_channels) == layer.channels_after
    # give-back: one more SIMD step on any group would break the latency target
    fn = cost_fn(profile, "int8")
    for g in groups.prunable_groups:
        kept = len(chosen.keep[g.id])
        if kept < g.size:
            grown = {**chosen.keep, g.id: frozenset(range(min(g.size, kept + profile.channel_multiple)))}
            assert fn(shrink_graph(groups, grown))["latency_ms"] > 0.9 * limit


@pytest.mark.parametrize("device", ["nrf52840", "pixel7"])
def test_precisions_costing_more_everywhere_are_not_searched(device):
    graph = ds_cnn()
    profile = load_profile(device)
    budgets = budgets_of(profile, latency_ms=costs_of(graph, profile, "int8")["latency_ms"] * 0.7)
    candidates, notes = pruning_candidates(build_groups(graph), random_scores(graph), profile, budgets)
    searched = [c.precision for c in candidates]
    skipped = [n.split(":")[0] for n in notes if "not searched" in n]
    assert searched[0] == "int8" and set(searched) | set(skipped) == set(profile.precisions_supported)
    if device == "nrf52840":   # float32: same arena, 4x the weights, ~4x slower: never worth searching
        assert skipped == ["float32"]
    original = {p: costs_of(graph, profile, p) for p in profile.precisions_supported}
    limits = {k: v for k, v in budgets.as_dict().items() if v is not None}

    def dominates(a: str, b: str) -> bool:
        return all(original[a][k] <= original[b][k] for k in limits)

    for p in skipped:   # skipped: some precision searched before it costs no more on any budget
        assert any(dominates(q, p) for q in searched)
    for i, p in enumerate(searched[1:], 1):   # searched: nothing searched before it dominates it
        assert not any(dominates(q, p) for q in searched[:i])


def test_groups_go_below_the_simd_width_only_when_nothing_else_fits():
    graph = mlp(inputs=256, hidden=(16,), classes=2)
    profile = load_profile("nrf52840")   # channel_multiple 4
    groups = build_groups(graph)
    (group,) = groups.prunable_groups
    fn = cost_fn(profile, "int8")

    def flash(units: int) -> float:
        return fn(shrink_graph(groups, {group.id: frozenset(range(units))}))["flash_bytes"]

    budgets = budgets_of(profile, flash_bytes=int((flash(2) + flash(3)) / 2 / 0.9))  # 2 units fit, 3 do not
    plan = plan_graph(graph, random_scores(graph), profile, budgets, groups=groups)
    assert len(plan.chosen.keep[group.id]) == 2
    assert any("below 4 channels" in line for line in plan.explanation)


def test_impossible_ram_names_the_budget_and_the_smallest_reachable():
    graph = ds_cnn(size=96)   # 96 x 96 int8 input: 9 KiB before anything is computed
    profile = load_profile("nrf52840")
    budgets = budgets_of(profile, ram_bytes=20 * 1024)
    with pytest.raises(DoesNotFitError) as err:
        plan_graph(graph, random_scores(graph), profile, budgets)
    message = str(err.value)
    assert message.startswith("ram_bytes: even the smallest candidate needs ")
    assert "input tensor alone 9.0 KiB" in message and "limit 20.0 KiB" in message and "--max-ram" in message
    groups = build_groups(graph)
    floor = {g.id: frozenset(range(profile.channel_multiple)) for g in groups.prunable_groups}
    floor = {**floor, **{g.id: frozenset(range(1)) for g in groups.prunable_groups}}
    smallest = costs_of(shrink_graph(groups, floor), profile, "int8")["ram_bytes"]
    assert f"needs {smallest / 1024:.1f} KiB" in message
    assert "\n" not in message


# ------------------------------------------------------------------------------------------- the choice


def _candidate(kind, precision="int8", fits=True, margin=True, accuracy=None, metric=None, macs=1000, kept=None,
               desc=None, ram=100.0) -> Candidate:
    spec = StudentSpec("family", desc or f"{kind} {macs}") if kind == "student" else None
    keep = {0: frozenset(range(kept or 4))} if kind == "pruned" else None
    return Candidate(kind, desc or f"{kind} {macs}", precision,
                     {"flash_bytes": 10.0, "ram_bytes": ram, "latency_ms": 1.0, "energy_mj": 1.0}, fits, margin, macs,
                     100, keep=keep, student=spec, importance_kept=(kept or 4) / 8 if kind == "pruned" else None,
                     accuracy=accuracy, metric=metric)


def test_choice_without_data_prefers_the_least_change_that_fits():
    graph = mlp()
    profile = load_profile("nrf52840")
    budgets = budgets_of(profile, ram_bytes=150)
    over = _candidate("original", fits=False, margin=False, ram=200)
    pruned_more = _candidate("pruned", kept=2, desc="more cut")
    pruned_less = _candidate("pruned", kept=6, desc="less cut")
    student = _candidate("student", macs=5000)
    plan = decide("m", graph, profile, budgets, [over, student, pruned_more, pruned_less])
    assert plan.chosen == pruned_less
    plan = decide("m", graph, profile, budgets, [over, student, _candidate("student", macs=9000)])
    assert plan.chosen.macs == 9000 and any("distil" in line for line in plan.explanation)


def test_choice_with_accuracy_takes_the_most_accurate_fitting_candidate():
    graph = mlp()
    profile = load_profile("nrf52840")
    budgets = budgets_of(profile, ram_bytes=150)
    candidates = [
        _candidate("original", fits=False, margin=False, accuracy=0.90, metric="accuracy", ram=200),
        _candidate("pruned", kept=6, accuracy=0.84, metric="accuracy"),
        _candidate("student", macs=2000, accuracy=0.87, metric="accuracy"),
        _candidate("pruned", kept=7, precision="float32", fits=True, margin=False, accuracy=0.89, metric="accuracy"),
    ]
    plan = decide("m", graph, profile, budgets, candidates, PlannerOptions(accuracy_tolerance=0.02),
                  baseline_accuracy=0.90)
    assert plan.chosen.kind == "student"   # 0.89 fits the limit but not the margin; 0.90 does not fit at all
    assert any("drop of +0.0300, more than the tolerance of 0.02" in line for line in plan.explanation)
    mse = [_candidate("pruned", kept=6, accuracy=0.5, metric="mse"), _candidate("student", accuracy=0.2, metric="mse")]
    assert decide("m", graph, profile, budgets, mse).chosen.kind == "student"


def test_candidates_to_evaluate_are_distinct_networks_and_include_a_student():
    a = _candidate("pruned", kept=6, desc="a")
    a_float = _candidate("pruned", kept=6, precision="float32", desc="a")
    b = _candidate("pruned", kept=5, desc="b")
    c = _candidate("pruned", kept=4, desc="c")
    student = _candidate("student", macs=100)
    picked = candidates_to_evaluate([a, a_float, b, c, student, _candidate("original", fits=False)], 3)
    assert picked == [a, b, student]


def test_plan_json_round_trip_and_atomic_write(tmp_path):
    graph = ds_cnn()
    profile = load_profile("nrf52840")
    budgets = budgets_of(profile, latency_ms=costs_of(graph, profile, "int8")["latency_ms"] * 0.6)
    plan = plan_graph(graph, random_scores(graph), profile, budgets)
    data = plan.to_dict()
    assert set(data["budgets"]) == set(data["predicted"]) == set(BUDGET_KEYS)
    assert data["budgets"]["latency_ms"] == budgets.latency_ms and data["kind"] == "pruned"
    assert plan_from_dict(json.loads(json.dumps(data))) == plan
    path = tmp_path / "plan.json"
    write_plan(plan, path)
    assert read_plan(path) == plan and os.listdir(tmp_path) == ["plan.json"]


@pytest.mark.parametrize("make", [ds_cnn, residual_net])
def test_lazy_scoring_finds_about_what_scoring_every_group_finds(make):
    graph = make()
    profile = load_profile("nrf52840")
    groups = build_groups(graph)
    fn = cost_fn(profile, "int8")
    targets = {"latency_ms": fn(graph)["latency_ms"] * 0.5}
    scores = random_scores(graph, seed=3)
    lazy = netadapt(groups, scores, fn, targets, channel_multiple=4, give_back=False)
    full = netadapt(groups, scores, fn, targets, channel_multiple=4, give_back=False, lazy=False)
    assert lazy.reached and full.reached
    assert lazy.evaluations < full.evaluations
    assert lazy.importance_kept >= full.importance_kept - 0.05


def test_budgets_reachable_one_at_a_time_but_not_together_name_the_closest_candidate():
    graph = mlp()
    profile = load_profile("nrf52840")
    budgets = budgets_of(profile, ram_bytes=150, flash_bytes=20)
    small_ram = _candidate("pruned", fits=False, margin=False, desc="small ram", ram=120.0)
    small_ram = Candidate(**{**small_ram.__dict__, "predicted": {**small_ram.predicted, "flash_bytes": 30.0}})
    small_flash = _candidate("student", fits=False, margin=False, desc="small flash", ram=300.0)
    with pytest.raises(DoesNotFitError) as err:
        decide("m", graph, profile, budgets, [small_ram, small_flash])
    # small ram is 1.5x over on flash, small flash 2x over on RAM: the closest is small ram, bound by flash
    assert str(err.value).startswith("flash_bytes: no candidate meets every budget at once on nrf52840; the closest "
                                     "(pruned int8: small ram) needs 30 B > limit 20 B")


def test_lazy_give_back_stays_within_the_targets_with_fewer_evaluations():
    graph = ds_cnn()
    profile = load_profile("nrf52840")
    groups = build_groups(graph)
    fn = cost_fn(profile, "int8")
    targets = {"latency_ms": fn(graph)["latency_ms"] * 0.5}
    scores = random_scores(graph, seed=5)
    shrink_only = netadapt(groups, scores, fn, targets, channel_multiple=4, give_back=False)
    lazy = netadapt(groups, scores, fn, targets, channel_multiple=4)
    full = netadapt(groups, scores, fn, targets, channel_multiple=4, lazy=False)
    for result in (lazy, full):
        assert result.reached
        given = [s for s in result.steps if s.binding == "give back"]
        assert given and all(s.channels_after > s.channels_before for s in given)
        assert all(s.costs["latency_ms"] <= targets["latency_ms"] for s in given)
    # giving back regains importance the coarse moves threw away, lazily for a fraction of the predictions
    assert lazy.importance_kept > shrink_only.importance_kept
    assert lazy.importance_kept >= full.importance_kept - 0.05
    assert lazy.evaluations - shrink_only.evaluations < full.evaluations - shrink_only.evaluations
