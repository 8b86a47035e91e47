"""`prune`: structured pruning (whole channels) or tfmot weight sparsity of a model file, written to `out`.

    >>> outcome = prune_file("teacher.h5", "pruned.h5", ratio=0.5)         # doctest: +SKIP
    >>> outcome.report.macs_ratio                                          # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from edgekit.errors import BadInputError
from edgekit.model_io import load_keras
from edgekit.units import parse_bytes, parse_rate

METHODS = ("structured", "magnitude", "2:4")


@dataclass(frozen=True)
class PruneOutcome:
    """What `prune_file` wrote: the pruned model's path and the structured report or the sparsity result."""

    out: str
    report: object | None = None      # edgekit.prune.PruneReport (structured)
    sparsity: object | None = None    # edgekit.prune.sparsity.SparsityResult (magnitude, 2:4)

    def to_dict(self) -> dict:
        """The `edgekit prune --json` object."""
        if self.report is not None:
            return {"out": self.out, **self.report.as_dict()}
        s = self.sparsity
        return {"out": self.out, "pattern": s.pattern, "sparsity": s.sparsity,
                "layers": [{"name": x.name, "op": x.op, "weights": x.weights, "zeros": x.zeros} for x in s.layers],
                "notices": list(s.notices)}


def prune(model_or_path, ratio: float | None = None, *, trust: bool = False, **kwargs):
    """Structured pruning of a model or model file -> edgekit.prune.PruneResult (nothing written)."""
    from edgekit.prune import prune as prune_model

    model, _ = load_keras(model_or_path, trust=trust, purpose="pruning")
    return prune_model(model, ratio, **kwargs)


def prune_file(model_path: str | os.PathLike, out: str | os.PathLike, *, method: str = "structured",
               ratio: float | None = None, target_macs: str | None = None, target_params: str | None = None,
               target_size: str | None = None, size_precision: str = "int8", data=None, val_data=None,
               round_to: int | None = None, device: str | None = None, epochs: int | None = None,
               batch_size: int = 64, learning_rate: float = 1e-3, trust: bool = False,
               progress: Callable | None = None, **options) -> PruneOutcome:
    """Prune the model at `model_path` and save it to `out` (.h5 / .keras); the input is never written.

    Targets are strings as the CLI takes them: counts ('250000', '1.5M', '25%' of the model's) and sizes
    ('64KB', '25%' of the predicted TFLite size). options: importance, per_group (-> global_ranking=False),
    min_channels, iterative, steps, final_epochs, l1_regularization (see edgekit.prune.prune).
    """
    from edgekit.costmodel.layer_costs import analyze
    from edgekit.data import load_data
    from edgekit.ir.from_keras import from_keras
    from edgekit.model_io import save_model

    if method not in METHODS:
        raise BadInputError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    model, _ = load_keras(model_path, trust=trust, purpose="pruning")
    dataset = load_data(data, model.input_shape) if data else None
    if method != "structured":
        result = _sparsify(model, method, ratio, dataset, epochs, batch_size, learning_rate)
        save_model(result.model, out)
        return PruneOutcome(os.fspath(out), sparsity=result)
    from edgekit.prune import prune as prune_model

    val = load_data(val_data, model.input_shape) if val_data else None
    cost = analyze(from_keras(model))
    options["global_ranking"] = not options.pop("per_group", False)
    result = prune_model(
        model, ratio, data=dataset, validation_data=val,
        target_macs=parse_target(target_macs, cost.macs, "--target-macs"),
        target_params=parse_target(target_params, cost.params, "--target-params"),
        target_size_bytes=_size_target(target_size, model, size_precision), size_precision=size_precision,
        round_to=_round_to(round_to, device), epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
        progress=progress, **options)
    save_model(result.model, out)
    return PruneOutcome(os.fspath(out), report=result.report)


def parse_target(value: str | None, total: int, option: str) -> int | None:
    """'250000', '1.5M', '12.5k' (decimal) or '25%' (of the model's current count) -> a count."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        if text.endswith("%"):
            share = float(text[:-1])
            if not 0 < share <= 100:
                raise ValueError
            return max(1, int(total * share / 100))
        count = int(parse_rate(text, option))
    except ValueError:
        raise BadInputError(f"{option} {value!r}: use a count (250000, 1.5M, 12.5k) or a share of the model "
                            "(25%)") from None
    if count <= 0:
        raise BadInputError(f"{option} {value!r} must be positive")
    return count


def _size_target(value: str | None, model, precision: str) -> int | None:
    """'64KB' / '0.5MB' (KB = 1024 B) or '25%' of the model's predicted TFLite size -> bytes."""
    if value is None:
        return None
    from edgekit.costmodel.size import estimate_tflite_bytes
    from edgekit.ir.from_keras import from_keras

    text = str(value).strip()
    if text.endswith("%"):
        return parse_target(text, estimate_tflite_bytes(from_keras(model), precision).flash_bytes, "--target-size")
    try:
        return parse_bytes(text, "--target-size")
    except ValueError as err:
        raise BadInputError(str(err)) from None


def _round_to(round_to: int | None, device: str | None) -> int:
    if round_to is not None:
        return round_to
    if device is None:
        return 1
    from edgekit.profiles import load_profile

    return int(load_profile(device).channel_multiple or 1)


def _sparsify(model, method: str, ratio: float | None, dataset, epochs, batch_size: int, learning_rate: float):
    from edgekit.prune.sparsity import sparsify

    if method == "magnitude" and ratio is None:
        raise BadInputError("--method magnitude needs --ratio (the share of weights to zero, e.g. 0.5)")
    data = (dataset.x, dataset.y) if dataset is not None else None
    return sparsify(model, ratio if ratio is not None else 0.5,
                    pattern="unstructured" if method == "magnitude" else method, data=data,
                    epochs=epochs if epochs is not None else 2, batch_size=batch_size, learning_rate=learning_rate)
