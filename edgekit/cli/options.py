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


def strategy_option(f):
    """--strategy none|mirrored|multiworker: train under tf.distribute (docs/distributed.md)."""
    from edgekit.distill.strategy import STRATEGIES

    return click.option("--strategy", type=click.Choice(STRATEGIES), default="none", show_default=True,
                        help="Train across this host's GPUs (mirrored) or across the hosts in TF_CONFIG "
                        "(multiworker; run the same command on every worker, only the chief writes outputs). "
                        "--batch-size is the global batch.")(f)


def augment_option(default: str | None, what: str):
    """--augment for distillation (edgekit.distill.augment); `what` ends the help text."""
    from edgekit.distill.augment import CHOICES

    return click.option("--augment", type=click.Choice(CHOICES), default=default, show_default=default is not None,
                        help="Augment each training batch (signal: shift/scale/noise; image: crop, "
                        "spectrogram: SpecAugment masks; auto: by the input shape) and let the teacher label "
                        f"the augmented batch (consistent teaching). {what}")
