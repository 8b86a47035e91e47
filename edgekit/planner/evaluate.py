"""The TensorFlow side of planning: importance scores from the model, student candidates, short evaluations.

`edgekit.planner.search` decides on the IR alone; this module feeds it what needs the tf_keras model:

- `importance_scores`: per channel group, from the weights (l1, l2, bn) or gradients on data (taylor);
- `student_candidates`: students from `edgekit.distill.students` (the model shrunk in width, residual blocks
  dropped, reference families at a ladder of MAC targets), each measured with `from_keras` + the cost model;
- `realize`: the tf_keras model a candidate stands for (pruned by `apply_keep`, or the student rebuilt);
- `evaluate_candidates`: a short fine-tune (pruned) or distillation (students) of the most promising
  candidates on the user's data, their validation metric recorded in the candidates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from edgekit.channels.groups import ChannelGroups
from edgekit.errors import EdgekitError
from edgekit.ir.from_keras import from_keras
from edgekit.ir.graph import Graph
from edgekit.planner.search import (
    Candidate,
    PlannerOptions,
    StudentSpec,
    candidates_to_evaluate,
    student_candidate,
    with_accuracy,
)

STUDENT_MAC_FRACTIONS = (0.5, 0.25, 0.125, 0.0625)
SHRINK_WIDTHS = (0.75, 0.5, 0.25)
MAX_DROPPED_BLOCKS = 2
DEFAULT_EVAL_EPOCHS = 2
DEFAULT_EVAL_CANDIDATES = 3


def importance_scores(model, groups: ChannelGroups, criterion: str = "l1", data=None
                      ) -> tuple[dict[int, np.ndarray], tuple[str, ...]]:
    """Scores per prunable channel group (numpy), and notices. taylor needs `data` as (x, y or None)."""
    from edgekit.prune.importance import ImportanceInputs, group_scores, taylor_inputs
    from edgekit.prune.surgery import node_weights

    gradients = {}
    if criterion == "taylor":
        if data is None:
            from edgekit.errors import BadInputError

            raise BadInputError("taylor importance needs data (samples to take gradients on); pass data or use l1")
        x, y = data
        gradients = taylor_inputs(model, groups, x[:512], None if y is None else y[:512])
    inputs = ImportanceInputs(groups, node_weights(model, groups.graph), gradients)
    return group_scores(groups, criterion, inputs)


# ------------------------------------------------------------------------------------------- students


def build_student(teacher, spec: StudentSpec):
    """The student `spec` describes, built fresh from the teacher (weights: see the distill builders)."""
    from edgekit.distill import students

    if spec.method == "shrink_teacher":
        return students.shrink_teacher(teacher, spec.width_multiplier)
    if spec.method == "drop_residual_blocks":
        return students.drop_residual_blocks(teacher, list(spec.dropped_blocks))
    if spec.method == "family":
        return students.student_for(teacher, spec.family, spec.target_macs, depth=spec.depth)
    raise ValueError(f"unknown student method {spec.method!r}")


def _family_spec(teacher, graph: Graph, target_macs: int) -> tuple[StudentSpec, object] | None:
    from edgekit.distill import students
    from edgekit.distill.families import family_of_model

    try:
        student = students.student_for(teacher, target_macs=target_macs)
    except (EdgekitError, ValueError):
        return None
    g = from_keras(student)
    family = family_of_model(student.name)
    sources = [n for n in g.nodes if n.op in ("Dense", "Conv1D", "Conv2D")]
    depthwise = [n for n in g.nodes if n.op.startswith("DepthwiseConv")]
    depth = len(sources) - 1 if family == "mlp" else len(depthwise)
    width = g.tensors[sources[0].outputs[0]].channels if sources else 0
    spec = StudentSpec("family", f"{family} student, width {width}, depth {depth}", family=family, width=width,
                       depth=depth, target_macs=int(target_macs))
    return spec, g


def student_graphs(teacher, graph: Graph, *, mac_fractions: Sequence[float] = STUDENT_MAC_FRACTIONS,
                   widths: Sequence[float] = SHRINK_WIDTHS, max_dropped_blocks: int = MAX_DROPPED_BLOCKS
                   ) -> tuple[list[tuple[StudentSpec, Graph]], list[str]]:
    """(spec, IR) of every student that can be built for `teacher`, and notes on the ones that could not."""
    from edgekit.costmodel.layer_costs import analyze
    from edgekit.distill import students

    out: list[tuple[StudentSpec, Graph]] = []
    notes: list[str] = []
    for w in widths:
        try:
            g = from_keras(students.shrink_teacher(teacher, w))
        except (EdgekitError, ValueError) as err:
            notes.append(f"no shrunk student: {str(err).splitlines()[0]}")
            break
        out.append((StudentSpec("shrink_teacher", f"the model at {w:g}x width", width_multiplier=w), g))
    blocks = students.find_residual_blocks(teacher)
    for k in range(1, min(max_dropped_blocks, len(blocks)) + 1):
        ranked = sorted(enumerate(blocks), key=lambda ib: (ib[1].branch_scale, -ib[0]))[:k]
        names = tuple(b.add_layer for _, b in ranked)
        try:
            g = from_keras(students.drop_residual_blocks(teacher, list(names)))
        except (EdgekitError, ValueError) as err:
            notes.append(f"no block-dropped student: {str(err).splitlines()[0]}")
            break
        out.append((StudentSpec("drop_residual_blocks", f"the model without residual block(s) {', '.join(names)}",
                                dropped_blocks=names), g))
    teacher_macs = analyze(graph).macs
    if len(getattr(teacher, "outputs", ())) > 1:  # the reference families are one-head classifiers
        notes.append(f"no reference-family students for a model with {len(teacher.outputs)} outputs")
        mac_fractions = ()
    for fraction in mac_fractions:
        built = _family_spec(teacher, graph, max(1, int(teacher_macs * fraction)))
        if built is None:
            notes.append(f"no reference-family student at {fraction:g}x the MACs")
            continue
        out.append(built)
    seen, unique = set(), []
    for spec, g in out:
        key = (g.params, analyze(g).macs)
        if key not in seen:
            seen.add(key)
            unique.append((spec, g))
    return unique, notes


def student_candidates(teacher, graph: Graph, profile, budgets, options: PlannerOptions | None = None
                       ) -> tuple[list[Candidate], list[str]]:
    """Student candidates, each at the first precision it fits (preferred first), and notes."""
    built, notes = student_graphs(teacher, graph)
    options = options or PlannerOptions()
    return [student_candidate(spec, g, profile, budgets, options) for spec, g in built], notes


# ------------------------------------------------------------------------------------------- evaluation


def realize(model, groups: ChannelGroups, candidate: Candidate):
    """The tf_keras model of a candidate: the model itself, the pruned copy, or the student (fresh weights)."""
    if candidate.kind == "original":
        return model
    if candidate.kind == "pruned":
        from edgekit.prune.surgery import apply_keep

        return apply_keep(model, groups, candidate.keep)
    return build_student(model, candidate.student)


@dataclass(frozen=True)
class Evaluation:
    candidates: tuple[Candidate, ...]     # all, with accuracy filled in where evaluated
    baseline: float                       # the original model's metric on the validation data
    metric: str
    evaluated: int


def evaluate_candidates(model, groups: ChannelGroups, candidates: Sequence[Candidate], train, val, *,
                        k: int = DEFAULT_EVAL_CANDIDATES, epochs: int = DEFAULT_EVAL_EPOCHS, batch_size: int = 64,
                        seed: int = 0, progress: Callable[[str], None] | None = None,
                        score: Callable[[object], float] | None = None, metric: str | None = None,
                        distill_task: str = "auto", train_student: Callable | None = None) -> Evaluation:
    """Fine-tune (pruned) or distil (students) the k most promising fitting candidates for `epochs` on
    train = (x, y or None) and record their metric on val; candidates of the same network at another
    precision share the figure (it is measured on the float tf_keras model).

    score: model -> its task metric on val, higher is better (edgekit.tasks; `metric` names it); None: top-1
    accuracy for class labels, else MSE against y or the model's outputs. distill_task: the students' loss.
    train_student: (teacher, candidate, train, val, epochs) -> None trains every candidate in place of
    fine-tuning / `distill` (multi-output models: a loss per head).
    """
    from edgekit.prune.training import Metric, evaluate, fine_tune

    x_val, y_val = val

    def measure(net) -> Metric:
        if score is not None:  # the task's metric in place of accuracy / MSE
            return Metric(metric or "task metric", float(score(net)))
        return evaluate(net, x_val, y_val, teacher=model)

    base = measure(model)
    results: dict[tuple, float] = {}
    picked = candidates_to_evaluate(candidates, k)
    for c in picked:
        if progress is not None:
            progress(f"evaluating {c.label}")
        if c.kind == "original":
            results[c.architecture()] = base.value
            continue
        net = realize(model, groups, c)
        if train_student is not None:
            train_student(model, net, train, val, epochs)
        elif c.kind == "pruned":
            fine_tune(net, *train, epochs=epochs, batch_size=batch_size, teacher=model, seed=seed)
        else:
            from edgekit.distill import distill

            distill(model, net, train[0], train[1], x_val, y_val, epochs=epochs, batch_size=batch_size, seed=seed,
                    verbose=0, task=distill_task)
        results[c.architecture()] = measure(net).value
    out = tuple(with_accuracy(c, results[c.architecture()], base.name) if c.architecture() in results else c
                for c in candidates)
    return Evaluation(out, base.value, base.name, len(picked))
