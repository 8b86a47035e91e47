"""`edgekit export`: convert a Keras model to TFLite (and TFLite Micro sources for MCU devices), checked against Keras.

Thin: parse, call edgekit.workflows.export.export, print. TensorFlow is imported only inside the command body.
"""

from __future__ import annotations

import json
import os

import click

from edgekit.precisions import MIXED, PRECISIONS


@click.command("export")
@click.argument("model", type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(), help="The .tflite file to write (MCU sources go "
              "beside it: <name>_data.h/.cc, <name>_ops.h, <name>_main.cc).")
@click.option("--precision", "-p", type=click.Choice((*PRECISIONS, MIXED)), help="Default: the --device profile's "
              "preferred precision, else int8. mixed: int8 with the layers int8 hurts most raised to int16x8 or "
              "float32 (only where the device runtime has the kernels) until --max-error is met; needs --data.")
@click.option("--max-error", type=str, help="--precision mixed: the relative RMS output error to reach on the "
              "held-out 20% of --data (default 0.05 = 5%).")
@click.option("--device", "-d", help="Device profile (name or YAML path); runtime tflm adds the C sources.")
@click.option("--data", type=click.Path(), help="Samples (.npz x[,y] / .npy / image folder): int8 calibration, "
              "--qat / --sparsity fine-tuning, and the conversion check (20% held out). Several inputs or "
              "outputs: an .npz with one array per input (its Keras name, or x0, x1, ...) and labels "
              "y_<output name>.")
@click.option("--int8-io/--float-io", "int8_io", default=None, help="int8 or float32 model inputs and outputs "
              "(int8 and mixed precision; default int8 on TFLM devices, float elsewhere; mixed: the type of the "
              "layer next to them, int16 beside an int16x8 layer).")
@click.option("--qat", is_flag=True, help="Quantization-aware fine-tune (tfmot) before the int8 conversion "
              "(needs --data); sparsity-preserving when the model is sparse.")
@click.option("--sparsity", type=float, help="Zero this share of conv/dense weights with tfmot first (e.g. 0.8), "
              "Dense layers in 1x16 blocks LiteRT's sparse int8 kernel can use.")
@click.option("--sparse/--no-sparse", "sparse", default=None, help="Store sparse weights sparsely (default: when "
              "the model is sparse and the device runs LiteRT).")
@click.option("--epochs", type=int, default=2, show_default=True, help="Fine-tuning epochs for --qat / --sparsity.")
@click.option("--strict", is_flag=True, help="Fail (exit 2, nothing written) when the conversion check fails.")
@click.option("--min-agreement", type=float, default=0.98, show_default=True,
              help="Least top-1 agreement with the Keras model the check accepts.")
@click.option("--no-memory-opt", "no_memory_opt", is_flag=True, help="TFLM devices: keep TFLM's own operator "
              "order and memory planner and unshared quantisation vectors (by default edgekit shares repeated "
              "vectors and stores its order and offline memory plan where TFLM measures a smaller arena with "
              "bit-identical outputs).")
@click.option("--memory-overlap", is_flag=True, help="TFLM devices: also let a layer's output overlap the input "
              "that dies there. Off by default: it relies on the kernels writing in the reference kernels' "
              "row order, checked only with TFLM's reference kernels, not CMSIS-NN or other optimised ones.")
@click.option("--trust-model", is_flag=True, help="Allow code stored in the model (Lambda, custom layers) to run.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def command(model, out, precision, max_error, device, data, int8_io, qat, sparsity, sparse, epochs, strict,
            min_agreement, no_memory_opt, memory_overlap, trust_model, as_json) -> None:
    """Convert MODEL to a TFLite file at --precision, check it against MODEL, and write it atomically.

    MODEL is never modified. With an MCU --device the flatbuffer is stripped of names and metadata and
    the exact TFLM arena is measured. Exit codes: 0 ok (check warnings are printed), 2 bad input,
    unsupported op or (with --strict) a failed check (mixed: the held-out error above --max-error).
    """
    from edgekit.workflows.export import export

    result = export(model, out, precision=precision, device=device, data=data, int8_io=int8_io, qat=qat,
                    epochs=epochs, sparsity=sparsity, sparse=sparse, strict=strict, min_top1=min_agreement,
                    trust=trust_model, memory_opt=not no_memory_opt, memory_overlap=memory_overlap,
                    max_error=max_error)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    for line in export_lines(result):
        click.echo(line)


def export_lines(result) -> list[str]:
    check = result.check
    lines = [(f"wrote {result.tflite_path}: {result.precision}, {result.size_bytes:,} bytes "
             f"({result.gzip_bytes:,} gzipped), for {result.runtime}")]
    agree = f"top-1 agreement {check.top1_agreement:.2%}, " if check.top1_agreement is not None else ""
    lines.append(f"check vs Keras on {check.samples} {check.on} samples: {agree}max |error| {check.max_abs_error:.4g}, "
                 f"mean |error| {check.mean_abs_error:.4g} -> {'ok' if check.passed else 'BELOW THRESHOLD'}")
    for o in check.outputs:
        agree = f"top-1 agreement {o.top1_agreement:.2%}, " if o.top1_agreement is not None else ""
        accuracy = (f"; accuracy Keras {o.keras_accuracy:.2%}, TFLite {o.tflite_accuracy:.2%}"
                    if o.keras_accuracy is not None else "")
        lines.append(f"  output {o.name} ({o.kind}): {agree}max |error| {o.max_abs_error:.4g}, mean |error| "
                     f"{o.mean_abs_error:.4g} -> {'ok' if o.passed else 'BELOW THRESHOLD'}{accuracy}")
    if check.keras_accuracy is not None:
        lines.append(f"accuracy on held-out labels: input Keras model {check.keras_accuracy:.2%}, exported TFLite "
                     f"{check.tflite_accuracy:.2%}")
    if result.mixed is not None:
        lines += mixed_lines(result.mixed)
    if result.mcu is not None:
        mcu = result.mcu
        lines.append(f"TFLM: ops {', '.join(mcu.ops)}; arena {mcu.arena_bytes:,} bytes measured "
                     f"(recording {mcu.recorded_arena_bytes:,}), kTensorArenaSize {mcu.arena_constant_bytes:,}")
        lines.append(f"flash after stripping: {mcu.strip.after.total_bytes:,} bytes = "
                     f"{mcu.strip.after.weight_bytes:,} weights + "
                     f"{mcu.strip.after.overhead_bytes:,} overhead (was {mcu.strip.before.total_bytes:,} before "
                     f"dropping {', '.join(mcu.strip.removed[:3])} ...)")
        lines += memory_lines(mcu)
        lines += [f"wrote {os.path.basename(path)}" for path in result.files[1:]]
    if result.sparsity is not None:
        lines.append(f"sparsity: {result.sparsity.summary}")
        lines += [f"  {note}" for note in result.sparsity.notes]
    lines += [f"warning: {w}" for w in result.warnings]
    lines += [f"note: {n}" for n in result.notes]
    return lines


def memory_lines(mcu) -> list[str]:
    """The memory ladder: arena and flash before and after each step tried (measured in TFLM)."""
    if mcu.memory is None:
        return ["memory optimisation: off (--no-memory-opt)"]
    lines = [(f"memory optimisation: {', '.join(mcu.memory.applied) or 'none applied'}; arena "
              f"{mcu.memory.baseline_arena_bytes:,} -> {mcu.memory.arena_bytes:,} bytes")]
    lines += [f"  vector sharing: {entry}" for entry in mcu.strip.removed if "now shared" in entry]
    for step in mcu.memory.steps:
        if step.applied:
            lines.append(f"  {step.name}: arena {step.arena_before_bytes:,} -> {step.arena_after_bytes:,} bytes, "
                         f"flash {step.flash_before_bytes:,} -> {step.flash_after_bytes:,} bytes")
        else:
            lines.append(f"  {step.name}: not applied ({step.why})")
    return lines


def mixed_lines(mixed) -> list[str]:
    """The per-layer precision table of a mixed export, its held-out error and predicted cost."""
    verdict = "ok" if mixed.passed else "ABOVE TARGET"
    lines = [(f"per-layer precision (held-out relative RMS error on {mixed.held_out_samples} samples, {mixed.runtime}: "
             f"int8 {mixed.int8_relative_rms:.2%} -> mixed {mixed.relative_rms:.2%}, target "
             f"{mixed.max_relative_rms:.2%} -> {verdict}):")]
    rows = [("layer", "precision", "ops", "float-alone SNR dB", "predicted ms")]
    for c in mixed.layers:
        ms = mixed.layer_latency_ms.get(c.layer)
        rows.append((c.layer, c.precision, "+".join(c.ops) or "-",
                     f"{c.alone_float_snr_db:.1f}" if abs(c.alone_float_snr_db) != float("inf") else "-",
                     "-" if ms is None else f"{ms:.4f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    kinds = {k: mixed.conversions.count(k) for k in dict.fromkeys(mixed.conversions)}
    lines.append("  conversions between precisions: " + (", ".join(f"{n} {k}" for k, n in kinds.items()) or "none")
                 + (f", {mixed.conversion_ms:.4f} ms predicted" if mixed.latency_ms is not None else ""))
    if mixed.latency_ms is not None:
        lines.append(f"predicted latency int8 {mixed.int8_latency_ms:.4f} ms -> mixed {mixed.latency_ms:.4f} ms "
                     f"({mixed.latency_basis})")
    lines.append(f"size before MCU stripping: mixed {mixed.size_bytes:,} bytes, input {mixed.io_types[0]} and output "
                 f"{mixed.io_types[1]} (all-int8 {mixed.int8_size_bytes:,}, float32 {mixed.float_size_bytes:,}, "
                 "both with float I/O)")
    lines += [f"note: {n}" for n in mixed.notes]
    return lines
