"""`edgekit distill`: train a smaller student on a teacher's soft targets (and features); write it to --out.

Thin: parse, call edgekit.workflows.distill.distill_model, print. TensorFlow is imported only inside the command.
Progress (one line per epoch) goes to stderr, results to stdout.
"""

from __future__ import annotations

import contextlib
import json

import click

from edgekit.cli.options import augment_option, strategy_option
from edgekit.distill.families import CHOICES as FAMILY_CHOICES
from edgekit.errors import BadInputError


def parse_macs_target(value: str | None) -> tuple[int | None, float | None]:
    """--target-macs '250000' / '1.5M' / '12.5k' -> (count, None); '25%' -> (None, 0.25)."""
    if value is None:
        return None, None
    from edgekit.units import parse_rate

    text = str(value).strip()
    try:
        if text.endswith("%"):
            share = float(text[:-1]) / 100
            if not 0 < share <= 1:
                raise ValueError
            return None, share
        count = int(parse_rate(text, "--target-macs"))
        if count <= 0:
            raise ValueError
    except ValueError:
        raise BadInputError(f"--target-macs {value!r}: use a positive count (250000, 1.5M, 12.5k) or a share "
                            "of the teacher's MACs (25%)") from None
    return count, None


def _check_student_choice(width, student, family, target_macs, macs_ratio, depth, fresh_weights) -> None:
    chosen = [name for name, value in (("--width", width), ("--student", student), ("--family", family))
              if value is not None]
    if len(chosen) != 1:
        raise click.UsageError("choose the student with exactly one of --width, --student or --family"
                               + (f" (got {' and '.join(chosen)})" if chosen else ""))
    if family is None and (target_macs is not None or macs_ratio is not None or depth is not None):
        raise click.UsageError("--target-macs, --macs-ratio and --depth size a --family student")
    if target_macs is not None and macs_ratio is not None:
        raise click.UsageError("--target-macs and --macs-ratio are mutually exclusive")
    if fresh_weights and width is None:
        raise click.UsageError("--fresh-weights applies to a --width student")


@click.command("distill")
@click.argument("teacher", type=click.Path())
@click.option("--data", required=True, type=click.Path(),
              help="Training data: .npz (x, optional y), .npy (x), a folder of images in class sub-folders, "
              ".tfrecord files or a folder of .npz shards (the last two, and files over 256 MiB, are streamed).")
@click.option("--val", type=click.Path(), help="Validation data (default: 10% of --data held out).")
@click.option("--width", type=float, help="Student = the teacher with every layer's channels times this "
              "(e.g. 0.5: about 25% of the MACs).")
@click.option("--student", type=click.Path(), help="Your own student model file (same input/output as the teacher).")
@click.option("--family", type=click.Choice(FAMILY_CHOICES), help="A reference student family sized to "
              "--target-macs or --macs-ratio (default 25% of the teacher's MACs); auto picks by input rank.")
@click.option("--target-macs", help="Family student MAC budget: 250000, 1.5M, 12.5k or 25% (of the teacher's).")
@click.option("--macs-ratio", type=float, help="Family student MAC budget as a share of the teacher's, e.g. 0.25.")
@click.option("--depth", type=int, help="Family student depth (blocks / hidden layers); default: the family's.")
@click.option("--fresh-weights", is_flag=True, help="With --width: start from fresh weights instead of the "
              "teacher's L1-largest channels.")
@click.option("--temperature", type=float, default=4.0, show_default=True, help="Soft-target temperature.")
@click.option("--alpha", type=float, default=0.1, show_default=True,
              help="Weight of the hard-label loss (the soft-target loss gets 1 - alpha).")
@click.option("--features", is_flag=True, help="Add hint (FitNets) and attention-transfer losses on "
              "automatically paired layers of equal spatial size.")
@click.option("--epochs", type=int, default=20, show_default=True, help="Most epochs (early stopping on "
              "validation accuracy).")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--learning-rate", type=float, default=1e-3, show_default=True, help="Adam, cosine-decayed.")
@click.option("--patience", type=int, default=5, show_default=True, help="Epochs without improvement before stopping.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--task", type=click.Choice(("auto", "classification", "binary", "regression")), default="auto",
              show_default=True, help="What the teacher's outputs are; auto reads its head and the labels.")
@click.option("--trust-model", is_flag=True, help="Allow code stored in the models (Lambda, custom layers) to run.")
@click.option("--out", "-o", required=True, type=click.Path(), help="Where to write the student (.h5 or .keras); "
              "never the teacher's path.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the summary.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
@augment_option("none", "")
@click.option("--mixup", type=float, default=0.0, show_default=True,
              help="Mixup of inputs and labels, Beta(alpha, alpha) with this alpha (0: off); the teacher labels it.")
@strategy_option
def command(teacher, data, val, width, student, family, target_macs, macs_ratio, depth, fresh_weights, temperature,
            alpha, features, epochs, batch_size, learning_rate, patience, seed, task, trust_model, out,
            as_json, quiet, strategy="none", augment="none", mixup=0.0) -> None:
    """Distil TEACHER into a smaller student and write it to --out.

    Pick the student with exactly one of --width, --student or --family. Accuracies are measured on the
    validation data. Exit codes: 0 ok, 2 bad input or usage.
    """
    _check_student_choice(width, student, family, target_macs, macs_ratio, depth, fresh_weights)
    count, share = parse_macs_target(target_macs)
    from edgekit.workflows.distill import distill_model

    def log(message: str) -> None:
        if not quiet:
            click.echo(message, err=True)

    # Keras writes its per-epoch lines to stdout: keep stdout for the result (and clean for --json).
    from edgekit.distill.strategy import lost_worker_errors

    with lost_worker_errors(), contextlib.redirect_stdout(EpochLines(log)):
        outcome = distill_model(
            teacher, data, val=val, width=width, student=student, family=family, target_macs=count,
            macs_ratio=share if share is not None else macs_ratio, depth=depth, inherit_weights=not fresh_weights,
            temperature=temperature, alpha=alpha, features=features, epochs=epochs, batch_size=batch_size,
            learning_rate=learning_rate, patience=patience, seed=seed, task=task, verbose=0 if quiet else 2,
            trust=trust_model, out=out, log=log, strategy=strategy, augment=augment, mixup=mixup)
    if as_json:
        click.echo(json.dumps(outcome.as_dict(), indent=2))
    else:
        _print_summary(outcome)


class EpochLines:
    """A stdout stand-in that turns Keras' verbose=2 epoch lines into one short line per epoch for `log`.

    Lines it does not recognise are passed on unchanged.
    """

    SHOWN = ("loss", "accuracy", "val_accuracy", "val_agreement")

    def __init__(self, log):
        self.log, self.pending, self.epoch = log, "", ""

    def write(self, text: str) -> int:
        self.pending += text
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            self._line(line.strip())
        return len(text)

    def flush(self) -> None:
        pass

    def _line(self, line: str) -> None:
        if not line:
            return
        if line.startswith("Epoch ") and line.count("/") == 1:
            self.epoch = line[len("Epoch "):]
            return
        parts = [part.strip() for part in line.split(" - ")]
        metrics = dict(part.split(": ", 1) for part in parts if ": " in part)
        if not self.epoch or "val_loss" not in metrics:
            self.log(line)
            return
        shown = "  ".join(f"{key} {metrics[key]}" for key in self.SHOWN if key in metrics)
        seconds = next((part for part in parts if part.endswith("/epoch")), "").replace("/epoch", "")
        self.log(f"epoch {self.epoch}  {shown}" + (f"  ({seconds})" if seconds else ""))
        self.epoch = ""


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _print_summary(outcome) -> None:
    rows = [("", "MACs", "params", "val accuracy"),
            ("teacher", f"{outcome.teacher_macs:,}", f"{outcome.teacher_params:,}", _percent(outcome.teacher_accuracy)),
            ("student", f"{outcome.student_macs:,} ({outcome.macs_ratio:.1%})",
             f"{outcome.student_params:,} ({outcome.params_ratio:.1%})", _percent(outcome.student_accuracy))]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row,
                                                                                                          widths))))
    click.echo(f"student: {outcome.student_source}; best epoch {outcome.best_epoch} of {outcome.epochs_run}"
               + (f"; agrees with the teacher on {_percent(outcome.agreement)} of validation samples"
                  if outcome.agreement is not None else ""))
    if outcome.hint_pairs:
        click.echo("feature pairs (student <- teacher): " + ", ".join(f"{s} <- {t}" for s, t in outcome.hint_pairs))
    for notice in outcome.notices:
        click.echo(f"note: {notice}")
    click.echo(f"wrote {outcome.out_path}" if outcome.out_path else "not written: not the chief worker")
