"""The TFRecord layout edgekit reads: each record a tf.train.Example with these features (others are ignored).

- `x` (required), one of:
    * bytes_list of one value, `tf.io.serialize_tensor` of a float32 tensor: one sample, any shape;
    * float_list: one sample flattened; its shape is the int64_list `shape` feature when present, else
      the model's input shape (without the batch axis).
- `y` (optional): int64_list (a class index, or several ints as a vector) or float_list (targets).
- `shape` (optional): int64_list, the sample shape (for a float_list `x`).

Every record must have the first record's layout (same x kind and shape, y present or not, same y length).
Anything else (no `x`, an int64 `x`, several byte strings, a SequenceExample, a damaged file) is refused
with one line naming the file. Write records with `example_bytes(x, y)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgekit.data.arrays import _brief, _fmt
from edgekit.errors import BadInputError

TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".tfrec")


@dataclass(frozen=True)
class RecordLayout:
    x_format: str                    # "bytes" or "floats"
    stored_shape: tuple[int, ...] | None   # None: floats without a shape feature (the model's input decides)
    x_values: int                    # floats: values per sample
    label_shape: tuple[int, ...] | None
    label_dtype: str


def example_bytes(x: np.ndarray, y=None) -> bytes:
    """One record in edgekit's layout: x as a serialized float32 tensor, y as int64 (ints) or floats."""
    from edgekit._tf import tensorflow

    tf = tensorflow()
    feature = {"x": tf.train.Feature(bytes_list=tf.train.BytesList(
        value=[tf.io.serialize_tensor(np.asarray(x, np.float32)).numpy()]))}
    if y is not None:
        y = np.atleast_1d(np.asarray(y))
        feature["y"] = (tf.train.Feature(int64_list=tf.train.Int64List(value=y.astype(np.int64).tolist()))
                        if y.dtype.kind in "biu" else
                        tf.train.Feature(float_list=tf.train.FloatList(value=y.astype(np.float32).tolist())))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def inspect_first_record(path: str) -> RecordLayout:
    """The layout of `path`'s first record (the one all others must share)."""
    from edgekit._tf import tensorflow

    tf = tensorflow()
    try:
        first = next(iter(tf.data.TFRecordDataset(path).take(1)), None)
    except tf.errors.OpError as e:
        raise BadInputError(f"{path}: not a readable TFRecord file ({_brief(e)})") from None
    if first is None:
        raise BadInputError(f"{path}: holds no records; remove it or write samples to it")
    from google.protobuf.message import DecodeError

    try:
        example = tf.train.Example.FromString(first.numpy())
    except DecodeError as e:
        raise BadInputError(f"{path}: the first record is not a tf.train.Example ({_brief(e)})") from None
    features = example.features.feature
    if "x" not in features:
        raise BadInputError(f"{path}: the records have no feature 'x' (found {sorted(features)[:5]}); "
                            "see edgekit.data.tfrecord for the layout")
    x = features["x"]
    shape = tuple(int(d) for d in features["shape"].int64_list.value) if "shape" in features else None
    if x.WhichOneof("kind") == "bytes_list" and len(x.bytes_list.value) == 1:
        try:
            tensor = tf.io.parse_tensor(x.bytes_list.value[0], out_type=tf.float32)
        except tf.errors.OpError as e:
            raise BadInputError(f"{path}: feature 'x' is not a serialized float32 tensor ({_brief(e)}); "
                                "write it with tf.io.serialize_tensor(tf.cast(x, tf.float32))") from None
        x_format, stored, values = "bytes", tuple(int(d) for d in tensor.shape), int(tensor.shape.num_elements())
    elif x.WhichOneof("kind") == "float_list":
        x_format, stored, values = "floats", shape, len(x.float_list.value)
        if stored is not None and math.prod(stored) != values:
            raise BadInputError(f"{path}: feature 'x' has {values} floats but 'shape' says {_fmt(stored)}")
    else:
        raise BadInputError(f"{path}: feature 'x' is a {x.WhichOneof('kind')} of {_values(x)} value(s); it must "
                            "be one serialized float32 tensor (bytes) or a float_list")
    label_shape, label_dtype = None, "int64"
    if "y" in features:
        y = features["y"]
        kind = y.WhichOneof("kind")
        if kind not in ("int64_list", "float_list") or _values(y) == 0:
            raise BadInputError(f"{path}: feature 'y' is a {kind} of {_values(y)} value(s); use an int64_list "
                                "(class index) or a float_list (targets)")
        label_shape = () if _values(y) == 1 else (_values(y),)
        label_dtype = "int64" if kind == "int64_list" else "float32"
    return RecordLayout(x_format, stored, values, label_shape, label_dtype)


def record_parser(source):
    """serialized record -> (x float32 of the stored shape, y) for a StreamSource of kind tfrecord."""
    from edgekit._tf import tensorflow

    tf = tensorflow()
    spec = {"x": tf.io.FixedLenFeature([], tf.string) if source.x_format == "bytes"
            else tf.io.FixedLenFeature([math.prod(source.stored_shape)], tf.float32)}
    if source.has_labels:
        spec["y"] = tf.io.FixedLenFeature([math.prod(source.label_shape)], tf.as_dtype(source.label_dtype))

    def parse(record):
        features = tf.io.parse_single_example(record, spec)
        x = features["x"]
        if source.x_format == "bytes":
            x = tf.ensure_shape(tf.io.parse_tensor(x, out_type=tf.float32), source.stored_shape)
        x = tf.reshape(x, source.stored_shape)
        y = tf.reshape(features["y"], source.label_shape) if source.has_labels else tf.constant(0, tf.int64)
        return x, y

    return parse


def _values(feature) -> int:
    kind = feature.WhichOneof("kind")
    return len(getattr(feature, kind).value) if kind else 0
