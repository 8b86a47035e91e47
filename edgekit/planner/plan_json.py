"""A Plan as JSON (`plan.json`) and back; writing is atomic (temporary file + os.replace).

Top-level keys a pipeline reads: `precision`, `budgets` and `predicted` (each keyed flash_bytes, ram_bytes,
latency_ms, energy_mj; a budget that is not set is null), `fits`, `headroom`, `binding_budget`, `layers`
(per-layer output channels before and after, kept channel indices where channels were removed), `student`
(the student architecture, or null), `chosen`, `candidates` and `explanation`.

    >>> write_plan(plan, "plan.json")                   # doctest: +SKIP
    >>> read_plan("plan.json").chosen == plan.chosen     # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import os
from types import MappingProxyType

from edgekit.budgets import BUDGET_KEYS, BudgetLine
from edgekit.errors import BadInputError
from edgekit.planner.types import FORMAT_VERSION, Candidate, LayerWidth, Plan, StudentSpec


def candidate_from_dict(d: dict) -> Candidate:
    keep = None if d.get("keep") is None else MappingProxyType(
        {int(g): frozenset(units) for g, units in d["keep"].items()})
    student = None
    if d.get("student") is not None:
        student = StudentSpec(**{**d["student"], "dropped_blocks": tuple(d["student"].get("dropped_blocks", ()))})
    layers = tuple(LayerWidth(**{**layer, "kept_channels": None if layer.get("kept_channels") is None
                                 else tuple(layer["kept_channels"])}) for layer in d.get("layers", ()))
    return Candidate(d["kind"], d["description"], d["precision"], d["predicted"], d["fits"], d["fits_margin"],
                     d["macs"], d["params"], layers, keep, student, d.get("importance_kept"), d.get("accuracy"),
                     d.get("metric"))


def plan_from_dict(d: dict, source: str = "plan") -> Plan:
    if d.get("edgekit_plan") != FORMAT_VERSION:
        raise BadInputError(f"{source}: not an edgekit plan (format {FORMAT_VERSION}); make one with edgekit plan")
    try:
        lines = tuple(BudgetLine(k, d["budgets"][k], d["predicted"][k], d["basis"][k],
                                 margin=d["margin"]) for k in BUDGET_KEYS)
        return Plan(d["model"], d["device"], candidate_from_dict(d["chosen"]), lines, d["binding_budget"],
                    tuple(candidate_from_dict(c) for c in d["candidates"]), tuple(d["explanation"]), d["margin"],
                    d.get("accuracy_tolerance"), d.get("baseline_accuracy"), d.get("metric"))
    except (KeyError, TypeError) as err:
        raise BadInputError(f"{source}: malformed plan ({err!r} missing or wrong); make it again with edgekit plan"
                            ) from None


def write_plan(plan: Plan, path: str | os.PathLike) -> None:
    """Write plan.json atomically (edgekit.model_io.atomic: temporary file in the same directory, then rename)."""
    from edgekit.model_io.atomic import write_atomically

    write_atomically({os.fspath(path): json.dumps(plan.to_dict(), indent=2) + "\n"})


def read_plan(path: str | os.PathLike) -> Plan:
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise BadInputError(f"{path}: cannot read the plan ({err})") from None
    return plan_from_dict(data, path)
