"""`edgekit calibrate`: time micro-benchmarks on this machine through LiteRT and fit the host cost model.

Thin: parse, call edgekit.workflows.calibrate.calibrate / write_profile, print. TensorFlow is imported only inside
the command body (by the library). Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import json
import sys

import click

PRECISION_CHOICES = ("float32", "int8")


@click.command("calibrate")
@click.option(
    "--device",
    "-d",
    "device",
    default="host",
    show_default=True,
    help="Profile to calibrate (name or YAML path); it must describe this machine.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    help="Write the calibrated profile here (the device's YAML with cost_model replaced). Without "
    "it the fitted cost_model section is printed.",
)
@click.option(
    "--precisions",
    default=None,
    help="Comma-separated precisions to time (default: the profile's "
    "supported ones among float32,int8; float16 gets the float32 rates).",
)
@click.option(
    "--rounds",
    type=int,
    default=15,
    show_default=True,
    help="Interleaved timing rounds; more rounds, steadier figures on a busy machine.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object (fit quality, parameters, points)."
)
def command(device: str, out: str | None, precisions: str | None, rounds: int, as_json: bool) -> None:
    """Fit the throughput parameters of a LiteRT profile (default: host) on this machine.

    Converts ~60 one-layer models at each precision, times them interleaved through LiteRT (XNNPACK, the
    profile's thread count), fits edgekit.costmodel.latency's model by least squares and reports how well it fits.
    Takes a few minutes. Exit codes: 0 ok, 2 bad input (unknown profile or precision, not a LiteRT profile).
    """
    from edgekit.errors import BadInputError
    from edgekit.profiles import load_profile
    from edgekit.workflows.calibrate import calibrate, cost_model_yaml, write_profile

    profile = load_profile(device)
    if profile.runtime != "litert":
        raise BadInputError(
            f"{device}: calibrate times LiteRT on this machine; profile runtime is "
            f"{profile.runtime!r} (MCU profiles are calibrated from published figures)"
        )
    chosen = None
    if precisions:
        chosen = tuple(p.strip() for p in precisions.split(",") if p.strip())
        bad = [p for p in chosen if p not in PRECISION_CHOICES]
        if bad:
            raise BadInputError(
                f"--precisions: {', '.join(bad)} not timed; use {', '.join(PRECISION_CHOICES)}"
            )
    if rounds < 1:
        raise BadInputError("--rounds must be at least 1")

    result = calibrate(device, chosen, rounds=rounds, progress=lambda m: click.echo(f"  {m}", err=True))
    if out:
        write_profile(profile.path, out, result.cost_model, result.precisions, result.source)
    fit = result.stored_fit
    if as_json:
        click.echo(json.dumps(result.to_dict(out), indent=2))
        return
    click.echo(
        f"fitted on {len(fit.points)} timed models in {result.seconds:.0f} s: RMS log error "
        f"{fit.rms_log_error:.3f}, {fit.share_within(0.10) * 100:.0f} % within +-10 %, "
        f"{fit.share_within(0.25) * 100:.0f} % within +-25 %"
    )
    if result.fit is not fit:
        click.echo(
            f"with a per-inference overhead of {result.fit.cost_model.per_inference_overhead_us:.3g} us (the "
            f"profile schema cannot store it yet): RMS log error {result.fit.rms_log_error:.3f}, "
            f"{result.fit.share_within(0.10) * 100:.0f} % within +-10 %"
        )
    worst = sorted(fit.points, key=lambda p: -abs(p.error))[:5]
    click.echo(
        "largest misfits: " + ", ".join(f"{p.name} {p.precision} {p.error * 100:+.0f} %" for p in worst)
    )
    if out:
        click.echo(f"wrote {out}")
    else:
        click.echo(cost_model_yaml(result.cost_model, result.precisions, result.source), nl=False)
    sys.stdout.flush()
