"""`edgekit plan`: choose a precision, channels per layer or a student so MODEL fits a device; write plan.json.

Thin: parse, call edgekit.workflows.plan.plan, print, write. TensorFlow is imported only inside the command body.
Exit codes: 0 a plan that fits; 2 bad input; 3 nothing fits (no plan file is written).
"""

from __future__ import annotations

import json

import click

from edgekit.budgets import BUDGET_KEYS, BUDGET_LABELS, format_budget
from edgekit.channels.criteria import CRITERIA
from edgekit.cli.options import budget_options


@click.command("plan")
@click.argument("model", type=click.Path())
@click.option("--device", "-d", required=True,
              help="Device profile name or path to a profile YAML (see `edgekit devices`).")
@budget_options
@click.option("--data", type=click.Path(), help="Training samples (.npz x/y, .npy x, or an image folder): the most "
              "promising candidates are fine-tuned or distilled briefly and the most accurate is chosen.")
@click.option("--val-data", type=click.Path(), help="Validation samples (default: 10% of --data).")
@click.option("--out", "-o", type=click.Path(), default="plan.json", show_default=True, help="Where to write the plan.")
@click.option("--margin", type=float, default=0.9, show_default=True,
              help="Plan to this share of every budget (predictions have error).")
@click.option("--accuracy-tolerance", type=float, default=0.01, show_default=True,
              help="Accuracy drop (absolute) reported as acceptable when --data is given.")
@click.option("--importance", type=click.Choice(CRITERIA), default="l1", show_default=True,
              help="Channel ranking for pruning (taylor needs --data).")
@click.option("--evaluate", "n_evaluate", type=int, default=3, show_default=True,
              help="With --data: how many candidates to fine-tune / distil and compare.")
@click.option("--epochs", type=int, default=2, show_default=True, help="With --data: epochs per evaluated candidate.")
@click.option("--no-students", is_flag=True, help="Consider only the model itself and pruned versions of it.")
@click.option("--trust-model", is_flag=True, help="Allow code stored in the model (Lambda, custom layers) to run.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as one JSON object (the plan.json content).")
@click.option("--no-memory-opt", is_flag=True, help="TFLM devices: predict the arena without edgekit's memory "
              "optimisation (operator order, offline plan), as `export/fit --no-memory-opt` build it.")
def command(model, device, max_flash, max_ram, max_latency_ms, max_energy_mj, data, val_data, out, margin,
            accuracy_tolerance, importance, n_evaluate, epochs, no_students, trust_model, as_json,
            no_memory_opt=False) -> None:
    """Plan how MODEL fits --device: precision, channels per layer or a student, each budget predicted.

    Budgets are the profile's, with --max-* overrides. The plan is written to --out (plan.json). Exit codes:
    0 a plan fits; 2 bad input; 3 no candidate fits (the message names the binding budget; nothing written).
    A TensorFlow SavedModel directory that is not Keras gets a precision-only plan (no pruning or students).
    """
    from edgekit.errors import BadInputError
    from edgekit.planner.plan_json import write_plan
    from edgekit.workflows.plan import plan

    if not 0.0 < margin <= 1.0:
        raise BadInputError(f"--margin {margin}: must be in (0, 1], e.g. 0.9 to plan to 90% of each budget")
    progress = None if as_json else (lambda message: click.echo(message, err=True))
    result = plan(model, device, data=data, val_data=val_data, margin=margin, accuracy_tolerance=accuracy_tolerance,
                  importance=importance, students=not no_students, evaluate=n_evaluate, epochs=epochs,
                  trust=trust_model, progress=progress, max_flash=max_flash, max_ram=max_ram,
                  max_latency_ms=max_latency_ms, max_energy_mj=max_energy_mj, memory_opt=not no_memory_opt)
    write_plan(result, out)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        print_plan(result, out)


def print_plan(plan, out: str) -> None:
    from rich.table import Table

    from edgekit.cli.tables import make_console

    console = make_console()
    chosen = plan.chosen
    table = Table(title=f"Plan for {plan.model} on {plan.device}: {chosen.kind}, {chosen.precision}")
    for col in ("budget", "predicted", "limit", f"target ({plan.margin:.0%})", "headroom", "fits", "basis"):
        table.add_column(col, justify="left" if col in ("budget", "fits", "basis") else "right")
    for line in plan.budgets:
        verdict = {True: "[green]yes[/green]", False: "[red]NO[/red]", None: "-"}[line.fits]
        name = BUDGET_LABELS[line.budget] + (" (binding)" if line.budget == plan.binding_budget else "")
        target = None if line.limit is None else line.limit * plan.margin
        table.add_row(name, format_budget(line.budget, line.predicted), format_budget(line.budget, line.limit),
                      format_budget(line.budget, target),
                      "-" if line.headroom is None else f"{line.headroom:.0%}", verdict, line.basis)
    console.print(table)
    changed = [layer for layer in chosen.layers if layer.channels_before != layer.channels_after]
    if chosen.kind == "pruned":
        layers = Table(title="Channels per layer (pruned layers)")
        for col in ("layer", "op", "channels"):
            layers.add_column(col, justify="right" if col == "channels" else "left")
        for layer in changed:
            layers.add_row(layer.name, layer.op, f"{layer.channels_before} -> {layer.channels_after}")
        console.print(layers)
    elif chosen.kind == "student":
        console.print(f"student: {chosen.student.description} ({chosen.student.method}); layers: "
                      + ", ".join(f"{layer.name} {layer.channels_after}" for layer in chosen.layers), highlight=False)
    console.print(_candidates_table(plan))
    for line in plan.explanation:
        console.print(f"- {line}", highlight=False)
    console.print(f"wrote {out}", highlight=False)


def _candidates_table(plan):
    from rich.table import Table

    table = Table(title="Candidates considered")
    for col in ("kind", "precision", "description", *(BUDGET_LABELS[k] for k in BUDGET_KEYS), "fits", "accuracy"):
        table.add_column(col, justify="left" if col in ("kind", "precision", "description", "fits") else "right")
    for c in plan.candidates:
        mark = " *" if c is plan.chosen or c == plan.chosen else ""
        fits = "yes" if c.fits_margin else ("limit only" if c.fits else "no")
        table.add_row(c.kind + mark, c.precision, c.description, *(format_budget(k,
                                                                                 c.predicted[k]) for k in BUDGET_KEYS),
                      fits, "-" if c.accuracy is None else f"{c.metric} {c.accuracy:.4f}")
    return table
