"""`edgekit inspect`: per-layer analysis and, with a device, the budget checks."""

from __future__ import annotations

import json
import sys

import click

from edgekit.cli.options import budget_options
from edgekit.errors import EXIT_DOES_NOT_FIT


@click.command("inspect")
@click.argument("model", type=click.Path())
@click.option("--device", "-d", help="Device profile name or path to a profile YAML (see `edgekit devices`).")
@budget_options
@click.option("--trust-model", is_flag=True, help="Allow code stored in the model (Lambda, custom layers) to run.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
def command(model: str, device: str | None, max_flash, max_ram, max_latency_ms, max_energy_mj, trust_model: bool,
            as_json: bool) -> None:
    """Per-layer params, MACs, bytes and TFLite ops; peak memory; with --device, each budget and whether it fits."""
    from edgekit.cli.tables import print_inspect
    from edgekit.workflows.inspect import inspect as run_inspect

    result = run_inspect(model, device=device, trust=trust_model, max_flash=max_flash, max_ram=max_ram,
                         max_latency_ms=max_latency_ms, max_energy_mj=max_energy_mj)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        print_inspect(result)
    if result.fits is False:
        sys.exit(EXIT_DOES_NOT_FIT)
