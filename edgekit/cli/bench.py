"""`edgekit bench`: measure a .tflite file on LiteRT, TFLite Micro or an Android phone (adb).

Thin: parse, call edgekit.workflows.export.bench, print. TensorFlow is imported only inside the command body.
"""

from __future__ import annotations

import json

import click

from edgekit.runners import RUNNERS

DELEGATES = ("cpu", "xnnpack", "gpu", "nnapi")


@click.command("bench")
@click.argument("model", type=click.Path())
@click.option("--runner", "-r", type=click.Choice(RUNNERS), default="litert", show_default=True)
@click.option("--device", "-d", help="Device profile: threads default and the predicted latency beside the measured.")
@click.option("--data", type=click.Path(), help="Samples (.npz x[,y] / .npy): the timed input, outputs, accuracy. "
              "Several inputs or outputs: an .npz with one array per input name (or x0, x1, ...), labels "
              "y_<output name>.")
@click.option("--model", "keras_model", type=click.Path(), help="The Keras model MODEL was exported from: predicted "
              "latency (with --device) and agreement with Keras.")
@click.option("--threads", type=int, help="CPU threads (default: the profile's cpu.threads, else 1).")
@click.option("--runs", type=int, default=50, show_default=True, help="Timed invokes.")
@click.option("--warmup", type=int, default=5, show_default=True, help="Untimed invokes first.")
@click.option("--serial", help="adb: device serial when several are attached.")
@click.option("--binary", type=click.Path(), help="adb: a local benchmark_model to push (default: use "
              "/data/local/tmp/benchmark_model on the phone).")
@click.option("--delegate", type=click.Choice(DELEGATES), default="xnnpack", show_default=True, help="adb delegate.")
@click.option("--tool", type=click.Choice(("benchmark_model", "demo")), default="benchmark_model", show_default=True,
              help="adb: TFLite's benchmark_model, or the android_demo app (per-run times, so p90/p99).")
@click.option("--trust-model", is_flag=True, help="Allow code stored in --model to run.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def command(model, runner, device, data, keras_model, threads, runs, warmup, serial, binary, delegate, tool,
            trust_model, as_json) -> None:
    """Measure MODEL (.tflite) with one runner: latency p50/p90/p99, init time, memory; TFLM: exact arena.

    MODEL may also be a TensorFlow SavedModel directory that is not Keras: it is measured as its float32
    TFLite conversion (made in a worker process; nothing is written).

    Exit codes: 0 ok, 2 bad input (not a .tflite file, missing adb / device / binary, unsupported op).
    """
    from edgekit.workflows.bench import bench

    adb = {"serial": serial, "binary": binary, "delegate": delegate, "tool": tool} if runner == "adb" else {}
    result = bench(model, runner=runner, device=device, data=data, threads=threads, keras_model=keras_model,
                   warmup=warmup, runs=runs, trust=trust_model, **adb)
    payload = result.to_dict()
    if as_json:
        click.echo(json.dumps(payload, indent=2))
        return
    for line in bench_lines(payload):
        click.echo(line)


def _ms(value) -> str:
    return "-" if value is None else f"{value:.4g} ms"


def bench_lines(payload: dict) -> list[str]:
    lat = payload["latency_ms"]
    lines = [(f"{payload['model']} on {payload['runner']} ({payload['device']}), {payload['precision']}, "
             f"{payload['model_size_bytes']:,} bytes, {payload['threads']} thread(s)"),
             (f"latency p50 {_ms(lat['p50'])}, p90 {_ms(lat['p90'])}, p99 {_ms(lat['p99'])}, mean {_ms(lat['mean'])} "
             f"over {payload['runs']} runs; init {_ms(payload['init_ms'])}")]
    if payload.get("peak_rss_growth_bytes") is not None:
        lines.append(f"memory growth {payload['peak_rss_growth_bytes'] / 1024:,.0f} KiB")
    if "arena_bytes" in payload:
        lines.append(f"TFLM arena {payload['arena_bytes']:,} bytes (recording allocator: "
                     f"{payload['arena_recorded_bytes']:,})")
    if "accuracy" in payload:
        lines.append(f"accuracy {payload['accuracy']:.2%}")
    if "agreement" in payload:
        a = payload["agreement"]
        lines.append(f"agreement with {a['reference']}: top-1 {a['top1_agreement']:.2%}, max |error| "
                     f"{a['max_abs_error']:.4g}")
    for name, accuracy in payload.get("accuracy_by_output", {}).items():
        lines.append(f"accuracy of output {name} {accuracy:.2%}")
    if "agreement_by_output" in payload:
        by_output = payload["agreement_by_output"]
        for name, a in by_output["outputs"].items():
            top1 = f"top-1 {a['top1_agreement']:.2%}, " if a["top1_agreement"] is not None else ""
            lines.append(f"agreement of output {name} with {by_output['reference']}: {top1}max |error| "
                         f"{a['max_abs_error']:.4g}, mean |error| {a['mean_abs_error']:.4g}")
    if "profile" in payload:
        predicted = payload["predicted_latency_ms"]
        lines.append(f"predicted latency on {payload['profile']}: "
                     + (f"{predicted:.3f} ms ({payload['prediction']})" if predicted is not None
                        else payload["prediction"]))
    lines += [f"note: {n}" for n in payload["notes"]]
    return lines
