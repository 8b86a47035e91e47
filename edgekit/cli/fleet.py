"""`edgekit fit --device a,b,c` / `--devices fleet.yaml`: the fleet half of the fit command (not a command itself).

Exit codes: 0 every device fits; 3 at least one does not (each device's folder says why); 2 bad input.
"""

from __future__ import annotations

import json
import sys

import click


def is_fleet(device: str | None, devices_file: str | None) -> bool:
    return devices_file is not None or (device is not None and "," in device)


def run_fleet(model, device, devices_file, data, *, val, out_dir, as_json: bool, quiet: bool, trust: bool,
              **fit_options) -> None:
    from edgekit.errors import EXIT_DOES_NOT_FIT
    from edgekit.workflows.fleet import fit_fleet, parse_fleet

    fleet = parse_fleet(device, devices_file)
    result = fit_fleet(model, fleet, data, val=val, out_dir=out_dir, quiet=quiet or as_json, trust=trust,
                       **fit_options)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, default=str))
    elif not quiet:
        for line in fleet_lines(result):
            click.echo(line)
    for outcome in result.outcomes:
        if not outcome.fits:
            click.echo(f"edgekit: {outcome.device}: {outcome.message}", err=True)
    sys.exit(0 if result.all_fit else EXIT_DOES_NOT_FIT)


def fleet_lines(result) -> list[str]:
    from edgekit.budgets import BUDGET_KEYS, BUDGET_LABELS
    from edgekit.workflows.fit.fleet_report import STATUS_TEXT, cell, fleet_rows

    rows = fleet_rows(result)
    lines = [(f"\n{result.model_path}: {sum(r['fits'] for r in rows)} of {len(rows)} devices fit "
             f"({result.seconds / 60:.1f} min)")]
    for r in rows:
        accuracy = "-" if r["final_accuracy"] is None else f"{100 * r['final_accuracy']:.2f}%"
        figures = "  ".join(f"{BUDGET_LABELS[k]} {cell(r, k).replace('**', '')}" for k in BUDGET_KEYS)
        lines.append(f"  {r['device']:16} {STATUS_TEXT.get(r['status'], r['status']):16} accuracy {accuracy:>7}  "
                     f"{figures}")
    lines.append(f"report: {result.out_dir}/fleet.html")
    return lines
