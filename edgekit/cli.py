"""edgekit command line: parse, call the library, print. No TensorFlow import at module level.

Exit codes: 0 ok, 2 bad input or usage, 3 the model does not fit the device.
"""

from __future__ import annotations

import json
import sys

import click

from edgekit.budgets import BUDGET_LABELS, format_budget
from edgekit.cli_options import budget_options
from edgekit.errors import EXIT_BAD_INPUT, EXIT_DOES_NOT_FIT, EdgekitError


class _Group(click.Group):
    """Turns EdgekitError into a one-line message and its exit code, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EdgekitError as err:
            click.echo(f"edgekit: error: {err}", err=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("edgekit: interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edgekit")
@click.option("--verbose", is_flag=True, help="Show TensorFlow's own log output.")
def main(verbose: bool) -> None:
    """Make a trained Keras model fit a real device: analyse, prune, distil, quantise, export, measure.

    Exit codes: 0 ok; 2 bad input or usage; 3 the model does not fit the device.
    """
    if verbose:
        from edgekit._tf import set_verbose

        set_verbose(True)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON list instead of a table.")
def devices(as_json: bool) -> None:
    """List the device profiles (name, kind, runtime, memory, default budgets)."""
    from edgekit.profiles import list_profiles

    profiles = list_profiles()
    if as_json:
        click.echo(json.dumps([{
            "name": p.name, "kind": p.kind, "runtime": p.runtime, "ram_bytes": p.ram_bytes,
            "flash_bytes": p.flash_bytes, "precision_preferred": p.precision_preferred,
            "budgets": p.budgets.as_dict(), "path": str(p.path)} for p in profiles], indent=2))
        return
    from rich.table import Table

    from edgekit.units import format_bytes

    table = Table(title="Device profiles (device_profiles/*.yaml)")
    for col in ("name", "kind", "runtime", "RAM", "flash", "precision", "budget flash", "budget RAM",
                "budget latency", "budget energy"):
        table.add_column(col, justify="right" if col.startswith(("RAM", "flash", "budget")) else "left")
    for p in profiles:
        b = p.budgets.as_dict()
        table.add_row(p.name, p.kind, p.runtime, format_bytes(p.ram_bytes), format_bytes(p.flash_bytes),
                      p.precision_preferred, *(format_budget(k, b[k]) for k in BUDGET_LABELS))
    from edgekit.inspect_report import make_console

    make_console().print(table)


@main.command()
@click.argument("model", type=click.Path())
@click.option("--device", "-d", help="Device profile name or path to a profile YAML (see `edgekit devices`).")
@budget_options
@click.option("--trust-model", is_flag=True, help="Allow code stored in the model (Lambda, custom layers) to run.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
def inspect(model: str, device: str | None, max_flash, max_ram, max_latency_ms, max_energy_mj, trust_model: bool,
            as_json: bool) -> None:
    """Per-layer params, MACs, bytes and TFLite ops; peak memory; with --device, each budget and whether it fits."""
    from edgekit import api
    from edgekit.inspect_report import inspect_json, print_inspect

    result = api.inspect(model, device=device, trust=trust_model, max_flash=max_flash, max_ram=max_ram,
                         max_latency_ms=max_latency_ms, max_energy_mj=max_energy_mj)
    if as_json:
        click.echo(json.dumps(inspect_json(result), indent=2))
    else:
        print_inspect(result)
    if result.fits is False:
        sys.exit(EXIT_DOES_NOT_FIT)


def _register_commands() -> None:
    import importlib

    from edgekit.commands import COMMANDS

    for name in COMMANDS:
        module_name = f"edgekit.commands.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name == module_name:
                continue  # not written yet
            raise
        main.add_command(module.command)


_register_commands()

if __name__ == "__main__":  # pragma: no cover
    main()

__all__ = ["EXIT_BAD_INPUT", "main"]
