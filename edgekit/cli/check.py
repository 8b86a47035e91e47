"""`edgekit check`: the CI gate (see edgekit.workflows.check). Parse, call, print, write the JUnit file."""

from __future__ import annotations

import json
import os
import sys

import click

from edgekit.cli.options import budget_options
from edgekit.errors import EXIT_DOES_NOT_FIT


@click.command("check")
@click.argument("model", type=click.Path())
@click.option("--device", "-d", required=True, help="Device profile name or profile YAML path.")
@budget_options
@click.option("--baseline", type=click.Path(), help="An earlier `check --json` output or a fit's report.json: fail "
              "when a figure grew by more than --tolerance, even under budget.")
@click.option("--tolerance", default="5%", show_default=True, help="Growth over the baseline allowed per figure.")
@click.option("--junit", "junit_path", type=click.Path(), help="Also write a JUnit XML report (one test per budget "
              "and per baseline comparison) for the CI system.")
@click.option("--data", type=click.Path(), help="Keras MODEL only: calibration samples for the int8 export.")
@click.option("--trust-model", is_flag=True, help="Keras MODEL only: allow code stored in the model to run.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (usable as a later --baseline).")
def command(model, device, max_flash, max_ram, max_latency_ms, max_energy_mj, baseline, tolerance, junit_path,
            data, trust_model, as_json) -> None:
    """Check that MODEL (.tflite, or a Keras model exported in memory) fits DEVICE's budgets.

    Measures the file's size and, on MCU profiles, its TFLite Micro arena; reads its ops against the
    runtime's kernels; predicts latency and energy with the profile's cost model.

    Exit codes: 0 fits (and no regression); 3 over a budget, an op without a kernel, or a figure regressed
    beyond --tolerance (one line each on stderr); 2 bad input (nothing written).
    """
    from edgekit.workflows.check import check

    _check_junit_path(junit_path, [model, baseline, data])
    result = check(model, device, baseline=baseline, tolerance=tolerance, data=data, trust=trust_model,
                   max_flash=max_flash, max_ram=max_ram, max_latency_ms=max_latency_ms, max_energy_mj=max_energy_mj)
    if junit_path is not None:
        from edgekit.model_io.atomic import write_atomically
        from edgekit.workflows.junit import to_junit

        write_atomically({os.fspath(junit_path): to_junit(result).encode()},
                         protected=[p for p in (model, baseline, data) if p is not None])
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        for line in summary_lines(result):
            click.echo(line)
    for line in result.failures():
        click.echo(f"edgekit: check failed: {line}", err=True)
    sys.exit(0 if result.passed else EXIT_DOES_NOT_FIT)


def _check_junit_path(path, inputs) -> None:
    """Refuse a JUnit path that is a directory, lies in a missing directory, or is one of the inputs."""
    if path is not None:
        from edgekit.model_io.atomic import check_target

        check_target(path, protected=[p for p in inputs if p is not None])


def summary_lines(result) -> list[str]:
    from edgekit.budgets import BUDGET_LABELS, format_budget

    verdict = "passes" if result.passed else ("REGRESSED" if result.fits else "DOES NOT FIT")
    lines = [(f"{result.model_path} ({result.model_format}, {result.precision}) on {result.device} "
             f"[{result.runtime}]: {verdict}")]
    for b in result.budgets:
        value = b.measured if b.measured is not None else b.predicted
        kind = "measured" if b.measured is not None else "predicted"
        state = {True: "ok", False: "OVER", None: "no budget"}[b.fits]
        lines.append(f"  {BUDGET_LABELS[b.budget]:8} {kind:9} {format_budget(b.budget, value):>10}  limit "
                     f"{format_budget(b.budget, b.limit):>10}  {state}")
    ops = ", ".join(result.unsupported_ops) if result.unsupported_ops else "all supported"
    lines.append(f"  ops      {len(result.ops)} ops on {result.runtime}: {ops}")
    for r in result.regressions:
        lines.append(f"  vs baseline: {r.describe()}{'  REGRESSED' if r.regressed else ''}")
    lines += [f"  note: {n}" for n in result.notes]
    return lines
