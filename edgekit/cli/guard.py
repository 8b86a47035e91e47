"""The CLI's last line of defence: every exception becomes one line and a documented exit code.

EdgekitError: its message and exit code. Ctrl-C: exit 130. Anything else (a bug, a library failing on
an input nobody foresaw, a full disk): one line of at most MAX_LINE_CHARS naming the command, the
edgekit module it escaped from and the error, "rerun with --verbose for the traceback", exit 2.
With --verbose the traceback is printed first. No TensorFlow import here.
"""

from __future__ import annotations

import errno
import sys
import traceback

import click

from edgekit.errors import EXIT_BAD_INPUT, EdgekitError

MAX_LINE_CHARS = 300
EXIT_INTERRUPTED = 130
VERBOSE_HINT = "rerun with --verbose for the traceback"


def one_line(text: str, limit: int = MAX_LINE_CHARS) -> str:
    """`text` on one line, shortened with an ellipsis to at most `limit` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def run_guarded(invoke, ctx: click.Context):
    """Call `invoke(ctx)`; turn what escapes into one line on stderr and an exit code."""
    verbose = bool(ctx.params.get("verbose"))
    try:
        return invoke(ctx)
    except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
        raise
    except EdgekitError as err:
        if verbose:
            traceback.print_exc()
        click.echo(one_line(f"edgekit: error: {err}"), err=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        click.echo("edgekit: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except BaseException as exc:  # noqa: BLE001 - the point of this guard
        if verbose:
            traceback.print_exc()
        command = ctx.invoked_subcommand or "edgekit"
        click.echo(describe_unexpected(command, exc), err=True)
        sys.exit(EXIT_BAD_INPUT)


def describe_unexpected(command: str, exc: BaseException) -> str:
    """The one line for an exception nobody turned into an EdgekitError."""
    stage = _stage(exc)
    where = f"{command} ({stage})" if stage else command
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        what = f"no space left on the device writing {exc.filename or 'a file'}; free some space"
    elif isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        what = f"cannot write {exc.filename or 'a file'} ({exc.strerror}); choose a folder you can write to"
    elif isinstance(exc, MemoryError):
        what = "ran out of memory; use a smaller model or less data"
    elif isinstance(exc, RecursionError):
        what = "an input is nested too deeply"
    else:
        first = str(exc).strip().splitlines()
        what = f"{type(exc).__name__}: {first[0] if first else 'no message'}"
    tail = f"; {VERBOSE_HINT}"
    return one_line(f"edgekit: error: {where}: {one_line(what, 200)}", MAX_LINE_CHARS - len(tail)) + tail


def _stage(exc: BaseException) -> str | None:
    """The innermost edgekit module in the traceback, e.g. 'edgekit.export.tflite'."""
    found = None
    tb = exc.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if module.startswith("edgekit.") and not module.startswith("edgekit.cli."):
            found = module
        tb = tb.tb_next
    return found
