"""Which op types a runtime really runs at a precision: one tiny model per op, run by the real interpreter.

    >>> supported_ops("tflm", "int16x8", ["FULLY_CONNECTED", "MEAN"])          # doctest: +SKIP
    {'FULLY_CONNECTED': True, 'MEAN': False}

Kernel lists are not assumed: for each op type a tiny tf_keras model containing it is converted to float32,
quantised by ai-edge-quantizer with every op at the precision (the same recipe edgekit.export.mixed applies
per layer), and loaded and invoked by LiteRT or TFLite Micro in the isolated worker (a kernel CHECK that
aborts becomes a "no"). An op type counts as supported when the model ran and the op's output really has
the precision's type (int16 for int16x8: an op ai-edge-quantizer leaves float is not "int16x8").
Op types without a probe model answer None: the candidate model itself, run on the runtime, decides.
Answers are cached per process.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from edgekit.errors import BadInputError, UnsupportedModelError

_OUTPUT_DTYPE = {"int8": "int8", "int16x8": "int16", "float32": "float32"}


def _probe_model(op: str):
    """A tiny tf_keras model whose float conversion contains `op` (None when there is no probe for it)."""
    from edgekit._tf import tensorflow, tf_keras

    keras, layers, tf = tf_keras(), tf_keras().layers, tensorflow()
    keras.utils.set_random_seed(0)
    image = keras.Input((8, 8, 4))
    vector = keras.Input((12,))

    def dense_then(function):
        return vector, layers.Lambda(function)(layers.Dense(6)(vector))

    builders = {
        "FULLY_CONNECTED": lambda: (vector, layers.Dense(6)(vector)),
        "CONV_2D": lambda: (image, layers.Conv2D(4, 3, padding="same")(image)),
        "DEPTHWISE_CONV_2D": lambda: (image, layers.DepthwiseConv2D(3, padding="same")(image)),
        "AVERAGE_POOL_2D": lambda: (image, layers.AveragePooling2D()(layers.Conv2D(4, 1)(image))),
        "MAX_POOL_2D": lambda: (image, layers.MaxPooling2D()(layers.Conv2D(4, 1)(image))),
        "MEAN": lambda: (image, layers.GlobalAveragePooling2D()(layers.Conv2D(4, 1)(image))),
        "ADD": lambda: (vector, layers.Add()([layers.Dense(6)(vector), layers.Dense(6)(vector)])),
        "MUL": lambda: (vector, layers.Multiply()([layers.Dense(6)(vector), layers.Dense(6)(vector)])),
        "CONCATENATION": lambda: (vector, layers.Concatenate()([layers.Dense(6)(vector), layers.Dense(5)(vector)])),
        "SOFTMAX": lambda: (vector, layers.Softmax()(layers.Dense(6)(vector))),
        "LOGISTIC": lambda: (vector, layers.Activation("sigmoid")(layers.Dense(6)(vector))),
        "TANH": lambda: (vector, layers.Activation("tanh")(layers.Dense(6)(vector))),
        "RESHAPE": lambda: (image, layers.Dense(3)(layers.Flatten()(layers.Conv2D(2, 1)(image)))),
        "PAD": lambda: (image, layers.ZeroPadding2D(1)(layers.Conv2D(4, 1)(image))),
        "SUB": lambda: (vector, layers.Subtract()([layers.Dense(6)(vector), layers.Dense(6)(vector)])),
        "MAXIMUM": lambda: (vector, layers.Maximum()([layers.Dense(6)(vector), layers.Dense(6)(vector)])),
        "TRANSPOSE_CONV": lambda: (image, layers.Conv2DTranspose(4, 3, strides=2, padding="same")(image)),
        "RESIZE_NEAREST_NEIGHBOR": lambda: (image, layers.UpSampling2D()(layers.Conv2D(4, 1)(image))),
        "RESIZE_BILINEAR": lambda: (image, layers.UpSampling2D(interpolation="bilinear")(layers.Conv2D(4, 1)(image))),
        "TRANSPOSE": lambda: (image, layers.Permute((2, 1, 3))(layers.Conv2D(4, 1)(image))),
        "LEAKY_RELU": lambda: (vector, layers.LeakyReLU(0.1)(layers.Dense(6)(vector))),
        "ELU": lambda: (vector, layers.Activation("elu")(layers.Dense(6)(vector))),
        "SUM": lambda: dense_then(lambda t: tf.reduce_sum(t, -1, keepdims=True)),
        "SQRT": lambda: dense_then(lambda t: tf.sqrt(tf.abs(t) + 1.0)),
        "DIV": lambda: dense_then(lambda t: t / (tf.abs(t) + 1.0)),
        "EXP": lambda: dense_then(tf.exp),
        "GATHER": lambda: dense_then(lambda t: tf.gather(t, [0, 2, 4], axis=1)),
        "STRIDED_SLICE": lambda: dense_then(lambda t: t[:, 1:5]),
    }
    if op not in builders:
        return None
    inp, out = builders[op]()
    return keras.Model(inp, out, name=f"probe_{op.lower()}")


def supported_ops(runtime: str, precision: str, ops) -> dict[str, bool | None]:
    """{op type: True (runs at `precision` on `runtime`) | False | None (no probe model for it)}."""
    return {op: probe(runtime, precision, op) for op in dict.fromkeys(ops)}


@cache
def probe(runtime: str, precision: str, op: str) -> bool | None:
    """Whether `runtime` (litert | tflm) loads and invokes a model whose `op` is at `precision`."""
    from edgekit.export.aeq_recipes import LAYER_PRECISIONS, quantize_per_layer
    from edgekit.export.layer_outputs import RUNTIMES
    from edgekit.export.tflite import convert
    from edgekit.runners.isolated import call_isolated

    if runtime not in RUNTIMES or precision not in LAYER_PRECISIONS:
        raise BadInputError(f"kernel probe: unknown runtime {runtime!r} or precision {precision!r}")
    if op in ("QUANTIZE", "DEQUANTIZE"):
        return None  # the bridges between precisions: the candidate model's own run checks them
    model = _probe_model(op)
    if model is None:
        return None
    x = np.random.default_rng(0).standard_normal((16, *model.input_shape[1:])).astype(np.float32)
    try:
        blob = quantize_per_layer(convert(model, "float32").tflite_bytes, {}, x, default=precision)
        kinds = call_isolated(_run_and_list, blob, x[:2], runtime, what=f"the {op} {precision} probe",
                              stage=f"{runtime} kernel probe", timeout_s=120.0)
    except (UnsupportedModelError, BadInputError):
        return False
    return any(name == op and dtype == _OUTPUT_DTYPE[precision] for name, dtype in kinds)


def _run_and_list(tflite_bytes: bytes, x: np.ndarray, runtime: str) -> list[tuple[str, str]]:
    """Run the model on `runtime` (raises when it cannot) and list (op type, output dtype) of its ops."""
    from edgekit.export.layer_outputs import _litert, tflite_intermediates

    tflite_intermediates(tflite_bytes, x, [], runtime)
    interpreter = _litert(tflite_bytes)
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    return [(op["op_name"], np.dtype(details[int(op["outputs"][0])]["dtype"]).name)
            for op in interpreter._get_ops_details() if len(op["outputs"])]
