"""fit on a model int8 breaks: per-layer mixed precision keeps the accuracy budget on an MCU, and the report
shows the per-layer precisions and the per-layer error table (edgekit validate's) of the delivered model."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "export"))
from test_mixed import wide_range_regressor

MAX_DROP = 0.01


def _r2(found, y) -> float:
    found, y = np.ravel(found), np.ravel(y)
    return float(1.0 - np.sum((found - y) ** 2) / np.sum((y - y.mean()) ** 2))


@pytest.mark.slow
def test_fit_recovers_int8_loss_with_per_layer_precision_on_an_mcu(tmp_path):
    from edgekit.export.tflite import convert
    from edgekit.runners import tflm
    from edgekit.workflows.fit import fit

    model = wide_range_regressor()
    x = np.random.default_rng(0).standard_normal((600, 8)).astype(np.float32)
    y = model.predict(x, verbose=0)
    model.save(tmp_path / "reg.h5")
    np.savez(tmp_path / "train.npz", x=x[:400], y=y[:400])
    np.savez(tmp_path / "val.npz", x=x[400:], y=y[400:])
    # what plain int8 would deliver: more than the allowed drop
    int8 = convert(model, "int8", representative_data=x[:300]).tflite_bytes
    assert 1.0 - _r2(tflm.predict(int8, x[400:]), y[400:]) > 5 * MAX_DROP

    out = tmp_path / "out"
    result = fit(str(tmp_path / "reg.h5"), "stm32h743", str(tmp_path / "train.npz"), val=str(tmp_path / "val.npz"),
                 out_dir=str(out), max_accuracy_drop=MAX_DROP, epochs=2, quiet=True)
    assert result.teacher_accuracy - result.final_accuracy <= MAX_DROP
    raised = {n: p for n, p in result.layer_precisions.items() if p != "int8"}
    assert raised and set(raised.values()) <= {"int16x8", "float32"}
    # the delivered (stripped) MCU file itself keeps the budget on TFLite Micro
    delivered = tflm.predict((out / "model.tflite").read_bytes(), x[400:])
    assert 1.0 - _r2(delivered, y[400:]) <= MAX_DROP

    report = json.loads((out / "report.json").read_text())
    assert report["layer_precisions"] == result.layer_precisions
    table = report["layer_table"]
    assert table["runtime"] == "tflm" and {r["layer"] for r in table["rows"]} == {"wide", "hidden", "head"}
    snrs = [r["snr_db"] for r in table["rows"]]
    assert snrs == sorted(snrs) and table["output_snr_db"] > 26
    assert {r["layer"]: r["dtype"] for r in table["rows"]}["wide"] == "int16"
    page = (out / "report.html").read_text()
    assert "Per-layer error vs the Keras model" in page and "Per-layer precision" in page
    section = page[page.index("Per-layer error vs the Keras model"):]
    worst, best = (f"<td>{table['rows'][i]['layer']}</td>" for i in (0, -1))
    assert section.index(worst) < section.index(best)
