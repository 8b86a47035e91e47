"""In-memory samples: the Dataset value, and the checks every form of data gets against the model's input."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgekit.errors import BadInputError

IN_MEMORY = "<arrays>"


@dataclass(frozen=True)
class Dataset:
    """Samples ready for a model: x float32 shaped (N, *model input), y labels/targets or None."""

    x: np.ndarray
    y: np.ndarray | None = None
    source: str = IN_MEMORY
    class_names: tuple[str, ...] | None = None
    notices: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.x.shape[0])



def from_arrays(x, y=None, model_input_shape: Sequence[int | None] | None = None,
                source: str = IN_MEMORY) -> Dataset:
    """The same checks as `load_data`, for arrays already in memory (the Python API's path)."""
    x = _as_float_samples(np.asarray(x), source, "x")
    notices: list[str] = []
    if model_input_shape is not None:
        x, notice = conform_to_input_shape(x, model_input_shape, source)
        if notice:
            notices.append(notice)
    if y is not None:
        y = _check_labels(np.asarray(y), len(x), source)
    return Dataset(x=x, y=y, source=source, notices=tuple(notices))


def conform_to_input_shape(x: np.ndarray, model_input_shape: Sequence[int | None],
                           name: str = IN_MEMORY) -> tuple[np.ndarray, str | None]:
    """Return x shaped for the model (adding a lone missing channel axis), and a notice if it did so."""
    want = tuple(model_input_shape)[1:]
    have = tuple(x.shape[1:])
    if _dims_match(have, want):
        return x, None
    if len(want) == len(have) + 1 and want[-1] == 1 and _dims_match(have, want[:-1]):
        notice = (f"{name}: added a trailing channel axis: x {_fmt(x.shape)} -> {_fmt(x.shape + (1,))} "
                  f"to match the model input {_fmt(model_input_shape)}")
        return x[..., None], notice
    raise BadInputError(f"{name}: x has shape {_fmt(x.shape)} but the model expects "
                        f"{_fmt(model_input_shape)}; {_shape_fix_hint(have, want)}")


def _as_float_samples(x: np.ndarray, name: str, field: str) -> np.ndarray:
    if x.dtype.kind not in "biuf":
        raise BadInputError(f"{name}: {field} has dtype {x.dtype}, not numbers; save a numeric array")
    if x.ndim == 0:
        raise BadInputError(f"{name}: {field} is a scalar; it needs a leading sample axis (N, ...)")
    if x.shape[0] == 0 or x.size == 0:
        raise BadInputError(f"{name}: {field} is empty (shape {_fmt(x.shape)})")
    x = x.astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        raise BadInputError(f"{name}: {field} contains NaN or infinite values; clean or impute them first")
    return x


def _check_labels(y: np.ndarray, n: int, name: str) -> np.ndarray:
    if y.dtype.kind not in "biuf":
        raise BadInputError(f"{name}: y has dtype {y.dtype}, not numbers; save labels as integers "
                            "(class indices) or floats (targets)")
    if y.ndim == 0 or y.shape[0] != n:
        got = "a scalar" if y.ndim == 0 else f"{y.shape[0]} entries"
        raise BadInputError(f"{name}: x has {n} samples but y has {got}; they must have the same length")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise BadInputError(f"{name}: y contains NaN or infinite values; clean them first")
    return y


def _dims_match(have: tuple, want: tuple) -> bool:
    return len(have) == len(want) and all(w is None or h == w for h, w in zip(have, want))


def _shape_fix_hint(have: tuple, want: tuple) -> str:
    known = all(w is not None for w in want)
    if len(want) == len(have) + 1 and _dims_match(have, want[:-1]):
        return f"x has no channel axis but the model expects {want[-1]} channels; add one of size {want[-1]}"
    if len(have) == len(want) + 1 and have[-1] == 1 and _dims_match(have[:-1], want):
        return "drop the trailing axis of size 1 (x[..., 0])"
    if known and int(np.prod(have)) == int(np.prod(want)) and have != want:
        if len(have) == len(want) and len(want) >= 2 and have == (want[-1],) + want[:-1]:
            return "x looks channels-first; move the channel axis last (np.moveaxis(x, 1, -1))"
        return f"reshape x to (N, {', '.join(str(d) for d in want)})"
    if len(have) == len(want):
        return "resize or crop each sample to the model's input size"
    return f"give each sample the model's input shape ({', '.join(str(d) for d in want)})"


def _fmt(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(int(d)) for d in shape) + ")"


def _brief(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:120]

