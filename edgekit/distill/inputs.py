"""Streamed training data for the distiller: a StreamSource (edgekit.data.stream) in place of arrays.

`distill_models` takes arrays or a StreamSource as x_train / x_val. A stream becomes a `StreamedInput`:
its `x` and `y` are a small in-memory sample (the trainer's shape checks, probes and task detection read
them), its length is the number of samples an epoch trains on, and `stream_dataset` builds the batches:
the source's shuffled tf.data pipeline, labels turned into the loss's targets batch by batch, and the
teacher's logits looked up by sample index in the on-disk cache (edgekit.distill.teacher_cache), computed
once in one streamed pass before training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgekit.data.stream import StreamSource
from edgekit.errors import BadInputError

PROBE_BYTES = 4 << 20          # the in-memory sample a StreamedInput carries (probes, task detection)
TEACHER_BATCH = 512            # samples per teacher call in the logit pass
_recent: dict = {}             # (tap, DiskLogits) of the last source, for its other part; one entry


@dataclass(frozen=True)
class StreamedInput:
    """The parts of an edgekit.data.Dataset the trainer reads, for a streamed source."""

    source: StreamSource
    x: np.ndarray                  # a sample of the source, for shapes, probes and task detection
    y: np.ndarray | None

    def __len__(self) -> int:
        n = self.source.num_samples
        return n if self.source.samples_per_epoch is None else min(n, self.source.samples_per_epoch)


def is_stream(x) -> bool:
    return isinstance(x, StreamSource)


def streamed_input(source: StreamSource, y, model_input_shape, name: str, notices: list) -> StreamedInput:
    if y is not None:
        raise BadInputError(f"{name}: a streamed source carries its own labels; pass y as None")
    want = tuple(model_input_shape or ())[1:]
    if want and (len(want) != len(source.element_shape)
                 or any(w is not None and w != h for w, h in zip(want, source.element_shape))):
        raise BadInputError(f"{source.source}: samples have shape {source.element_shape} but the model expects "
                            f"{tuple(model_input_shape)}; open the source with the model's input shape")
    notices.extend(source.notices)
    probe = source.sample(max_bytes=PROBE_BYTES)
    return StreamedInput(source, probe.x, probe.y)


def split_input(train, seed: int, split_arrays):
    """(train, val): a stream split by its per-sample mask (nothing read), arrays by `split_arrays`."""
    if not isinstance(train, StreamedInput):
        return split_arrays(train, seed=seed)
    parts = train.source.split(seed=seed)
    return tuple(streamed_input(p, None, None, p.source, []) for p in parts)


def stream_dataset(distiller, data: StreamedInput, targets_sample, batch_size: int, shuffle_seed: int | None):
    """Batches {"x", "y" (labelled), "teacher" (no feature losses)} of a streamed source; an epoch holds
    len(data) samples (samples_per_epoch caps it, a fresh shuffled share each epoch)."""
    from edgekit._tf import tensorflow
    from edgekit.distill.teacher_cache import disk_teacher_outputs

    tf = tensorflow()
    source = data.source
    ds = source.elements(shuffle_seed).batch(batch_size)
    if shuffle_seed is not None and source.samples_per_epoch is not None:
        ds = ds.take(math.ceil(len(data) / batch_size))
    to_target = _target_fn(tf, source, targets_sample, distiller.task)
    lookup = None
    if not distiller.uses_features():  # teacher outputs are fixed: one pass, on disk, looked up by index
        tap = distiller.teacher_tap
        key = (source.fingerprint(), source.cache_dir)
        held = _recent.get(key)
        if held is not None and held[0] is tap:  # the train and val parts of one source share one pass
            logits = held[1]
        else:
            logits = disk_teacher_outputs(tap, source, source.cache_dir, _predictor(tap),
                                          check=_label_check(source, targets_sample, distiller.task))
            _recent.clear()
            _recent[key] = (tap, logits)  # holding the tap: its id cannot be reused by another teacher
        out_shape = tuple(logits.rows.shape[1:])

        def lookup(index):
            values = tf.numpy_function(logits.lookup, [index], tf.float32, stateful=False)
            return tf.ensure_shape(values, (None, *out_shape))

    def to_batch(element):
        batch = {"x": element["x"]}
        if to_target is not None and "y" in element:
            batch["y"] = to_target(element["y"])
        if lookup is not None:
            batch["teacher"] = lookup(element["index"])
        return batch

    return ds.map(to_batch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _predictor(teacher_tap):
    """x -> the tap's first output (the logits) as float32, TEACHER_BATCH samples per call."""

    def predict(x):
        outs = []
        for start in range(0, len(x), TEACHER_BATCH):
            out = teacher_tap(x[start:start + TEACHER_BATCH], training=False)
            outs.append(np.asarray(out[0] if isinstance(out, (list, tuple)) else out, np.float32))
        return np.concatenate(outs)

    return predict


def _target_fn(tf, source: StreamSource, targets_sample, task: str):
    """Stored labels -> the loss's targets (as trainer._targets makes them from arrays), batch by batch."""
    if targets_sample is None or not source.has_labels:
        return None
    target_shape = tuple(targets_sample.shape[1:])
    index_labels = source.label_dtype == "int64" and math.prod(source.label_shape) == 1
    if task == "classification" and index_labels and len(target_shape) == 1:
        return lambda y: tf.one_hot(tf.reshape(tf.cast(y, tf.int64), (-1,)), target_shape[0], dtype=tf.float32)
    return lambda y: tf.reshape(tf.cast(y, tf.float32), (-1, *target_shape))


def _label_check(source: StreamSource, targets_sample, task: str):
    """Refuse, during the teacher pass, class indices outside the teacher's classes and non-finite samples."""
    n_classes = None
    if task == "classification" and targets_sample is not None and source.has_labels \
            and source.label_dtype == "int64" and math.prod(source.label_shape) == 1:
        n_classes = int(targets_sample.shape[-1])

    def check(x, y, index):
        finite = np.isfinite(x).reshape(len(x), -1).all(axis=1)
        if not finite.all():
            raise BadInputError(f"{source.source}: sample {int(index[np.argmin(finite)])} contains NaN or infinite "
                                "values; clean or impute them first")
        if n_classes is not None and y is not None and (y.min() < 0 or y.max() >= n_classes):
            bad = int(index[np.argmax((y.reshape(-1) < 0) | (y.reshape(-1) >= n_classes))])
            raise BadInputError(f"{source.source}: sample {bad} has label outside 0..{n_classes - 1} (the teacher's "
                                "classes); fix the labels")

    return check
