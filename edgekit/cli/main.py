"""edgekit command line: parse, call the library, print. No TensorFlow import at module level.

Exit codes: 0 ok, 2 bad input or usage, 3 the model does not fit the device.
"""

from __future__ import annotations

import click

from edgekit.errors import EXIT_BAD_INPUT


class _Group(click.Group):
    """Every escaping exception becomes one line (<= 300 chars) and a documented exit code (cli/guard.py)."""

    def invoke(self, ctx):
        from edgekit.cli.guard import run_guarded

        return run_guarded(super().invoke, ctx)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edgekit")
@click.option("--verbose", is_flag=True, help="Show TensorFlow's own log output, and the traceback of an error.")
def main(verbose: bool) -> None:
    """Make a trained Keras model fit a real device: analyse, prune, distil, quantise, export, measure.

    Exit codes: 0 ok; 2 bad input or usage; 3 the model does not fit the device.
    """
    if verbose:
        from edgekit._tf import set_verbose

        set_verbose(True)


from edgekit.cli import bench, calibrate, check, devices, distill, export, fit, inspect, plan, prune, validate

for _module in (devices, inspect, plan, prune, distill, export, bench, calibrate, fit, check, validate):
    main.add_command(_module.command)

if __name__ == "__main__":  # pragma: no cover
    main()

__all__ = ["EXIT_BAD_INPUT", "main"]
