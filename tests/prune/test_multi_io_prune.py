"""Pruning a model with two inputs and two heads (boxes + classes) that share a trunk: every output stays
consistent (removed channels carry nothing, so both outputs must equal the original's), shapes kept."""

from __future__ import annotations

import numpy as np
from prune_helpers import random_keep, randomize_batchnorm, zero_removed_channels

from edgekit.channels.groups import build_groups
from edgekit.costmodel.layer_costs import analyze
from edgekit.ir.from_keras import from_keras
from edgekit.prune.surgery import apply_keep


def _two_in_two_out():
    from edgekit._tf import tf_keras

    keras = tf_keras()
    L = keras.layers
    image, meta = keras.Input((12, 12, 3), name="image"), keras.Input((6,), name="meta")
    h = L.ReLU()(L.BatchNormalization()(L.Conv2D(16, 3, name="stem")(image)))
    h = L.Conv2D(16, 3, padding="same", name="body")(h)
    shared = L.GlobalAveragePooling2D()(h)
    m = L.Dense(16, name="meta_fc")(meta)
    joint = L.Add(name="fuse")([shared, m])          # ties the image trunk to the meta branch
    boxes = L.Dense(4, name="boxes")(L.Dense(8, activation="relu", name="box_fc")(joint))
    classes = L.Dense(7, name="classes")(joint)
    return keras.Model([image, meta], [boxes, classes])


def test_two_heads_on_shared_channels_stay_consistent():
    model = _two_in_two_out()
    randomize_batchnorm(model)
    groups = build_groups(from_keras(model))
    (fused,) = [g for g in groups.prunable_groups if "meta_fc" in g.sources]
    assert set(fused.sources) == {"body", "meta_fc"}       # Add ties them: one group for both branches
    keep = random_keep(groups, 0.5, seed=3)
    zero_removed_channels(model, groups, keep)
    pruned = apply_keep(model, groups, keep)
    rng = np.random.default_rng(0)
    x = [rng.standard_normal((5, 12, 12, 3)).astype("float32"), rng.standard_normal((5, 6)).astype("float32")]
    before, after = model(x), pruned(x)
    assert [tuple(t.shape) for t in after] == [(5, 4), (5, 7)]
    for a, b in zip(before, after):
        np.testing.assert_allclose(b.numpy(), a.numpy(), atol=1e-5)
    assert pruned.get_layer("body").filters == pruned.get_layer("meta_fc").units == 8
    assert analyze(from_keras(pruned)).params == pruned.count_params() < model.count_params()
