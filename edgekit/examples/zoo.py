"""Reference architectures built in code (random weights, nothing downloaded).

Used by tests, benchmarks and the latency-model calibration zoo. Each builder returns an uncompiled
tf_keras functional model with a fixed input shape.

    >>> from edgekit.examples.zoo import build
    >>> model = build("resnet8")                         # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable

from edgekit._tf import tf_keras


def conv1d_net(width: int = 64, depth: int = 3, length: int = 40, classes: int = 10, batchnorm: bool = False):
    """MNIST-1D style Conv1D classifier: depth x (Conv1D -> [BN] -> ReLU -> MaxPool), Flatten, Dense logits."""
    keras = tf_keras()
    L = keras.layers
    x = inputs = keras.Input((length, 1))
    for i in range(depth):
        x = L.Conv1D(width, 5, padding="same", use_bias=not batchnorm, name=f"conv{i}")(x)
        if batchnorm:
            x = L.BatchNormalization(name=f"bn{i}")(x)
        x = L.ReLU(name=f"relu{i}")(x)
        x = L.MaxPooling1D(2, name=f"pool{i}")(x)
    x = L.Flatten(name="flatten")(x)
    outputs = L.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="conv1d_net")


def dscnn(width: int = 64, blocks: int = 4, input_shape=(49, 10, 1), classes: int = 12):
    """DS-CNN keyword spotting net (Zhang et al., 'Hello Edge'; the MLPerf Tiny KWS model)."""
    keras = tf_keras()
    L = keras.layers
    x = inputs = keras.Input(input_shape)
    x = L.Conv2D(width, (10, 4), strides=2, padding="same", use_bias=False, name="stem")(x)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(name="stem_relu")(x)
    for i in range(blocks):
        x = L.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"dw{i}")(x)
        x = L.BatchNormalization(name=f"dw{i}_bn")(x)
        x = L.ReLU(name=f"dw{i}_relu")(x)
        x = L.Conv2D(width, 1, use_bias=False, name=f"pw{i}")(x)
        x = L.BatchNormalization(name=f"pw{i}_bn")(x)
        x = L.ReLU(name=f"pw{i}_relu")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    outputs = L.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="dscnn")


def resnet8(input_shape=(32, 32, 3), classes: int = 10, widths=(16, 32, 64)):
    """ResNet-8 (MLPerf Tiny image classification) with identity and projection shortcuts."""
    keras = tf_keras()
    L = keras.layers
    x = inputs = keras.Input(input_shape)
    x = L.Conv2D(widths[0], 3, padding="same", name="stem")(x)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(name="stem_relu")(x)
    for b, (filters, stride) in enumerate(zip(widths, (1, 2, 2))):
        y = L.Conv2D(filters, 3, strides=stride, padding="same", name=f"b{b}_conv1")(x)
        y = L.BatchNormalization(name=f"b{b}_bn1")(y)
        y = L.ReLU(name=f"b{b}_relu1")(y)
        y = L.Conv2D(filters, 3, padding="same", name=f"b{b}_conv2")(y)
        y = L.BatchNormalization(name=f"b{b}_bn2")(y)
        if stride != 1 or x.shape[-1] != filters:
            x = L.Conv2D(filters, 1, strides=stride, name=f"b{b}_proj")(x)
        x = L.Add(name=f"b{b}_add")([x, y])
        x = L.ReLU(name=f"b{b}_relu2")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    outputs = L.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="resnet8")


def _static_head(base, classes: int, name: str):
    """keras.applications top built from static layers (their own top reshapes dynamically, which TFLM rejects)."""
    keras = tf_keras()
    x = keras.layers.GlobalAveragePooling2D(name="gap")(base.output)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(base.input, outputs, name=name)


def mobilenet_v1(alpha: float = 0.25, resolution: int = 96, classes: int = 2):
    keras = tf_keras()
    base = keras.applications.MobileNet(input_shape=(resolution, resolution, 3), alpha=alpha, weights=None,
                                        include_top=False)
    return _static_head(base, classes, f"mobilenet_v1_{alpha}_{resolution}")


def mobilenet_v2(alpha: float = 0.35, resolution: int = 96, classes: int = 2):
    keras = tf_keras()
    base = keras.applications.MobileNetV2(input_shape=(resolution, resolution, 3), alpha=alpha, weights=None,
                                          include_top=False)
    return _static_head(base, classes, f"mobilenet_v2_{alpha}_{resolution}")


def dense_autoencoder(inputs: int = 128, hidden=(64, 16, 64)):
    """MLPerf Tiny anomaly-detection style fully connected autoencoder."""
    keras = tf_keras()
    L = keras.layers
    x = inp = keras.Input((inputs,))
    for i, units in enumerate(hidden):
        x = L.Dense(units, activation="relu", name=f"fc{i}")(x)
    outputs = L.Dense(inputs, name="reconstruction")(x)
    return keras.Model(inp, outputs, name="dense_autoencoder")


def concat_se_net(input_shape=(32, 32, 3), classes: int = 10):
    """Two conv branches concatenated, then a squeeze-excite block (broadcast Multiply)."""
    keras = tf_keras()
    L = keras.layers
    x = inputs = keras.Input(input_shape)
    a = L.Conv2D(8, 3, padding="same", activation="relu", name="branch_a")(x)
    b = L.Conv2D(16, 1, padding="same", activation="relu", name="branch_b")(x)
    x = L.Concatenate(name="concat")([a, b])
    x = L.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="conv")(x)
    s = L.GlobalAveragePooling2D(keepdims=True, name="se_pool")(x)
    s = L.Conv2D(8, 1, activation="relu", name="se_reduce")(s)
    s = L.Conv2D(32, 1, activation="sigmoid", name="se_expand")(s)
    x = L.Multiply(name="se_scale")([x, s])
    x = L.GlobalAveragePooling2D(name="gap")(x)
    outputs = L.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="concat_se_net")


def xception_like(input_shape=(32, 32, 3), classes: int = 10, width: int = 32):
    """SeparableConv2D blocks with residual Adds (Xception middle-flow style)."""
    keras = tf_keras()
    L = keras.layers
    x = inputs = keras.Input(input_shape)
    x = L.Conv2D(width, 3, strides=2, padding="same", name="stem")(x)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(name="stem_relu")(x)
    for i in range(2):
        y = L.SeparableConv2D(width, 3, padding="same", name=f"sep{i}_a")(x)
        y = L.BatchNormalization(name=f"sep{i}_bn_a")(y)
        y = L.ReLU(name=f"sep{i}_relu")(y)
        y = L.SeparableConv2D(width, 3, padding="same", name=f"sep{i}_b")(y)
        y = L.BatchNormalization(name=f"sep{i}_bn_b")(y)
        x = L.Add(name=f"sep{i}_add")([x, y])
    x = L.GlobalAveragePooling2D(name="gap")(x)
    outputs = L.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="xception_like")


def mlp(inputs: int = 64, hidden=(128, 64), classes: int = 10):
    keras = tf_keras()
    L = keras.layers
    x = inp = keras.Input((inputs,))
    for i, units in enumerate(hidden):
        x = L.Dense(units, activation="relu", name=f"fc{i}")(x)
    outputs = L.Dense(classes, name="logits")(x)
    return keras.Model(inp, outputs, name="mlp")


BUILDERS: dict[str, Callable] = {
    "conv1d": conv1d_net, "dscnn": dscnn, "resnet8": resnet8, "mobilenet_v1": mobilenet_v1,
    "mobilenet_v2": mobilenet_v2, "dense_autoencoder": dense_autoencoder, "concat_se": concat_se_net,
    "xception_like": xception_like, "mlp": mlp,
}


def build(name: str, **kwargs):
    """Build a reference model by name (see BUILDERS)."""
    return BUILDERS[name](**kwargs)
