"""Click options shared by several commands (kept apart from cli.py, which imports every command module)."""

from __future__ import annotations

import click


def budget_options(f):
    """--max-flash / --max-ram / --max-latency-ms / --max-energy-mj, shared by commands that take a device."""
    f = click.option("--max-energy-mj", help="Energy per inference budget (e.g. 2, 500uJ).")(f)
    f = click.option("--max-latency-ms", help="Latency budget (e.g. 20, 20ms, 0.5s).")(f)
    f = click.option("--max-ram", help="RAM budget (e.g. 256KB, 1.5MB, 2MiB; KB = 1024 B).")(f)
    f = click.option("--max-flash", help="Flash / model size budget (e.g. 512KB, 1MB).")(f)
    return f
