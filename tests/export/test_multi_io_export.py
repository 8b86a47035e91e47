"""`edgekit export` and `edgekit bench` on a model with two inputs (image + vector) and two heads (class + box).

The figures the commands report per output are recomputed here with LiteRT's own signature runner (fed
and read by name, so independent of edgekit's input ordering) against the Keras model.
"""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.cli.main import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_heads(tmp_path_factory):
    """A trained image + metadata model with a 3-class head 'cls' (logits) and a 4-value head 'box'."""
    from edgekit._tf import tf_keras

    keras = tf_keras()
    keras.utils.set_random_seed(0)
    image, meta = keras.Input((8, 8, 1), name="image"), keras.Input((6,), name="meta")
    a = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 3, activation="relu")(image))
    joint = keras.layers.Concatenate()([a, keras.layers.Dense(8, activation="relu")(meta)])
    model = keras.Model([image, meta], [keras.layers.Dense(3, name="cls")(joint),
                                        keras.layers.Dense(4, name="box")(joint)])
    rng = np.random.default_rng(0)
    images = (rng.normal(size=(400, 8, 8, 1)) + rng.choice([-0.5, 0.5], size=(400, 1, 1, 1))).astype(np.float32)
    metas = rng.normal(size=(400, 6)).astype(np.float32)
    classes = (images.mean((1, 2, 3)) > 0).astype(np.int64) + (metas[:, 0] > 0)
    boxes = np.abs(metas[:, :4]) * 4  # regression targets of a different scale than the logits
    model.compile(keras.optimizers.Adam(1e-2), loss={
        "cls": keras.losses.SparseCategoricalCrossentropy(from_logits=True), "box": "mse"})
    model.fit([images, metas], {"cls": classes, "box": boxes}, epochs=30, batch_size=32, verbose=0)
    folder = tmp_path_factory.mktemp("two_heads")
    model.save(folder / "two.h5")
    np.savez(folder / "two.npz", image=images, meta=metas, y_cls=classes, y_box=boxes)
    return model, folder


def _run(*args) -> dict:
    result = CliRunner().invoke(main, [*map(str, args), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _litert_by_name(path, inputs: dict) -> dict:
    """Outputs by signature name, one sample per call, with LiteRT's signature runner."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path)).get_signature_runner()
    rows = [runner(**{k: v[i:i + 1] for k, v in inputs.items()}) for i in range(len(next(iter(inputs.values()))))]
    return {name: np.concatenate([r[name] for r in rows]) for name in rows[0]}


def _held_out(model, folder):
    from edgekit.workflows.export import CHECK_FRACTION
    from edgekit.workflows.export_outputs import named_samples

    _, val = named_samples(str(folder / "two.npz"), model, CHECK_FRACTION)
    return val


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_export_checks_each_output_by_name(two_heads, precision):
    model, folder = two_heads
    out = folder / f"two_{precision}.tflite"
    report = _run("export", folder / "two.h5", "-o", out, "-p", precision, "--data", folder / "two.npz")
    check = report["check"]
    assert list(check["outputs"]) == ["cls", "box"] and check["samples"] == 80 and check["on"] == "data"
    assert check["outputs"]["cls"]["kind"] == "class" and check["outputs"]["box"]["kind"] == "regression"
    assert check["outputs"]["box"]["top1_agreement"] is None and check["outputs"]["box"]["keras_accuracy"] is None

    val = _held_out(model, folder)
    keras = dict(zip(model.output_names, model.predict(list(val.x), verbose=0)))
    lite = _litert_by_name(out, {"image": val.x[0], "meta": val.x[1]})
    for name in ("cls", "box"):
        error = np.abs(keras[name] - lite[name])
        assert check["outputs"][name]["max_abs_error"] == pytest.approx(float(error.max()), rel=1e-3, abs=1e-6)
        assert check["outputs"][name]["mean_abs_error"] == pytest.approx(float(error.mean()), rel=1e-3, abs=1e-7)
    labels = val.labels["cls"]
    cls = check["outputs"]["cls"]
    assert cls["keras_accuracy"] == pytest.approx(np.mean(keras["cls"].argmax(1) == labels))
    assert cls["keras_accuracy"] > 0.8
    assert cls["tflite_accuracy"] == pytest.approx(np.mean(lite["cls"].argmax(1) == labels))
    assert cls["top1_agreement"] == pytest.approx(np.mean(keras["cls"].argmax(1) == lite["cls"].argmax(1)))
    assert check["max_abs_error"] == max(o["max_abs_error"] for o in check["outputs"].values())
    if precision == "float32":
        assert check["max_abs_error"] < 1e-4 and check["passed"] and report["calibrated_on"] is None
    else:  # calibrated per input on the data: both heads close, yet visibly quantised
        assert report["calibrated_on"] == "data" and cls["top1_agreement"] >= 0.9
        box = check["outputs"]["box"]
        assert 1e-4 < box["mean_abs_error"] < 0.05 * float(np.abs(keras["box"]).max()) and box["passed"]


def test_bench_reports_accuracy_and_agreement_per_output(two_heads):
    model, folder = two_heads
    out = folder / "bench_int8.tflite"
    _run("export", folder / "two.h5", "-o", out, "-p", "int8", "--data", folder / "two.npz")
    report = _run("bench", out, "--data", folder / "two.npz", "--model", folder / "two.h5", "--runs", 5)
    with np.load(folder / "two.npz") as data:
        inputs, labels = {"image": data["image"], "meta": data["meta"]}, data["y_cls"]
    lite = _litert_by_name(out, inputs)
    keras = dict(zip(model.output_names, model.predict([inputs["image"], inputs["meta"]], verbose=0)))
    assert report["accuracy_by_output"] == {"cls": pytest.approx(np.mean(lite["cls"].argmax(1) == labels))}
    agreement = report["agreement_by_output"]
    assert agreement["reference"] == "keras" and agreement["samples"] == 400 and "agreement" not in report
    for name in ("cls", "box"):
        error = np.abs(keras[name] - lite[name])
        assert agreement["outputs"][name]["mean_abs_error"] == pytest.approx(float(error.mean()), rel=1e-3)
    assert agreement["outputs"]["box"]["top1_agreement"] is None
    assert agreement["outputs"]["cls"]["top1_agreement"] == pytest.approx(
        np.mean(keras["cls"].argmax(1) == lite["cls"].argmax(1)))
    assert report["latency_ms"]["p50"] > 0


def test_bad_multi_input_data_is_one_line_exit_2(two_heads, tmp_path):
    _, folder = two_heads
    rng = np.random.default_rng(0)
    missing = tmp_path / "missing.npz"
    np.savez(missing, image=rng.normal(size=(20, 8, 8, 1)), y_cls=np.zeros(20, int))
    ambiguous = tmp_path / "ambiguous.npz"
    np.savez(ambiguous, x0=rng.normal(size=(20, 8, 8, 1)), x1=rng.normal(size=(20, 6)), y=np.zeros(20, int))
    for data, words in ((missing, "'meta'"), (ambiguous, "y_cls")):
        result = CliRunner().invoke(main, ["export", str(folder / "two.h5"), "-o", str(tmp_path / "m.tflite"),
                                           "-p", "float32", "--data", str(data)])
        assert result.exit_code == 2 and words in result.output and len(result.output.strip().splitlines()) == 1
        assert not (tmp_path / "m.tflite").exists()
