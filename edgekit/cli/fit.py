"""`edgekit fit`: the whole job end to end (see edgekit.workflows.fit)."""

from __future__ import annotations

import json
import sys

import click

from edgekit.cli.options import budget_options


@click.command("fit")
@click.argument("model", type=click.Path())
@click.option("--device", "-d", required=True, help="Device profile name or profile YAML path.")
@click.option("--data", help="Training data: .npz (x, optional y), .npy, or an image folder with class folders.")
@click.option("--val", help="Validation data (default: 10% of --data, stratified).")
@click.option("--out", "out_dir", default="edgekit-out", show_default=True, help="Output directory.")
@budget_options
@click.option("--max-accuracy-drop", type=float, default=0.01, show_default=True,
              help="Accuracy drop (absolute) tolerated before QAT is tried and a candidate is called lossy.")
@click.option("--epochs", type=int, default=30, show_default=True, help="Distillation epochs (best epoch kept).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--adb", is_flag=True, help="Also measure latency on an attached Android phone (phone profiles).")
@click.option("--adb-binary", type=click.Path(), help="Local benchmark_model binary to push (default: on the phone).")
@click.option("--resume", is_flag=True, help="Continue an interrupted fit from its last finished stage.")
@click.option("--trust-model", is_flag=True, help="Allow code stored in the model (Lambda, custom layers).")
@click.option("--json", "as_json", is_flag=True, help="Print the report object as JSON on stdout.")
@click.option("--quiet", is_flag=True, help="No progress output.")
def command(model, device, data, val, out_dir, max_flash, max_ram, max_latency_ms, max_energy_mj,
            max_accuracy_drop, epochs, seed, adb, adb_binary, resume, trust_model, as_json, quiet):
    """Make MODEL fit DEVICE: plan, prune/distil, quantise, export, measure, report.

    Exit codes: 0 fits (or already fitted); 2 bad input; 3 nothing reachable fits (the output directory then
    holds the reports of the closest result and no model file).
    """
    from edgekit.workflows.fit import fit
    from edgekit.workflows.fit.pipeline import FitDoesNotFitError

    try:
        result = fit(model, device, data, val=val, out_dir=out_dir, epochs=epochs,
                     max_accuracy_drop=max_accuracy_drop, seed=seed, trust=trust_model, resume=resume,
                     quiet=quiet or as_json, adb=adb, adb_binary=adb_binary, max_flash=max_flash, max_ram=max_ram, max_latency_ms=max_latency_ms,
                     max_energy_mj=max_energy_mj)
    except FitDoesNotFitError as err:
        if as_json:
            click.echo(json.dumps(err.result.to_dict(), indent=2, default=str))
        raise
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
        click.echo(f"accuracy: teacher {100 * result.teacher_accuracy:.2f}% -> final {100 * result.final_accuracy:.2f}%")
    for b in result.budgets:
        click.echo(f"  {BUDGET_LABELS[b.budget]:8} predicted {format_budget(b.budget, b.predicted):>10}  measured "
                   f"{format_budget(b.budget, b.measured):>10}  limit {format_budget(b.budget, b.limit):>10}  "
                   f"{'ok' if b.fits is not False else 'OVER'}")
    click.echo(f"report: {result.artifacts.get('report.html')}")
