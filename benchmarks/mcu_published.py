"""Microcontroller profiles against published TFLite Micro latencies: which figure each profile was
calibrated on, and how its predictions compare with the published figures it was not calibrated on.

    .venv/bin/python benchmarks/mcu_published.py

The models are the MLPerf Tiny benchmark networks rebuilt in code (edgekit.examples.zoo; random weights, same
shapes): image classification ResNet-8, keyword spotting DS-CNN, visual wake words MobileNetV1-0.25 at
96x96x3, anomaly detection FC autoencoder (640-128x4-8-128x4-640), and TFLM's person_detection model
(MobileNetV1-0.25 at 96x96x1). Predictions are int8, from `edgekit.costmodel.latency` with each profile.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edgekit.costmodel.latency import estimate_for_profile
from edgekit.profiles import load_profile

MODELS = {
    "ic_resnet8": ("resnet8", {}),
    "kws_dscnn": ("dscnn", {}),
    "vww_mobilenet_v1_0.25_96": ("mobilenet_v1", {"alpha": 0.25, "resolution": 96, "classes": 2}),
    "ad_autoencoder": (
        "dense_autoencoder",
        {"inputs": 640, "hidden": (128, 128, 128, 128, 8, 128, 128, 128, 128)},
    ),
    "person_detection_96x96x1": ("mobilenet_v1_gray", {}),
}


@dataclass(frozen=True)
class Published:
    profile: str
    model: str
    latency_ms: float
    used_for_calibration: bool
    source: str


# MLPerf Tiny v0.5, closed division, "Reference" submission: TFLM v2.3.1 with CMSIS-NN on NUCLEO-L4R5ZI at
# 120 MHz (github.com/mlcommons/tiny_results_v0.5, closed/reference/results/Nucleo-L4R5ZI/*/performance/
# results.txt: median throughput 1.420, 5.497, 1.665, 99.487 inferences/s).
_MLPERF_V05 = "MLPerf Tiny v0.5 reference (TFLM 2.3.1 + CMSIS-NN), NUCLEO-L4R5ZI"
PUBLISHED = (
    Published("stm32l4r5", "ic_resnet8", 1000 / 1.420, True, _MLPERF_V05),
    Published("stm32l4r5", "vww_mobilenet_v1_0.25_96", 1000 / 1.665, True, _MLPERF_V05),
    Published("stm32l4r5", "kws_dscnn", 1000 / 5.497, False, _MLPERF_V05),
    Published("stm32l4r5", "ad_autoencoder", 1000 / 99.487, False, _MLPERF_V05),
    # Arduino blog (Larry Bank, 2020): TFLM person_detection on the Arduino Nano 33 BLE, CMSIS-NN kernels.
    Published(
        "nrf52840",
        "person_detection_96x96x1",
        1200.0,
        False,
        "Arduino Nano 33 BLE, TFLM person_detection with CMSIS-NN (Arduino blog, 2020)",
    ),
    # espressif/esp-tflite-micro README, "Performance Comparison": ESP32-S3 at 240 MHz with ESP-NN.
    Published(
        "esp32-s3",
        "person_detection_96x96x1",
        54.0,
        False,
        "esp-tflite-micro README: person_detection 54 ms with ESP-NN, ESP32-S3 240 MHz",
    ),
)


def build_graphs():
    from edgekit._tf import tf_keras
    from edgekit.examples import zoo
    from edgekit.ir.from_keras import from_keras

    graphs = {}
    for name, (builder, kwargs) in MODELS.items():
        if builder == "mobilenet_v1_gray":  # TFLM's person_detection: MobileNetV1-0.25, 96x96 grayscale
            keras = tf_keras()
            base = keras.applications.MobileNet(
                input_shape=(96, 96, 1), alpha=0.25, weights=None, include_top=False
            )
            model = zoo._static_head(base, 2, "person_detection")
        else:
            model = zoo.build(builder, **kwargs)
        graphs[name] = from_keras(model)
    return graphs


def main() -> int:
    graphs = build_graphs()
    print("| profile | model | MACs | published ms | predicted ms | error | calibrated on it | source |")
    print("|---|---|---|---|---|---|---|---|")
    held_out = []
    for pub in PUBLISHED:
        profile = load_profile(pub.profile)
        graph = graphs[pub.model]
        est = estimate_for_profile(graph, profile, "int8")
        from edgekit.costmodel.layer_costs import analyze

        err = est.latency_ms / pub.latency_ms - 1
        if not pub.used_for_calibration:
            held_out.append(err)
        print(
            f"| {pub.profile} | {pub.model} | {analyze(graph).macs / 1e6:.2f} M | {pub.latency_ms:.1f} | "
            f"{est.latency_ms:.1f} | {err * 100:+.1f} % | {'yes' if pub.used_for_calibration else 'no'} | "
            f"{pub.source} |"
        )
    print(
        f"\nheld-out figures: {len(held_out)}, |error| "
        + ", ".join(f"{abs(e) * 100:.0f} %" for e in held_out)
    )
    print("\nPredictions for the other MCU profiles (no held-out published TFLM figure):")
    for name in ("stm32h743", "rp2040"):
        profile = load_profile(name)
        cells = ", ".join(
            f"{m} {estimate_for_profile(graphs[m], profile, 'int8').latency_ms:.1f} ms" for m in MODELS
        )
        print(f"  {name}: {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
