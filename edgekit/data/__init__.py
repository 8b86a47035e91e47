"""The user's data: loaded whole (.npz, .npy, image folders) or streamed with tf.data when large.

In memory (numpy, and Pillow for image folders; no TensorFlow):

    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "d.npz")
    >>> np.savez(path, x=np.zeros((10, 40)), y=np.arange(10) % 2)
    >>> ds = load_data(path, model_input_shape=(None, 40, 1))
    >>> ds.x.shape, ds.notices[0][:40]
    ((10, 40, 1), 'd.npz: added a trailing channel axis: x ')
    >>> train, val = split(ds, val_fraction=0.2)
    >>> len(train.x), len(val.x)
    (8, 2)

Streamed (edgekit.data.stream, TensorFlow imported only when a pipeline is built): `open_data` returns a
StreamSource for TFRecord files, folders of .npz shards, and files or image folders over STREAM_ABOVE_BYTES.

Modules: arrays (Dataset, shape checks), files (.npz/.npy reading), images, split, load (load_data,
as_dataset, open_data), stream (StreamSource, its tf.data pipeline and split), stream_sources (opening and
checking each streamed format), tfrecord (the accepted TFRecord layout).
"""

from edgekit.data.arrays import (
    IN_MEMORY,
    Dataset,
    _as_float_samples,
    _brief,
    _check_labels,
    _dims_match,
    _fmt,
    _shape_fix_hint,
    conform_to_input_shape,
    from_arrays,
)
from edgekit.data.files import (
    _check_npz,
    _npy_header,
    _read_npy,
    _read_npz,
    _require_magic,
    load_named_arrays,
    read_npz_arrays,
)
from edgekit.data.images import IMAGE_SUFFIXES, _read_image_folder
from edgekit.data.load import STREAM_ABOVE_BYTES, as_dataset, load_data, open_data
from edgekit.data.split import VAL_FRACTION, _class_indices, _stratified_val_indices, _subset, split

# the private names are helpers other edgekit modules import from here
__all__ = [
    "IMAGE_SUFFIXES",
    "IN_MEMORY",
    "STREAM_ABOVE_BYTES",
    "VAL_FRACTION",
    "Dataset",
    "_as_float_samples",
    "_brief",
    "_check_labels",
    "_check_npz",
    "_class_indices",
    "_dims_match",
    "_fmt",
    "_npy_header",
    "_read_image_folder",
    "_read_npy",
    "_read_npz",
    "_require_magic",
    "_shape_fix_hint",
    "_stratified_val_indices",
    "_subset",
    "as_dataset",
    "conform_to_input_shape",
    "from_arrays",
    "load_data",
    "load_named_arrays",
    "open_data",
    "read_npz_arrays",
    "split",
]
