"""Quantization-aware training (tfmot) for when post-training int8 loses too much; sparsity-preserving for
sparse models.

    >>> qat = quantize_aware(model, x_train, y_train, epochs=2)          # doctest: +SKIP
    >>> convert(qat.model, "int8").calibrated_on                         # doctest: +SKIP
    'qat'

tfmot's default 8-bit scheme knows Conv2D, DepthwiseConv2D, Dense, pooling 2D and a few more, and folds
BatchNormalization into a Conv2D before it. It does not know Conv1D (nor MaxPooling1D, nor a BatchNorm
after a Conv1D), which the MNIST-1D models use, so before annotating edgekit:
- folds each BatchNormalization that is the only consumer of a Conv1D into that Conv1D's kernel and bias,
  and fuses a plain ReLU that follows into the Conv1D's activation (what the TFLite converter does too);
- quantizes Conv1D like tfmot quantizes Conv2D (symmetric int8 weights, the output after the
  activation) but with one scale per kernel instead of per output channel: a per-channel fake-quant
  on the rank-3 kernel makes the converter fail ("mismatched quantized axes" at the transpose it adds),
  and passes MaxPooling1D through unquantized (it keeps its input's scale).
With sparse weights (`preserve_sparsity`), tfmot's prune-preserving scheme is used and, for layers it
does not cover, a callback re-applies the zero masks after every training step.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from edgekit.errors import BadInputError, UnsupportedModelError

QAT_LEARNING_RATE = 1e-4  # a fine-tune from trained weights, not training from scratch


@dataclass(frozen=True)
class QatResult:
    model: object                  # tfmot quantize-wrapped tf_keras model; convert it with precision "int8"
    epochs: int
    preserved_sparsity: bool
    notes: tuple[str, ...]


def quantize_aware(model, x: np.ndarray, y: np.ndarray | None = None, *, epochs: int = 2, batch_size: int = 64,
                   learning_rate: float = QAT_LEARNING_RATE, preserve_sparsity: bool | None = None,
                   seed: int = 0, strategy=None) -> QatResult:
    """Wrap `model` for quantization-aware training and fine-tune it for `epochs` on (x, y).

    y None fine-tunes towards the original model's outputs. preserve_sparsity None: on when the model
    has kernels that are at least 30 % zeros. `model` is not modified. strategy: a tf.distribute strategy or
    its name (None: the process's active one, edgekit.distill.strategy); the wrapped model is built under it.
    """
    from edgekit._tf import tf_keras
    from edgekit.distill.strategy import resolve, scope
    from edgekit.export.sparse import is_sparse
    from edgekit.prune.training import fine_tune

    keras = tf_keras()
    import tensorflow_model_optimization as tfmot

    if x is None or len(x) == 0:
        raise BadInputError("quantization-aware training needs training samples: pass --data")
    if preserve_sparsity is None:
        preserve_sparsity = is_sparse(model)
    notes: list[str] = []
    folded, fold_notes = fold_conv1d_batchnorm(model)
    notes += fold_notes
    masks = _zero_masks(folded) if preserve_sparsity else {}
    configs = _custom_configs()
    strategy = resolve(strategy)
    with scope(strategy):  # variables created here are mirrored: fine_tune then trains across the replicas
        annotated = keras.models.clone_model(folded, clone_function=lambda layer: _annotate(layer, configs))
    annotated.set_weights(folded.get_weights())
    scheme = None
    if preserve_sparsity:
        scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
        notes.append("sparsity preserved: tfmot prune-preserving QAT scheme, zero masks re-applied every step")
    try:
        with scope(strategy), tfmot.quantization.keras.quantize_scope(
                {type(c).__name__: type(c) for c in configs.values()}):
            wrapped = (tfmot.quantization.keras.quantize_apply(annotated, scheme) if scheme is not None
                       else tfmot.quantization.keras.quantize_apply(annotated))
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise UnsupportedModelError(f"quantization-aware training cannot wrap {model.name!r}: {first}") from exc
    # the wrappers are named quant_<layer>: keep the model's output names, which name the .tflite's outputs
    wrapped.output_names = list(model.output_names)
    callbacks = [_MaskKeeper(wrapped, masks)] if masks else []
    fine_tune(wrapped, np.asarray(x, np.float32), y, epochs=epochs, batch_size=batch_size,
              learning_rate=learning_rate, teacher=model, callbacks=callbacks, seed=seed, strategy=strategy)
    return QatResult(wrapped, epochs, bool(preserve_sparsity), tuple(notes))


# ----------------------------------------------------------------------------- Conv1D support


_CONV1D_CONFIG_CLASS = None


def _custom_configs() -> dict:
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_configs as configs,
    )

    return {"Conv1D": _conv1d_config_class()(), "MaxPooling1D": configs.NoOpQuantizeConfig()}


def _conv1d_config_class():
    """Conv2D's QAT config for Conv1D, with a per-tensor kernel quantizer (see Conv1DWeightsQuantizer)."""
    global _CONV1D_CONFIG_CLASS
    if _CONV1D_CONFIG_CLASS is not None:
        return _CONV1D_CONFIG_CLASS
    from edgekit._tf import tensorflow

    tensorflow()
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry as registry,
    )
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantizers as quantizers,
    )

    class Conv1DWeightsQuantizer(quantizers.quantizers.LastValueQuantizer):
        """Per-tensor symmetric int8 kernel: a per-axis fake-quant on Conv1D's rank-3 kernel reaches the
        converter through Conv1D's expand_dims and transpose, which it rejects ("mismatched quantized axes")."""

        def __init__(self):
            super().__init__(num_bits=8, per_axis=False, symmetric=True, narrow_range=True)

    class Conv1DQuantizeConfig(registry.Default8BitQuantizeConfig):
        def __init__(self, weight_attrs=("kernel",), activation_attrs=("activation",), quantize_output=False):
            super().__init__(list(weight_attrs), list(activation_attrs), quantize_output)
            self.weight_quantizer = Conv1DWeightsQuantizer()

    _CONV1D_CONFIG_CLASS = Conv1DQuantizeConfig
    return Conv1DQuantizeConfig


def _annotate(layer, configs: dict):
    import tensorflow_model_optimization as tfmot

    if type(layer).__name__ == "InputLayer":
        return layer.__class__.from_config(layer.get_config())
    config = configs.get(type(layer).__name__)
    clone = layer.__class__.from_config(layer.get_config())
    return tfmot.quantization.keras.quantize_annotate_layer(clone, quantize_config=config)


def fold_conv1d_batchnorm(model):
    """A copy of a functional tf_keras model with Conv1D -> BatchNormalization [-> ReLU] folded into the Conv1D.

    Returns (model, notes). The copy computes the same function (inference mode); `model` is untouched.
    """
    from edgekit._tf import tf_keras

    keras = tf_keras()
    config = copy.deepcopy(model.get_config())
    if "layers" not in config or "output_layers" not in config:
        return model, ()
    layers = {entry["name"]: entry for entry in config["layers"]}
    consumers: dict[str, list[str]] = {name: [] for name in layers}
    for entry in config["layers"]:
        for source in _inbound_names(entry):
            consumers.setdefault(source, []).append(entry["name"])
    outputs = {ref[0] for ref in config["output_layers"]}
    replaced: dict[str, str] = {}
    folds: dict[str, tuple[str, str | None]] = {}  # conv -> (bn, relu or None)
    for name, entry in layers.items():
        if entry["class_name"] != "Conv1D" or name in outputs or len(consumers[name]) != 1:
            continue
        bn = consumers[name][0]
        if layers[bn]["class_name"] != "BatchNormalization" or entry["config"].get("activation") != "linear":
            continue
        relu = consumers[bn][0] if len(consumers[bn]) == 1 and bn not in outputs else None
        if relu is not None and not _plain_relu(layers[relu]):
            relu = None
        folds[name] = (bn, relu)
        replaced[bn] = name
        if relu is not None:
            replaced[relu] = name
            entry["config"]["activation"] = "relu"
        entry["config"]["use_bias"] = True
    if not folds:
        return model, ()
    config["layers"] = [e for e in config["layers"] if e["name"] not in replaced]
    for entry in config["layers"]:
        _rename_inbound(entry, replaced)
    config["output_layers"] = [[replaced.get(ref[0], ref[0]), *ref[1:]] for ref in config["output_layers"]]
    folded = keras.Model.from_config(config)
    for layer in folded.layers:
        source = model.get_layer(layer.name)
        if layer.name in folds:
            layer.set_weights(_folded_weights(source, model.get_layer(folds[layer.name][0])))
        elif source.weights:
            layer.set_weights(source.get_weights())
    notes = [f"folded {bn}{' and ' + relu if relu else ''} into {conv} for QAT" for conv, (bn, relu) in folds.items()]
    return folded, tuple(notes)


def _plain_relu(entry: dict) -> bool:
    cfg = entry["config"]
    if entry["class_name"] == "ReLU":
        return cfg.get("max_value") is None and not cfg.get("negative_slope") and not cfg.get("threshold")
    return entry["class_name"] == "Activation" and cfg.get("activation") == "relu"


def _inbound_names(entry: dict) -> list[str]:
    names = []
    for node in entry.get("inbound_nodes", []):
        for ref in node:
            names.append(ref[0])
    return names


def _rename_inbound(entry: dict, replaced: dict[str, str]) -> None:
    for node in entry.get("inbound_nodes", []):
        for ref in node:
            ref[0] = replaced.get(ref[0], ref[0])


def _folded_weights(conv, bn) -> list[np.ndarray]:
    weights = conv.get_weights()
    kernel = weights[0]
    bias = weights[1] if conv.use_bias else np.zeros(kernel.shape[-1], np.float32)
    params = dict(zip([w.name.split("/")[-1].split(":")[0] for w in bn.weights], bn.get_weights()))
    gamma = params.get("gamma", np.ones_like(params["moving_mean"]))
    beta = params.get("beta", np.zeros_like(params["moving_mean"]))
    scale = gamma / np.sqrt(params["moving_variance"] + bn.epsilon)
    return [(kernel * scale).astype(np.float32), ((bias - params["moving_mean"]) * scale + beta).astype(np.float32)]


# ----------------------------------------------------------------------------- sparsity masks


def _zero_masks(model) -> dict[str, np.ndarray]:
    masks = {}
    for layer in model.layers:
        for weight in layer.weights:
            short = weight.name.split("/")[-1].split(":")[0]
            if short in ("kernel", "depthwise_kernel") and len(weight.shape) >= 2:
                array = weight.numpy()
                if np.mean(array == 0) > 0:
                    masks[layer.name] = (array != 0).astype(np.float32)
    return masks


def _kernel_of(wrapped_layer, shape: tuple[int, ...]):
    """The kernel variable inside a tfmot wrapper (its `kernel` attribute holds the fake-quantised tensor)."""
    for weight in wrapped_layer.weights:
        short = weight.name.split("/")[-1].split(":")[0]
        if short in ("kernel", "depthwise_kernel") and tuple(weight.shape) == shape and hasattr(weight, "assign"):
            return weight
    return None


def _mask_keeper_class():
    from edgekit._tf import tf_keras

    class MaskKeeper(tf_keras().callbacks.Callback):
        """Multiply each kernel by its zero mask after every training step."""

        def __init__(self, wrapped, masks: dict[str, np.ndarray]) -> None:
            super().__init__()
            self._pairs = []
            for layer in wrapped.layers:
                base = getattr(getattr(layer, "layer", None), "name", layer.name)
                kernel = _kernel_of(layer, masks[base].shape) if base in masks else None
                if kernel is not None:
                    self._pairs.append((kernel, masks[base]))

        def on_train_batch_end(self, batch, logs=None):
            for kernel, mask in self._pairs:
                kernel.assign(kernel * mask)

    return MaskKeeper


def _MaskKeeper(wrapped, masks):  # reads as the class it builds
    return _mask_keeper_class()(wrapped, masks)
