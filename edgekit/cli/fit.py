"""`edgekit fit`: the whole job end to end (see edgekit.workflows.fit)."""

from __future__ import annotations

import json
import sys

import click

from edgekit.cli.options import augment_option, budget_options, strategy_option
from edgekit.tasks.task import TASK_NAMES


@click.command("fit")
@click.argument("model", type=click.Path())
@click.option("--device", "-d", help="Device profile name or profile YAML path; a comma-separated list fits a fleet.")
@click.option("--devices", "devices_file", type=click.Path(), help="Fleet YAML: `devices:` list of profile names.")
@click.option("--data", help="Training data: .npz (x, optional y), .npy, an image folder with class folders, "
              ".tfrecord files or a folder of .npz shards (the last two, and files over 256 MiB, are streamed).")
@click.option("--val", help="Validation data (default: 10% of --data, stratified).")
@click.option("--out", "out_dir", default="edgekit-out", show_default=True, help="Output directory.")
@click.option("--force", is_flag=True, help="Publish into an existing folder edgekit did not write, replacing only "
              "edgekit's own files (the folder's other files are kept).")
@budget_options
@click.option("--max-accuracy-drop", type=float, default=0.01, show_default=True,
              help="The accuracy budget: the largest drop (absolute, in the task's metric: top-1, AUC, mean IoU, "
              "R^2 ...) against the original model; beyond it fit walks back, and exits 3 when nothing keeps it.")
@click.option("--task", type=click.Choice(TASK_NAMES), help="What the model does (default: detected from its "
              "outputs and the data); sets the metric every model is scored by.")
@click.option("--metric", help="Your own metric, module:function or file.py:function taking (outputs, y, "
              "teacher_outputs) and returning a number, higher is better. It runs as your code (trusted).")
@click.option("--accuracy-attempts", type=click.IntRange(min=0), default=2, show_default=True,
              help="Walk-back rounds (longer distillation, then a milder cut) when a model fits the device but "
              "loses more than --max-accuracy-drop.")
@click.option("--explain", is_flag=True, help="Print in plain words why this model was chosen, what was binding "
              "and what to change for more accuracy.")
@click.option("--epochs", type=int, default=30, show_default=True, help="Distillation epochs (best epoch kept).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--adb", is_flag=True, help="Also measure latency on an attached Android phone (phone profiles).")
@click.option("--adb-binary", type=click.Path(), help="Local benchmark_model binary to push (default: on the phone).")
@click.option("--resume", is_flag=True, help="Continue an interrupted fit from its last finished stage.")
@click.option("--trust-model", is_flag=True, help="Allow code stored in the model (Lambda, custom layers).")
@click.option("--json", "as_json", is_flag=True, help="Print the report object as JSON on stdout.")
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.option("--no-memory-opt", is_flag=True, help="TFLM devices: no memory optimisation (shared vectors, operator "
              "order, offline plan) in the plan's RAM prediction or the export.")
@augment_option(None, "Default: auto from 60 --epochs on, else none (edgekit.distill.recipe).")
@strategy_option
def command(model, device, devices_file, data, val, out_dir, force, max_flash, max_ram, max_latency_ms, max_energy_mj,
            max_accuracy_drop, task, metric, accuracy_attempts, explain, epochs, seed, adb, adb_binary, resume,
            trust_model, as_json,
            quiet, strategy="none", no_memory_opt=False, augment=None):
    """Make MODEL fit DEVICE: plan, prune/distil, quantise, export, measure, report.

    Exit codes: 0 fits (or already fitted); 2 bad input; 3 nothing reachable fits (the output directory then
    holds the reports of the closest result and no model file).

    A fleet (--device a,b,c or --devices FLEET.yaml): each device fitted into OUT/<device>/, compared in
    OUT/fleet.md and fleet.html; exit 0 only when every device fits, else 3.
    """
    from edgekit.cli.fleet import is_fleet, run_fleet

    if strategy != "none":  # every training loop of this process then runs under it (edgekit.distill.strategy)
        from edgekit.distill.strategy import activate

        activate(strategy)
    if is_fleet(device, devices_file) or device is None:  # a fleet: <out>/<device>/ each, <out>/fleet.md
        if no_memory_opt:
            from edgekit.errors import BadInputError

            raise BadInputError("--no-memory-opt is for one device: fit each device of the fleet on its own")
        run_fleet(model, device, devices_file, data, val=val, out_dir=out_dir, as_json=as_json, quiet=quiet,
                  trust=trust_model, epochs=epochs, max_accuracy_drop=max_accuracy_drop, seed=seed, adb=adb,
                  adb_binary=adb_binary, max_flash=max_flash, max_ram=max_ram, max_latency_ms=max_latency_ms,
                  max_energy_mj=max_energy_mj, resume=resume, force=force, task=task, metric=metric)
    from edgekit.workflows.fit import fit
    from edgekit.workflows.fit.pipeline import FitDoesNotFitError

    try:
        result = fit(model, device, data, val=val, out_dir=out_dir, epochs=epochs,
                     max_accuracy_drop=max_accuracy_drop, seed=seed, trust=trust_model, resume=resume,
                     quiet=quiet or as_json, adb=adb, adb_binary=adb_binary, max_flash=max_flash, max_ram=max_ram,
                     max_latency_ms=max_latency_ms,
                     max_energy_mj=max_energy_mj, force=force, task=task, metric=metric,
                     accuracy_attempts=accuracy_attempts, memory_opt=not no_memory_opt, augment=augment)
    except FitDoesNotFitError as err:
        if as_json:
            click.echo(json.dumps(err.result.to_dict(), indent=2, default=str))
        elif explain:
            click.echo("\n".join(err.result.explanation))
        raise
    except Exception as exc:  # re-raised as is unless a --strategy multiworker peer was lost
        from edgekit.distill.strategy import lost_worker_error

        if lost_worker_error(exc) is None:
            raise
        raise lost_worker_error(exc) from None
    if explain and not as_json:
        click.echo("\n".join(result.explanation))
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, default=str))
    elif not quiet:
        _print_summary(result)
    sys.exit(0)


def _print_summary(result) -> None:
    from edgekit.budgets import BUDGET_LABELS, format_budget

    verdict = {"fits": "fits", "already_fits": "already fitted (exported and verified only)"}[result.status]
    click.echo(f"\n{result.model_path} on {result.device}: {verdict}, {result.precision}")
    if result.teacher_accuracy is not None and result.final_accuracy is not None:
        allowed = f" (allowed drop {result.max_accuracy_drop:g})" if result.max_accuracy_drop is not None else ""
        click.echo(f"{result.accuracy_metric}: teacher {result.teacher_accuracy:.4f} -> final "
                   f"{result.final_accuracy:.4f}{allowed}")
    for b in result.budgets:
        click.echo(f"  {BUDGET_LABELS[b.budget]:8} predicted {format_budget(b.budget, b.predicted):>10}  measured "
                   f"{format_budget(b.budget, b.measured):>10}  limit {format_budget(b.budget, b.limit):>10}  "
                   f"{'ok' if b.fits is not False else 'OVER'}")
    click.echo(f"report: {result.artifacts.get('report.html')}")
