"""edgekit command line: parse, call the library, print. No TensorFlow import at module level.

Exit codes: 0 ok, 2 bad input or usage, 3 the model does not fit the device.
"""

from __future__ import annotations

import sys

import click

from edgekit.errors import EXIT_BAD_INPUT, EdgekitError


class _Group(click.Group):
    """Turns EdgekitError into a one-line message and its exit code, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EdgekitError as err:
            click.echo(f"edgekit: error: {err}", err=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("edgekit: interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edgekit")
@click.option("--verbose", is_flag=True, help="Show TensorFlow's own log output.")
def main(verbose: bool) -> None:
    """Make a trained Keras model fit a real device: analyse, prune, distil, quantise, export, measure.

    Exit codes: 0 ok; 2 bad input or usage; 3 the model does not fit the device.
    """
    if verbose:
        from edgekit._tf import set_verbose

        set_verbose(True)


from edgekit.cli import bench, calibrate, devices, distill, export, fit, inspect, plan, prune

for _module in (devices, inspect, plan, prune, distill, export, bench, calibrate, fit):
    main.add_command(_module.command)

if __name__ == "__main__":  # pragma: no cover
    main()

__all__ = ["EXIT_BAD_INPUT", "main"]
