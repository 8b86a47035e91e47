"""MCU memory beyond TFLM's own planner (issue 15): measured arena per optimisation, and fer's flash overhead.

    nice -n 10 .venv/bin/python benchmarks/mcu_memory.py                  # print both tables
    nice -n 10 .venv/bin/python benchmarks/mcu_memory.py --save out.md    # and write them as markdown

Arena: each model is converted to int8 (int8 input and output, as an MCU build uses), stripped, then
`edgekit.export.memory_plan.optimise_arena` measures the smallest arena the host TFLM interpreter
(tflite-micro Python package, reference kernels, 64-bit host) allocates and invokes it with, for TFLM's
own order and greedy plan and after each of edgekit's steps (operator order, offline plan, outputs
overlapping their dying input). Every step's outputs are compared bit for bit with the original's on
8 random inputs. Models have random weights with trained-looking BatchNorm statistics and biases.
Nothing here ran on a microcontroller: this host has no board.

Patches: `edgekit.export.patch_search.best_patching` on the same int8 model (offline plan with overlaps and
the input peeled in place, as the "+ overlap" column): split points x grids under a 15 % extra-MACs cap,
the two best planned candidates measured in TFLM and compared bit for bit with the unpatched model.

Flash: the mini-Xception of oarriaga/face_classification (fer; 64x64x1, 7 classes, 58,423 parameters),
random weights, trained-looking BatchNorm, exported as full int8 for an MCU: the stripping of before this
issue (names, metadata, signatures) vs now (plus shared quantisation / shape / options tables and dropped
all-zero depthwise biases). TFLM outputs compared bit for bit.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def trained_looking(model, seed: int = 0):
    """BatchNorm statistics and biases away from their initial values (folded biases are then non-zero)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        names = [w.name.split("/")[-1].split(":")[0] for w in layer.weights]
        weights = layer.get_weights()
        for i, name in enumerate(names):
            if name in ("gamma", "moving_variance"):
                weights[i] = rng.uniform(0.5, 1.5, weights[i].shape).astype(weights[i].dtype)
            elif name in ("beta", "moving_mean", "bias"):
                weights[i] = rng.normal(0, 0.1, weights[i].shape).astype(weights[i].dtype)
        layer.set_weights(weights)
    return model


def mini_xception(input_shape=(64, 64, 1), classes: int = 7):
    """oarriaga/face_classification's mini_XCEPTION (the fer model), without its L2 regularisers."""
    from edgekit._tf import tf_keras

    keras = tf_keras()
    L = keras.layers
    x = inputs = keras.Input(input_shape)
    for _ in range(2):
        x = L.Activation("relu")(L.BatchNormalization()(L.Conv2D(8, 3, use_bias=False)(x)))
    for filters in (16, 32, 64, 128):
        residual = L.BatchNormalization()(L.Conv2D(filters, 1, strides=2, padding="same", use_bias=False)(x))
        x = L.SeparableConv2D(filters, 3, padding="same", use_bias=False)(x)
        x = L.Activation("relu")(L.BatchNormalization()(x))
        x = L.BatchNormalization()(L.SeparableConv2D(filters, 3, padding="same", use_bias=False)(x))
        x = L.MaxPooling2D(3, strides=2, padding="same")(x)
        x = L.add([x, residual])
    x = L.GlobalAveragePooling2D()(L.Conv2D(classes, 3, padding="same")(x))
    return keras.Model(inputs, L.Activation("softmax", name="predictions")(x), name="mini_xception")


def arena_models():
    from edgekit.examples import zoo

    return {
        "ResNet-8 (32x32x3)": zoo.resnet8(),
        "DS-CNN (49x10, 64 wide)": zoo.dscnn(),
        "concat + SE (32x32x3)": zoo.concat_se_net(),
        "mini-Xception fer (64x64x1)": mini_xception(),
        "MobileNetV1 0.25 (96x96)": zoo.mobilenet_v1(0.25, 96),
        "MobileNetV2 0.35 (96x96)": zoo.mobilenet_v2(0.35, 96),
    }


def arena_table() -> tuple[list[str], list[str]]:
    from edgekit.export.memory_plan import optimise_arena
    from edgekit.export.patch_search import best_patching
    from edgekit.export.strip import strip_for_mcu
    from edgekit.export.tflite import convert
    from edgekit.model_io.flatbuffer import ints, read_model
    from edgekit.runners import tflm

    rows = [("| model | TFLM own plan | + order | + offline plan | + overlap | + patches | change | extra MACs "
            "| bit-identical | plan s |"), "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    details = [("| model | patching (split ops, grid) | head before -> after | tail before -> after | input B "
               "| bound: input + tail B | why not kept |"), "|---|---|---:|---:|---:|---:|---|"]
    rng = np.random.default_rng(0)
    for name, model in arena_models().items():
        x = rng.normal(size=(16, *model.input_shape[1:])).astype(np.float32)
        int8 = strip_for_mcu(convert(trained_looking(model), "int8", x, int8_io=True).tflite_bytes).tflite_bytes
        start = time.perf_counter()
        result = optimise_arena(int8, x[:8], steps=("order", "offline plan", "overlap"))
        planned = tflm.measure_arena(result.tflite_bytes)
        found = best_patching(int8, x[:8], baseline_arena_bytes=result.arena_bytes)
        seconds = time.perf_counter() - start
        arenas = [s.arena_bytes for s in result.steps]
        best = min(result.arena_bytes, found.arena_bytes or result.arena_bytes)
        change = (best - arenas[0]) / arenas[0]
        same = all(s.outputs_identical for s in result.steps) and found.outputs_identical is not False
        patched = f"{found.arena_bytes:,}" if found.arena_bytes else "n/a"
        macs = f"{found.extra_macs_fraction:+.1%}" if found.arena_bytes else "-"
        cells = " | ".join(f"{a:,}" for a in arenas)
        rows.append(f"| {name} | {cells} | {patched} | {change:+.1%} | {macs} | {'yes' if same else 'NO'} "
                    f"| {seconds:.1f} |")
        input_bytes = int(np.prod(ints(read_model(int8).subgraphs[0].tensors[0].shape)))
        bound = input_bytes + planned.recorded_tail_bytes
        if found.arena_bytes:
            after = tflm.measure_arena(found.tflite_bytes)
            details.append(f"| {name} | {found.split_op}, {found.grid[0]}x{found.grid[1]} | "
                           f"{planned.recorded_head_bytes:,} -> {after.recorded_head_bytes:,} | "
                           f"{planned.recorded_tail_bytes:,} -> {after.recorded_tail_bytes:,} | {input_bytes:,} | "
                           f"{bound:,} | {found.why or 'kept'} |")
        else:
            details.append(f"| {name} | none | {planned.recorded_head_bytes:,} | {planned.recorded_tail_bytes:,} | "
                           f"{input_bytes:,} | {bound:,} | {found.why} |")
        print(rows[-1], details[-1], sep="\n", flush=True)
    return rows, details


def flash_table() -> list[str]:
    from edgekit.export import strip
    from edgekit.export.tflite import convert
    from edgekit.runners import tflm

    model = trained_looking(mini_xception())
    x = np.random.default_rng(1).normal(size=(32, 64, 64, 1)).astype(np.float32)
    converted = convert(model, "int8", x, int8_io=True).tflite_bytes
    keep = strip._drop_zero_biases, strip._point_empty_to_buffer_zero
    strip._drop_zero_biases = strip._point_empty_to_buffer_zero = lambda model: 0  # the stripping of before
    try:
        before = strip.strip_for_mcu(converted, share=False)
    finally:
        strip._drop_zero_biases, strip._point_empty_to_buffer_zero = keep
    after = strip.strip_for_mcu(converted)
    same = np.array_equal(tflm.predict(converted, x[:8]), tflm.predict(after.tflite_bytes, x[:8]))
    rows = [f"mini-Xception: {model.count_params():,} parameters; converted int8 file {len(converted):,} B",
            "", "| | file B | weights B | quantisation B | other B |", "|---|---:|---:|---:|---:|"]
    for label, b in (("stripped as before", before.after), ("stripped now", after.after)):
        other = b.total_bytes - b.weight_bytes - b.quantization_bytes
        rows.append(f"| {label} | {b.total_bytes:,} | {b.weight_bytes:,} | {b.quantization_bytes:,} | {other:,} |")
    rows += ["", f"removed: {'; '.join(after.removed)}", f"TFLM outputs bit-identical: {same}"]
    print("\n".join(rows), flush=True)
    return rows


HEADER = """# MCU memory beyond TFLM's own planner (issue 15): measured results

Command: `nice -n 10 .venv/bin/python benchmarks/mcu_memory.py --save benchmarks/mcu_memory_results.md`
(2 shared x86 cores, host TFLM interpreter from the tflite-micro Python package, reference kernels;
no microcontroller on this host: nothing here ran on a board or in an emulated Cortex-M.)
Arena = smallest `arena_size` the interpreter allocates and invokes with (bisection to the byte, 64-bit
host); each column adds one step to the ones on its left. "bit-identical": int8 outputs of every step
equal the unmodified model's on 8 random inputs. "plan s" includes the arena bisections and TFLM runs.
The arena is TFLM's head (activations, scratch) plus its tail (per-op data, tensor structs); only the
head changes here. The order step finds nothing on these models: the converter's order already has
the lowest live-bytes peak; it matters on graphs with parallel branches stored interleaved (tests).
"""


PATCHES_NOTE = """"+ patches": the best patched model (edgekit.export.patch_search; the unpatched stage rewritten per
patch in SLICE / PAD / CONV_2D / DEPTHWISE_CONV_2D / CONCATENATION, then the offline plan with overlaps)
measured in TFLM; "change" takes the smaller of "+ overlap" and "+ patches"; "extra MACs" is the overlap the
patches recompute, counted by the cost model and equal to the MACs counted from the rewritten flatbuffer.
Head = activations (what patching shrinks); tail = TFLM's per-op and per-tensor bookkeeping, which grows
with every copy of an op (node structs, tensor structs, per-channel multipliers). "bound": the model's
input tensor is in the arena, whole, until the first op has read it, and the tail is there throughout, so
no rewrite that keeps both gets below input + the unpatched tail."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", help="write the tables as markdown to this file")
    args = parser.parse_args()
    rows, details = arena_table()
    text = [HEADER, "## Arena (bytes, measured in the host TFLM)", "", *rows, "",
            "## Patch-based execution (issue 15): what bounds it", "", PATCHES_NOTE, "", *details, "",
            "## Flash: fer's mini-Xception, full int8 for an MCU", "", *flash_table()]
    if args.save:
        Path(args.save).write_text("\n".join(text) + "\n")


if __name__ == "__main__":
    main()
