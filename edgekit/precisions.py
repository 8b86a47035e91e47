"""Precision names: what the exporter writes and what a device's runtime has kernels for (one home)."""

# What `edgekit export` / the converter can write, from largest to smallest file.
PRECISIONS = ("float32", "float16", "dynamic_int8", "int8")
# What a profile may list as supported by its runtime's kernels (int16x8: int16 activations, int8 weights).
DEVICE_PRECISIONS = ("int8", "int16x8", "float16", "float32")
# What TFLite Micro runs from PRECISIONS (no float16 or hybrid kernels).
TFLM_PRECISIONS = ("int8", "float32")
# `edgekit export --precision mixed`: per-layer int8 / int16x8 / float32 (edgekit.workflows.export_mixed).
MIXED = "mixed"
