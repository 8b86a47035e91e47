"""Student builders: reference families sized to a MAC target, and students derived from the teacher.

Families (all end in Dense(n_classes), with the teacher's output activation when built by `student_for`):
    mlp             vectors: [Dense(width, relu)] * depth
    dscnn           1D signals (T, C) / audio features (H, W, C): conv stem, then depth depthwise-separable
                    blocks of constant width (Zhang et al., "Hello Edge", 2017)
    mobilenet_like  images: conv stem (stride 2), depth depthwise-separable blocks; every second block
                    halves the resolution and doubles the channels (up to 8x width), MobileNet-v1 style
Derived from the teacher (edgekit.distill.derive): `shrink_teacher`, `drop_residual_blocks`.

MACs are counted by the cost model (`model_macs`: conv, depthwise, separable, transposed conv and dense
layers, one multiply-accumulate per weight use, biases excluded), or by the `macs_fn` you pass.

    >>> m = mlp((16,), n_classes=4, width=8, depth=2)   # doctest: +SKIP
    >>> model_macs(m)                                   # 16*8 + 8*8 + 8*4   # doctest: +SKIP
    224
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from edgekit._tf import tf_keras
from edgekit.distill.derive import drop_residual_blocks, find_residual_blocks, shrink_teacher
from edgekit.distill.families import FAMILIES as FAMILY_TABLE
from edgekit.errors import BadInputError, UnsupportedModelError

FAMILIES = tuple(FAMILY_TABLE)
DEFAULT_MAC_FRACTION = 0.25
# Keras' default 0.99 leaves BatchNorm's moving statistics near their initial values for the first few
# hundred steps: on small data sets validation (and early stopping) would then see a broken model.
BN_MOMENTUM = 0.9  # student_for without a target aims at a quarter of the teacher's MACs

__all__ = ["FAMILIES", "drop_residual_blocks", "dscnn", "find_residual_blocks", "load_student", "mlp",
           "mobilenet_like", "shrink_teacher", "student_for"]


def mlp(input_shape: Sequence[int], n_classes: int, width: int, depth: int, *,
        output_activation: str | None = "softmax", name: str = "mlp_student"):
    """Multi-layer perceptron: Flatten (rank > 1), depth x Dense(width, relu), Dense(n_classes)."""
    keras = tf_keras()
    _check_size(width, depth, n_classes, min_depth=0)
    inputs = keras.Input(tuple(input_shape))
    x = keras.layers.Flatten()(inputs) if len(input_shape) > 1 else inputs
    for i in range(depth):
        x = keras.layers.Dense(width, activation="relu", name=f"dense_{i}")(x)
    outputs = keras.layers.Dense(n_classes, activation=output_activation, name="head")(x)
    return keras.Model(inputs, outputs, name=name)


def dscnn(input_shape: Sequence[int], n_classes: int, width: int, depth: int, *,
          output_activation: str | None = "softmax", name: str = "dscnn_student"):
    """Depthwise-separable CNN for (T,), (T, C) signals (Conv1D) or (H, W, C) features (Conv2D)."""
    keras = tf_keras()
    layers = keras.layers
    _check_size(width, depth, n_classes, min_depth=1)
    shape = tuple(input_shape)
    inputs = keras.Input(shape)
    x = layers.Reshape(shape + (1,))(inputs) if len(shape) == 1 else inputs
    if len(x.shape) == 3:
        conv, depthwise, pool = layers.Conv1D, layers.DepthwiseConv1D, layers.GlobalAveragePooling1D
    elif len(x.shape) == 4:
        conv, depthwise, pool = layers.Conv2D, layers.DepthwiseConv2D, layers.GlobalAveragePooling2D
    else:
        raise BadInputError(f"dscnn: input shape {shape} is not a 1D signal (T, C) or 2D features (H, W, C)")
    stride = 2 if min(x.shape[1:-1]) >= 16 else 1
    x = conv(width, 3, strides=stride, padding="same", use_bias=False, name="stem")(x)
    x = layers.ReLU(name="stem_relu")(layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(x))
    for i in range(depth):
        x = depthwise(3, padding="same", use_bias=False, name=f"block{i}_dw")(x)
        x = layers.ReLU(name=f"block{i}_dw_relu")(layers.BatchNormalization(momentum=BN_MOMENTUM,
                                                                            name=f"block{i}_dw_bn")(x))
        x = conv(width, 1, use_bias=False, name=f"block{i}_pw")(x)
        x = layers.ReLU(name=f"block{i}_pw_relu")(layers.BatchNormalization(momentum=BN_MOMENTUM,
                                                                            name=f"block{i}_pw_bn")(x))
    x = pool(name="pool")(x)
    outputs = layers.Dense(n_classes, activation=output_activation, name="head")(x)
    return keras.Model(inputs, outputs, name=name)


def mobilenet_like(input_shape: Sequence[int], n_classes: int, width: int, depth: int,
                   resolution: int | Sequence[int] | None = None, *, output_activation: str | None = "softmax",
                   name: str = "mobilenet_student"):
    """MobileNet-v1-style image student; `resolution` below the input size adds a pooling/resizing front."""
    keras = tf_keras()
    layers = keras.layers
    _check_size(width, depth, n_classes, min_depth=1)
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise BadInputError(f"mobilenet_like: input shape {shape} is not an image (H, W, C)")
    inputs = keras.Input(shape)
    x = _resolution_front(inputs, shape, resolution)
    x = layers.Conv2D(width, 3, strides=2 if min(x.shape[1:3]) >= 8 else 1, padding="same", use_bias=False,
                      name="stem")(x)
    x = layers.ReLU(6.0, name="stem_relu")(layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(x))
    for i in range(depth):
        downsample = i % 2 == 1 and min(x.shape[1:3]) >= 4
        channels = width * 2 ** min((i + 1) // 2, 3)
        x = layers.DepthwiseConv2D(3, strides=2 if downsample else 1, padding="same", use_bias=False,
                                   name=f"block{i}_dw")(x)
        x = layers.ReLU(6.0, name=f"block{i}_dw_relu")(layers.BatchNormalization(momentum=BN_MOMENTUM,
                                                                                 name=f"block{i}_dw_bn")(x))
        x = layers.Conv2D(channels, 1, use_bias=False, name=f"block{i}_pw")(x)
        x = layers.ReLU(6.0, name=f"block{i}_pw_relu")(layers.BatchNormalization(momentum=BN_MOMENTUM,
                                                                                 name=f"block{i}_pw_bn")(x))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(n_classes, activation=output_activation, name="head")(x)
    return keras.Model(inputs, outputs, name=name)


def student_for(teacher, family: str | None = None, target_macs: int | None = None, *, depth: int | None = None,
                resolution: int | Sequence[int] | None = None, macs_fn: Callable | None = None,
                max_width: int = 512):
    """A reference-family student for `teacher`, its width (then depth) searched to land at `target_macs`.

    Args:
        family: 'mlp', 'dscnn' or 'mobilenet_like'; by default chosen by the input rank (vector, signal,
            image). target_macs: defaults to a quarter of the teacher's MACs.
        depth: fix the depth; otherwise the family default, moved only when no width reaches the target.
        macs_fn: model -> MACs (e.g. from edgekit.costmodel.layer_costs); defaults to `model_macs`.
    Returns:
        the largest student whose MACs are <= target_macs (fresh weights, the teacher's output activation).
    Raises:
        BadInputError when even the smallest student exceeds the target.
    """
    macs_fn = macs_fn or model_macs
    input_shape, output_shape = tuple(teacher.input_shape[1:]), tuple(teacher.output_shape[1:])
    if len(output_shape) != 1:
        raise UnsupportedModelError(f"teacher {teacher.name} outputs {(None,) + output_shape}: reference students "
                                    "are classifiers/regressors with a vector output; use shrink_teacher")
    family = family or {1: "mlp", 2: "dscnn", 3: "mobilenet_like"}.get(len(input_shape))
    if family not in FAMILIES:
        raise BadInputError(f"no reference student family for input shape {input_shape}; "
                            f"choose one of {', '.join(FAMILIES)}")
    target = int(target_macs) if target_macs is not None else int(macs_fn(teacher) * DEFAULT_MAC_FRACTION)

    def build(width: int, d: int):
        return _build_family(family, input_shape, int(output_shape[0]), width, d, resolution,
                             _output_activation(teacher))

    def macs(width: int, d: int) -> int:
        if macs_fn is model_macs:  # same count without building a model: ~1000x faster
            return _family_macs(family, input_shape, int(output_shape[0]), width, d, resolution)
        return macs_fn(build(width, d))

    def widest(d: int) -> int | None:
        return _largest_width_within(lambda w: macs(w, d), target, max_width)

    d = depth if depth is not None else FAMILY_TABLE[family].default_depth
    width = widest(d)
    if depth is None and width is None:  # too small a target: go shallower
        while width is None and d > FAMILY_TABLE[family].min_depth:
            d -= 1
            width = widest(d)
    elif depth is None and width == max_width:  # too large a target for max_width: go deeper
        while width == max_width and d < FAMILY_TABLE[family].max_depth:
            deeper = widest(d + 1)
            if deeper is None:
                break
            d, width = d + 1, deeper
    if width is None:
        smallest = macs(1, d)
        raise BadInputError(f"target_macs={target} is below the smallest {family} student ({smallest} MACs); "
                            "raise the target or try another family")
    best = (width, d)
    return build(*best)


def load_student(path, trust: bool = False):
    """Load a user's own student model file via edgekit.model_io (Keras 3 files are bridged to tf_keras).

    Code stored in the file (Lambda layers, custom objects) is refused unless trust=True.
    """
    from edgekit.model_io import load_model, require_keras

    return require_keras(load_model(path, trust=trust), "distillation")


def model_macs(model) -> int:
    """Multiply-accumulates per sample, counted by the cost model (edgekit.costmodel.layer_costs)."""
    from edgekit.costmodel.layer_costs import analyze
    from edgekit.ir.from_keras import from_keras

    return analyze(from_keras(model)).macs


def _build_family(family, input_shape, n_classes, width, depth, resolution, output_activation):
    if family == "mlp":
        return mlp(input_shape, n_classes, width, depth, output_activation=output_activation)
    if family == "dscnn":
        return dscnn(input_shape, n_classes, width, depth, output_activation=output_activation)
    return mobilenet_like(input_shape, n_classes, width, depth, resolution, output_activation=output_activation)


def _family_macs(family: str, input_shape: tuple, n_classes: int, width: int, depth: int, resolution) -> int:
    """What `model_macs` gives for the family's model, from the shapes alone (kept equal by a test)."""
    if family == "mlp":
        features = math.prod(input_shape)
        return features * n_classes if depth == 0 else (
            features * width + (depth - 1) * width * width + width * n_classes)
    if family == "dscnn":
        spatial, channels = (input_shape, 1) if len(input_shape) == 1 else (input_shape[:-1], input_shape[-1])
        kernel = 3 ** len(spatial)
        stride = 2 if min(spatial) >= 16 else 1
        positions = math.prod(-(-s // stride) for s in spatial)
        return positions * (kernel * channels * width + depth * (width * kernel + width * width)) + width * n_classes
    spatial = _front_size(input_shape, resolution)
    if min(spatial) >= 8:
        spatial = tuple(-(-s // 2) for s in spatial)
    total, channels = math.prod(spatial) * 9 * input_shape[-1] * width, width
    for i in range(depth):
        if i % 2 == 1 and min(spatial) >= 4:
            spatial = tuple(-(-s // 2) for s in spatial)
        out_channels = width * 2 ** min((i + 1) // 2, 3)
        total += math.prod(spatial) * channels * (9 + out_channels)
        channels = out_channels
    return total + channels * n_classes


def _front_size(input_shape: tuple, resolution) -> tuple:
    if resolution is None:
        return tuple(input_shape[:2])
    return (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)


def _largest_width_within(macs_of_width: Callable[[int], int], target: int, max_width: int) -> int | None:
    """Binary search: the largest width in [1, max_width] with MACs <= target (MACs grow with width)."""
    if macs_of_width(1) > target:
        return None
    lo, hi = 1, max_width
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if macs_of_width(mid) <= target:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _output_activation(teacher) -> str | None:
    from edgekit.distill.features import head_kind

    kind = head_kind(teacher)
    return None if kind == "linear" else kind


def _resolution_front(inputs, shape: tuple, resolution):
    keras = tf_keras()
    if resolution is None:
        return inputs
    height, width = _front_size(shape, resolution)
    if (height, width) == shape[:2]:
        return inputs
    if height > shape[0] or width > shape[1]:
        raise BadInputError(f"mobilenet_like: resolution {(height, width)} exceeds the input {shape[:2]}")
    if shape[0] % height == 0 and shape[1] % width == 0:
        return keras.layers.AveragePooling2D((shape[0] // height, shape[1] // width), name="downscale")(inputs)
    return keras.layers.Resizing(height, width, name="downscale")(inputs)


def _check_size(width: int, depth: int, n_classes: int, min_depth: int) -> None:
    if width < 1 or depth < min_depth or n_classes < 1:
        raise BadInputError(f"student size: width must be >= 1, depth >= {min_depth}, n_classes >= 1; got "
                            f"width={width}, depth={depth}, n_classes={n_classes}")
