"""`edgekit devices`: the device profiles (no TensorFlow import)."""

from __future__ import annotations

import json

import click

from edgekit.budgets import BUDGET_LABELS, format_budget


@click.command("devices")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON list instead of a table.")
def command(as_json: bool) -> None:
    """List the device profiles (name, kind, runtime, memory, default budgets)."""
    from edgekit.profiles import list_profiles

    profiles = list_profiles()
    if as_json:
        click.echo(json.dumps([p.summary_dict() for p in profiles], indent=2))
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
    from edgekit.cli.tables import make_console

    make_console().print(table)
