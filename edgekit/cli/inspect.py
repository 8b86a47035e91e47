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
@click.option("--measure-arena", is_flag=True,
              help="TFLM devices: convert to int8 and measure the arena with TFLM's own plan and with each of "
                   "edgekit's memory optimisations (operator order, offline plan, overlapping outputs).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
def command(model: str, device: str | None, max_flash, max_ram, max_latency_ms, max_energy_mj, trust_model: bool,
            measure_arena: bool, as_json: bool) -> None:
    """Per-layer params, MACs, bytes and TFLite ops; peak memory; with --device, each budget and whether it fits.

    MODEL: a Keras .h5 / .keras file or SavedModel, a .tflite file, or a TensorFlow SavedModel directory that
    is not Keras (read through its float32 TFLite conversion, made in a worker process).
    """
    from edgekit.cli.tables import print_inspect
    from edgekit.workflows.inspect import inspect as run_inspect

    result = run_inspect(model, device=device, trust=trust_model, max_flash=max_flash, max_ram=max_ram,
                         max_latency_ms=max_latency_ms, max_energy_mj=max_energy_mj, measure_arena=measure_arena)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        print_inspect(result)
        if result.regions is not None:  # profiles with RAM regions: where the predicted arena goes, per region
            click.echo(result.regions.note())
        _print_arena_steps(result.arena_steps)
    if result.fits is False:
        sys.exit(EXIT_DOES_NOT_FIT)


def _print_arena_steps(steps) -> None:
    """One line per optimisation: the arena TFLM needs with it and all before it (measured on this host)."""
    if not steps:
        return
    base = steps[0].arena_bytes
    click.echo("TFLite Micro arena, measured on this host (int8, each step adds to the ones above):")
    for step in steps:
        change = f"{(step.arena_bytes - base) / base:+.1%}" if base else ""
        verdict = "outputs bit-identical" if step.outputs_identical else "outputs differ: not used"
        click.echo(f"  {step.name:<13} {step.arena_bytes:>10,} B  {change:>7}  {verdict}")
