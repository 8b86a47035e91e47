"""The baselines of benchmarks/fit_vs_baselines.py, each run the way its own tool's guide says, per seed.

tfmot sparsity (https://www.tensorflow.org/model_optimization/guide/pruning/pruning_with_keras): the teacher
wrapped with `prune_low_magnitude`, PolynomialDecay from the guide's initial 50 % to 80 % sparsity, reached
at PRUNE_RAMP of the fine-tuning steps (frequency 100, the default) so the last third trains at the final
sparsity; `UpdatePruningStep` callback, Adam at its default 1e-3 on the labels (the guide's `compile`), for
TFMOT_EPOCHS = the teacher's own epoch budget (the guide's 2 epochs are for its MNIST demo; fewer under-trains
the MNIST-1D model: 88.8 % at 2 epochs in the earlier RESULTS.md), then `strip_pruning` and int8 PTQ.
tfmot QAT (https://www.tensorflow.org/model_optimization/guide/quantization/training_example):
`quantize_model(teacher)`, Adam default, QAT_EPOCHS epochs on the training data, converted to int8 with the
converter's default optimisations. tfmot's default scheme refuses Conv1D ("Layer conv1:<class Conv1D> is not
supported"), so on MNIST-1D the row uses edgekit's `quantize_aware` (tfmot's scheme plus Conv1D support and
BatchNorm folding), the only way tfmot QAT runs on that model; the row's note says so.
"""

from __future__ import annotations

import numpy as np

PRUNE_INITIAL = 0.5
PRUNE_RAMP = 2 / 3
QAT_EPOCHS = 3
BATCH_SIZE = 64


def tfmot_guide_sparse(teacher, split, sparsity: float, epochs: int, seed: int):
    """(stripped model, measured sparsity of the pruned kernels): the tfmot guide's recipe, `epochs` of fine-tuning."""
    import tensorflow_model_optimization as tfmot

    from edgekit._tf import tf_keras

    keras = tf_keras()
    keras.utils.set_random_seed(seed)
    model = keras.models.clone_model(teacher)
    model.set_weights(teacher.get_weights())
    steps = epochs * int(np.ceil(len(split.x_train) / BATCH_SIZE))
    schedule = tfmot.sparsity.keras.PolynomialDecay(initial_sparsity=PRUNE_INITIAL, final_sparsity=sparsity,
                                                    begin_step=0, end_step=int(PRUNE_RAMP * steps))
    pruned = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule)
    pruned.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                   metrics=["accuracy"])
    pruned.fit(np.asarray(split.x_train), np.asarray(split.y_train), batch_size=BATCH_SIZE, epochs=epochs,
               validation_data=(np.asarray(split.x_val), np.asarray(split.y_val)), verbose=0,
               callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    kernels = [w for layer in stripped.layers for w in layer.get_weights()[:1]
               if layer.__class__.__name__ in ("Conv1D", "Conv2D", "Dense")]
    zeros = sum(int(np.sum(k == 0)) for k in kernels) / max(1, sum(k.size for k in kernels))
    return stripped, zeros


def tfmot_qat(teacher, split, seed: int, epochs: int = QAT_EPOCHS):
    """(QAT model, int8 .tflite bytes, note): tfmot's quantize_model as its guide, else edgekit's Conv1D-aware QAT."""
    import tensorflow_model_optimization as tfmot

    from edgekit._tf import tf_keras
    from edgekit.export.tflite import convert

    keras = tf_keras()
    keras.utils.set_random_seed(seed)
    x, y = np.asarray(split.x_train), np.asarray(split.y_train)
    note = f"tfmot quantize_model, {epochs} epochs (Adam 1e-3)"
    try:
        model = tfmot.quantization.keras.quantize_model(teacher)
    except (RuntimeError, ValueError) as err:
        from edgekit.export.qat import quantize_aware

        first = str(err).strip().splitlines()[0][:80]
        model = quantize_aware(teacher, x, y, epochs=epochs, seed=seed).model
        note = (f"tfmot quantize_model refuses this model ({first}); edgekit quantize_aware (tfmot + Conv1D), "
                f"{epochs} epochs")
    else:
        model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        model.fit(x, y, batch_size=BATCH_SIZE, epochs=epochs, verbose=0,
                  validation_data=(np.asarray(split.x_val), np.asarray(split.y_val)))
    return model, convert(model, "int8", representative_data=x, seed=0).tflite_bytes, note


def build_image_teacher(width: int = 32, input_shape=(32, 32, 3), num_classes: int = 8):
    """Shapes32's teacher: 3 x (Conv2D(width, stride 2) -> BN -> ReLU), Flatten, Dense logits."""
    from edgekit._tf import tf_keras

    keras = tf_keras()
    layers = keras.layers
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for i in range(1, 4):
        x = layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, layers.Dense(num_classes, name="logits")(x), name=f"shapes32_teacher_w{width}")


def spread(values) -> str:
    """'97.15 [96.90, 97.40]': mean [min, max] in percent; '-' for none."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{100 * np.mean(values):.2f} [{100 * min(values):.2f}, {100 * max(values):.2f}]"


def gap_recovered(fit: list[float], scratch: list[float], teacher: float) -> str:
    """(fit - scratch) / (teacher - scratch) on the seed means."""
    if not fit or not scratch or teacher <= np.mean(scratch):
        return "-"
    return f"{(np.mean(fit) - np.mean(scratch)) / (teacher - np.mean(scratch)):.0%}"


ROW_ORDER = ("teacher int8 PTQ (a)", "tfmot 80% + int8 (b)", "tfmot QAT int8 (d)", "scratch student (c)", "edgekit fit")


def seeds_summary(tables) -> str:
    """One line per (data set, device): each row's int8 test accuracy as mean [min, max] over the seeds' tables."""
    groups: dict[tuple, list] = {}
    for table in tables:
        groups.setdefault((table.dataset, table.profile, table.epochs), []).append(table)
    lines = ["## Seeds summary", "",
             ("Int8 test accuracy in %, mean [min, max] over the seeds (the teacher is trained once, seed 0; the "
              "seed changes every compression run: tfmot fine-tuning, QAT, the scratch student, fit). Size: the "
              "row's .tflite as a share of the teacher's int8 file (seed 0). Gap recovered = (fit - scratch) / "
              "(teacher float - scratch) on the means. The scratch student gets fit's epochs and augmentation."), "",
             ("| data set | device | seeds | teacher float % | " + " | ".join(f"{name} (size)" for name in ROW_ORDER)
              + " | fit gap recovered | fit fits (seeds) |"),
             "|---|---|---:|---:|" + "---:|" * len(ROW_ORDER) + "---:|---|"]
    for (dataset, profile, _), group in groups.items():
        cells = []
        by_name = {name: [next((r for r in t.rows if r.name == name), None) for t in group] for name in ROW_ORDER}
        for name in ROW_ORDER:
            rows = [r for r in by_name[name] if r is not None]
            first = next((r for r in rows if r.tflite_bytes), None)
            size = "-" if first is None else f"{first.tflite_bytes / group[0].teacher_int8_bytes:.0%}"
            cells.append(f"{spread([r.accuracy for r in rows])} ({size})")
        fit = [r.accuracy for r in by_name["edgekit fit"] if r is not None and r.accuracy is not None]
        scratch = [r.accuracy for r in by_name["scratch student (c)"] if r is not None and r.accuracy is not None]
        fits = sum(1 for r in by_name["edgekit fit"] if r is not None and r.fits)
        lines.append(f"| {dataset} | {profile} | {len(group)} | {100 * group[0].teacher_float:.2f} | "
                     + " | ".join(cells) + f" | {gap_recovered(fit, scratch, group[0].teacher_float)} | "
                     f"{fits} of {len(group)} |")
    return "\n".join(lines)
