"""`plan`: the candidates that fit a device (precision, pruned channels, students), evaluated and chosen.

    >>> from edgekit.workflows.plan import plan
    >>> p = plan("kws.h5", "nrf52840", max_ram="96KB")                    # doctest: +SKIP
    >>> p.chosen.kind, p.precision, p.binding_budget, p.predicted["ram_bytes"]  # doctest: +SKIP
    ('pruned', 'int8', 'ram_bytes', 88012)
"""

from __future__ import annotations

from collections.abc import Callable

from edgekit.model_io.detect import is_plain_saved_model
from edgekit.planner.search import DEFAULT_ACCURACY_TOLERANCE, DEFAULT_MARGIN, Plan

SAVED_MODEL_NOTE = ("a TensorFlow SavedModel without Keras metadata: only its precisions were planned, from its "
                    "float32 TFLite conversion (pruning and students need the Keras model it was made from)")


def _as_dataset(data, model, name: str):
    """An edgekit.data.Dataset checked against the model's input (edgekit.data.as_dataset); None for None."""
    from edgekit.data import as_dataset

    return as_dataset(data, model.input_shape, name)


def plan(model_or_path, device: str, data=None, *, val_data=None, margin: float = DEFAULT_MARGIN,
         accuracy_tolerance: float = DEFAULT_ACCURACY_TOLERANCE, importance: str = "l1", students: bool = True,
         evaluate: int = 3, epochs: int = 2, batch_size: int = 64, min_channels: int = 1, trust: bool = False,
         seed: int = 0, progress: Callable[[str], None] | None = None, memory_opt: bool = True,
         **budget_overrides) -> Plan:
    """Plan how `model_or_path` fits `device`: a precision, channels per layer, or a student.

    Args:
        device: a profile name (`edgekit devices`) or the path of a profile YAML.
        data: optional training data (a .npz/.npy/image-folder path, an edgekit.data.Dataset, (x, y) or x).
            With it, the `evaluate` most promising fitting candidates are fine-tuned (pruned) or distilled
            (students) for `epochs` and the most accurate is chosen; `val_data` (default: edgekit.data.VAL_FRACTION of
            data)
            measures them.
        margin: plan to this share of every budget (predictions have error).
        accuracy_tolerance: accuracy drop (absolute) the plan reports as acceptable.
        importance: channel ranking for pruning: l1, l2, bn, or taylor (needs data).
        budget_overrides: max_flash, max_ram, max_latency_ms, max_energy_mj (numbers or strings with units).
        memory_opt: TFLM profiles: predict the int8 arena with edgekit's operator order and offline memory plan,
            which `edgekit export` and `fit` store by default (False: as TFLM's own planner lays it out).
    Raises:
        DoesNotFitError (exit code 3) when no candidate fits, naming the binding budget and the smallest value
        any candidate reaches.
    """
    from edgekit.budgets import resolve_budgets
    from edgekit.channels.groups import build_groups
    from edgekit.ir.from_keras import from_keras
    from edgekit.model_io import load_keras
    from edgekit.planner.evaluate import (
        evaluate_candidates,
        importance_scores,
        student_candidates,
    )
    from edgekit.planner.search import PlannerOptions, decide, original_candidates, pruning_candidates
    from edgekit.profiles import load_profile

    profile = load_profile(device)
    budgets = resolve_budgets(profile, **budget_overrides)
    options = PlannerOptions(margin=margin, min_channels=min_channels, accuracy_tolerance=accuracy_tolerance,
                             memory_opt=memory_opt)
    if is_plain_saved_model(model_or_path):
        return _plan_saved_model(model_or_path, profile, budgets, options, with_data=data is not None)
    model, loaded = load_keras(model_or_path, trust=trust)
    name = str(model_or_path) if loaded is not None else model.name
    dataset = _as_dataset(data, model, "data")
    graph = from_keras(model)
    groups = build_groups(graph)
    candidates = list(original_candidates(graph, profile, budgets, options))
    notes: list[str] = []
    if not any(c.fits_margin for c in candidates):
        xy = (dataset.x, dataset.y) if dataset is not None else None
        scores, score_notes = importance_scores(model, groups, importance, xy)
        pruned, prune_notes = pruning_candidates(groups, scores, profile, budgets, options)
        candidates += pruned
        notes += [*score_notes, *prune_notes]
        if students:
            built, student_notes = student_candidates(model, graph, profile, budgets, options)
            candidates += built
            notes += student_notes
    baseline = None
    fitting_changed = [c for c in candidates if c.fits and c.kind != "original"]
    if dataset is not None and evaluate > 0 and fitting_changed:
        train, val = _train_val(dataset, _as_dataset(val_data, model, "val_data"), seed)
        evaluation = evaluate_candidates(model, groups, candidates, train, val, k=evaluate, epochs=epochs,
                                         batch_size=batch_size, seed=seed, progress=progress)
        candidates = list(evaluation.candidates)
        baseline = evaluation.baseline
        notes.append(f"evaluated {evaluation.evaluated} candidate(s) on {len(val[0])} validation samples after "
                     f"{epochs} epoch(s) of fine-tuning / distillation; the original model scores "
                     f"{evaluation.metric} {baseline:.4f} (float tf_keras, quantisation not included)")
    return decide(name, graph, profile, budgets, candidates, options, notes=notes, baseline_accuracy=baseline)


def _plan_saved_model(path, profile, budgets, options, with_data: bool) -> Plan:
    """Precision-only plan of a non-Keras SavedModel, over the graph of its float32 TFLite conversion."""
    import os

    from edgekit.export.saved_model import convert_saved_model
    from edgekit.ir.from_tflite import from_tflite
    from edgekit.model_io.flatbuffer import read_tflite, subgraph_op_names
    from edgekit.planner.search import decide, original_candidates

    label = os.fspath(path).rstrip("/\\") or os.fspath(path)
    data = convert_saved_model(label, "float32").tflite_bytes
    flatbuffer = read_tflite(data, label)
    graph, _ = from_tflite(flatbuffer, subgraph_op_names(flatbuffer, label), name=os.path.basename(label) or "model",
                           label=label)
    notes = [SAVED_MODEL_NOTE]
    if with_data:
        notes.append("--data not used: there is no pruned or student candidate to fine-tune")
    candidates = original_candidates(graph, profile, budgets, options)
    return decide(label, graph, profile, budgets, candidates, options, notes=notes)


def _train_val(dataset, val_dataset, seed: int):
    if val_dataset is not None:
        return (dataset.x, dataset.y), (val_dataset.x, val_dataset.y)
    from edgekit.data import split

    train, val = split(dataset, seed=seed)
    return (train.x, train.y), (val.x, val.y)
