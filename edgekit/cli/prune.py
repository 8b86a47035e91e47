"""`edgekit prune`: remove whole channels (structured), or zero weights through tfmot (--method magnitude / 2:4).

Thin: parse, call edgekit.prune, print. TensorFlow is imported only inside the command body.
"""

from __future__ import annotations

import json
import sys

import click

from edgekit.channels.criteria import CRITERIA
from edgekit.workflows.prune import METHODS


@click.command("prune")
@click.argument("model", type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(), help="Where to write the pruned model (.h5 or .keras).")
@click.option("--ratio", type=float, help="Share of channels to remove (structured) or weights to zero "
              "(magnitude), e.g. 0.5.")
@click.option("--target-macs", help="Prune until at most this many MACs: 250000, 1.5M or 25% (of the model's).")
@click.option("--target-params", help="Prune until at most this many parameters: 20000, 20k or 25%.")
@click.option("--target-size", help="Prune until the predicted TFLite file (at --size-precision) is at most this: "
              "64KB, 0.5MB or 25%.")
@click.option("--size-precision", type=click.Choice(("int8", "float16", "dynamic_int8", "float32")), default="int8",
              show_default=True, help="Precision --target-size refers to.")
@click.option("--importance", type=click.Choice(CRITERIA), default="l1", show_default=True,
              help="Channel ranking: l1 / l2 filter norm, bn |gamma| (data-free) or taylor (needs --data).")
@click.option("--data", type=click.Path(), help="Training samples: .npz (x, y), .npy (x) or an image folder. "
              "Without it a data-free criterion ranks channels and nothing is fine-tuned.")
@click.option("--val-data", type=click.Path(), help="Validation samples (default: 10% of --data when training).")
@click.option("--iterative", is_flag=True,
              help="Prune in --steps steps, fine-tuning --epochs after each (needs --data).")
@click.option("--steps", type=int, default=4, show_default=True, help="Steps of --iterative pruning.")
@click.option("--epochs", type=int, help="Fine-tuning epochs per step (iterative, default 2) or after a one-shot cut.")
@click.option("--final-epochs", type=int, default=0, show_default=True, help="Extra fine-tuning epochs at the end.")
@click.option("--per-group", is_flag=True, help="Remove --ratio of every channel group instead of ranking globally.")
@click.option("--min-channels", type=int, default=1, show_default=True, help="Channels every group keeps at least.")
@click.option("--round-to", type=int, help="Round kept channel counts up to a multiple (default: the --device "
              "profile's channel_multiple, else 1).")
@click.option("--device", "-d", help="Device profile (for its channel_multiple).")
@click.option("--method", type=click.Choice(METHODS), default="structured", show_default=True,
              help="structured: remove channels (smaller, faster); magnitude / 2:4: tfmot weight sparsity "
              "(same shapes, same TFLite size and latency).")
@click.option("--l1", "l1_regularization", type=float, default=0.0,
              help="Train with this channel-L1 strength before pruning (needs --data), e.g. 1e-4.")
@click.option("--learning-rate", type=float, default=1e-3, show_default=True, help="Fine-tuning learning rate.")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--trust-model", is_flag=True, help="Allow code stored in the model (Lambda, custom layers) to run.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
def command(model, out, ratio, target_macs, target_params, target_size, size_precision, importance, data, val_data,
            iterative, steps, epochs,
            final_epochs, per_group, min_channels, round_to, device, method, l1_regularization, learning_rate,
            batch_size, trust_model, as_json) -> None:
    """Prune MODEL and write the smaller model to --out, with a per-layer report.

    Structured pruning removes whole channels across residual Adds, Concatenates and depthwise convs;
    layers it cannot follow are left whole and listed. Exit codes: 0 ok, 2 bad input, 3 target not reachable.
    """
    from edgekit.workflows.prune import prune_file

    progress = None
    if iterative:
        def progress(step):
            click.echo(str(step), err=as_json)

    outcome = prune_file(
        model, out, method=method, ratio=ratio, target_macs=target_macs, target_params=target_params,
        target_size=target_size, size_precision=size_precision, data=data, val_data=val_data, round_to=round_to,
        device=device, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, trust=trust_model,
        progress=progress, importance=importance, per_group=per_group, min_channels=min_channels,
        iterative=iterative, steps=steps, final_epochs=final_epochs, l1_regularization=l1_regularization)
    if as_json:
        click.echo(json.dumps(outcome.to_dict(), indent=2, default=str))
    elif outcome.report is not None:
        _print_report(outcome.report, out)
    else:
        _print_sparsity(outcome.sparsity, out)


def _print_sparsity(result, out: str) -> None:
    for s in result.layers:
        click.echo(f"{s.name:<32} {s.op:<16} {s.zeros:>9,} / {s.weights:>9,} zero ({s.sparsity:.1%})")
    click.echo(f"{result.pattern} sparsity {result.sparsity:.1%} -> {out}")
    click.echo("note: sparse weights keep every shape: TFLite size and latency are unchanged unless the "
               "file is compressed or a sparse kernel runs it; --method structured makes the model smaller")
    for notice in result.notices:
        click.echo(f"note: {notice}")


def _print_report(report, out: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="Structured pruning")
    for col in ("layer", "op", "channels", "params", "MACs", "kept because"):
        table.add_column(col, justify="right" if col in ("channels", "params", "MACs") else "left")
    for layer in report.layers:
        table.add_row(layer.name, layer.op, f"{layer.channels_before} -> {layer.channels_after}",
                      f"{layer.params_before:,} -> {layer.params_after:,}",
                      f"{layer.macs_before:,} -> {layer.macs_after:,}", layer.frozen_reason or "")
    console.print(table)
    console.print(f"params {report.params_before:,} -> {report.params_after:,} ({report.params_ratio:.1%}), "
                  f"MACs {report.macs_before:,} -> {report.macs_after:,} ({report.macs_ratio:.1%}), "
                  f"int8 TFLite ~{report.int8_bytes_before / 1024:.1f} -> ~{report.int8_bytes_after / 1024:.1f} KiB "
                  f"(predicted), importance {report.importance}", highlight=False)
    if report.metric_before is not None and report.metric_after is not None:
        console.print(f"{report.metric_before.name}: {report.metric_before.value:.4f} -> "
                      f"{report.metric_after.value:.4f} (validation)", highlight=False)
    for frozen in report.frozen:
        console.print(f"kept whole: {frozen.node} ({frozen.op}): {frozen.reason}", highlight=False)
    for notice in report.notices:
        console.print(f"note: {notice}", highlight=False)
    console.print(f"wrote {out}", highlight=False)
    sys.stdout.flush()
