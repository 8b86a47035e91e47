"""The output heads of a tf_keras model (name, shape, final activation), read without importing TensorFlow."""

from __future__ import annotations

from edgekit.tasks.task import Head


def heads_of(model, outputs=None) -> tuple[Head, ...]:
    """One Head per model output; the activation is None when the producing layer cannot be read.

    outputs: the model's outputs on a few samples, whose shapes are used when the model does not declare
    its own (a subclassed model).
    """
    try:
        declared = model.output_shape
    except (AttributeError, RuntimeError, ValueError):
        declared = None
    if declared is None:
        outs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return tuple(Head(f"output_{i}", tuple(getattr(o, "shape", (0, 1))[1:])) for i, o in enumerate(outs))
    shapes = declared if isinstance(declared, list) else [declared]
    names = list(getattr(model, "output_names", None) or [f"output_{i}" for i in range(len(shapes))])
    heads = []
    for i, shape in enumerate(shapes):
        name = names[i] if i < len(names) else f"output_{i}"
        heads.append(Head(name, tuple(shape[1:]), _activation(model, name)))
    return tuple(heads)


def _activation(model, layer_name: str) -> str | None:
    try:
        layer = model.get_layer(layer_name)
    except (ValueError, AttributeError):
        return None
    if type(layer).__name__ == "Softmax":
        return "softmax"
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", None)
    if name in ("softmax", "sigmoid", "linear"):
        return name
    if type(layer).__name__ == "Activation" or name is not None:
        return name
    return None
