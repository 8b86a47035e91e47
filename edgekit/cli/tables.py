"""Render an InspectResult: a JSON object for pipelines, rich tables for people."""

from __future__ import annotations

from edgekit.budgets import BUDGET_LABELS, format_budget
from edgekit.units import format_bytes
from edgekit.workflows.inspect import InspectResult


def make_console():
    """A rich console; wide when output goes to a file or pipe, so tables are not wrapped at 80 columns."""
    import sys

    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=160)


def print_inspect(result: InspectResult) -> None:
    from rich.table import Table

    a = result.analysis
    console = make_console()
    table = Table(title=f"{result.model_path or a.graph.name}: per layer", show_lines=False)
    for col in ("layer", "op", "output", "params", "MACs", "w f32 B", "w int8 B", "act f32 B", "TFLite ops"):
        left = col in ("layer", "op", "output", "TFLite ops")
        table.add_column(col, justify="left" if left else "right", no_wrap=col != "TFLite ops")
    for c in a.cost.layers:
        table.add_row(c.name, c.op, "x".join(map(str, c.output_shape)) or "-", f"{c.params:,}", f"{c.macs:,}",
                      f"{c.weight_bytes.float32:,}", f"{c.weight_bytes.int8:,}", f"{c.activation_bytes_float32:,}",
                      "+".join(a.layer_ops.get(c.name, ())) or "(folded/fused)")
    table.add_section()
    w = a.cost.weight_bytes
    table.add_row("total", "", "", f"{a.params:,}", f"{a.macs:,}", f"{w.float32:,}", f"{w.int8:,}", "", "")
    console.print(table)
    console.print(
        f"params {a.params:,}   MACs {a.macs:,}   other ops {a.cost.ops:,}\n"
        f"peak activation memory: {format_bytes(a.peak_activation_bytes['int8'])} int8, "
        f"{format_bytes(a.peak_activation_bytes['float32'])} float32 (greedy plan over the predicted TFLite ops)\n"
        f"predicted .tflite size: " + ", ".join(f"{p} {format_bytes(e.flash_bytes)}" for p, e in a.tflite_bytes.items())
        + f"\npredicted TFLite Micro arena (int8): {format_bytes(a.tflm_arena.arena_bytes)}")
    for runtime, ops in a.unsupported.items():
        if ops:
            listed = ", ".join(f"{u.op} ({u.layer})" for u in ops)
            console.print(f"[yellow]{runtime}: no kernel for {listed}[/yellow]")
    if result.profile is None:
        return
    p = result.profile
    budget_table = Table(title=f"Budgets on {p.name} ({p.kind}, {p.runtime}, {p.precision_preferred})")
    for col in ("budget", "estimate", "limit", "fits", "basis"):
        budget_table.add_column(col, justify="right" if col in ("estimate", "limit") else "left")
    for c in result.checks:
        verdict = {True: "[green]yes[/green]", False: "[red]NO[/red]", None: "-"}[c.fits]
        budget_table.add_row(BUDGET_LABELS[c.budget], format_budget(c.budget, c.predicted),
                             format_budget(c.budget, c.limit), verdict, c.basis)
    console.print(budget_table)
    if result.fits is False:
        over = [BUDGET_LABELS[c.budget] for c in result.checks if c.fits is False]
        if getattr(result, "regions", None) is not None and not result.regions.fits:
            over.append("RAM region")
        console.print(f"[red]does not fit {p.name}: over the {', '.join(over)} budget[/red] (exit code 3)")
