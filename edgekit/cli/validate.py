"""`edgekit validate`: per-layer error of a .tflite against its Keras model (MSE, cosine, max |error|, SNR).

Thin: parse, call edgekit.workflows.validate.validate, print. TensorFlow is imported only inside the command body.
"""

from __future__ import annotations

import json

import click


@click.command("validate")
@click.argument("model", type=click.Path())
@click.option("--reference", "-r", required=True, type=click.Path(), help="The Keras model the .tflite came from.")
@click.option("--data", required=True, type=click.Path(), help="Samples (.npz x[,y] / .npy / image folder).")
@click.option("--device", "-d", help="Device profile: a TFLM device also compares TFLite Micro (and must run it).")
@click.option("--samples", type=int, default=200, show_default=True, help="Samples compared (spread over --data).")
@click.option("--html", "html_path", type=click.Path(), help="Also write the tables as an HTML fragment here.")
@click.option("--trust-model", is_flag=True, help="Allow code stored in the reference model to run.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
def command(model, reference, data, device, samples, html_path, trust_model, as_json) -> None:
    """Compare MODEL (.tflite) layer by layer with --reference on --data, worst layers first.

    Exit codes: 0 ok; 2 bad input, or the model does not run on the --device's runtime.
    """
    from edgekit.workflows.validate import report_html, report_json, validate

    report = validate(model, reference, data, device=device, samples=samples, trust=trust_model)
    if html_path:
        from edgekit.model_io.atomic import check_target, write_atomically

        write_atomically({check_target(html_path, [model, reference, data]): report_html(report).encode()})
    if as_json:
        click.echo(json.dumps(report_json(report), indent=2))
        return
    for line in report_lines(report):
        click.echo(line)


def report_lines(report) -> list[str]:
    lines = [f"{report.model_path} vs {report.reference_path} on {report.samples} samples"]
    for r in report.runtimes:
        o = r.output
        lines.append(f"{r.runtime}: final output SNR {o.snr_db:.1f} dB, cosine {o.cosine:.4f}, max |error| "
                     f"{o.max_abs:.4g}, MSE {o.mse:.4g}")
        lines.append(f"  {'layer':<24} {'type':<8} {'MSE':>10} {'cosine':>8} {'max|err|':>10} {'SNR dB':>7}")
        for e in r.layers:
            s = e.stats
            lines.append(f"  {e.layer[:24]:<24} {e.dtype:<8} {s.mse:>10.3g} {s.cosine:>8.4f} {s.max_abs:>10.3g} "
                         f"{s.snr_db:>7.1f}")
        if r.unmatched:
            lines.append(f"  no tensor of their own (fused or folded): {', '.join(r.unmatched)}")
    lines += [f"note: {n}" for n in report.notes]
    return lines
