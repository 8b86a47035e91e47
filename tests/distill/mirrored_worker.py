"""Run by tests/distill/test_strategy.py in a fresh process: TF must see 2 logical CPUs before it starts.

Distils the same student (same initial weights, seed, data) without a strategy and under MirroredStrategy over
the 2 CPUs, fine-tunes and QAT-trains under it, and prints the figures as one JSON line.
"""

import json
import sys

import numpy as np

from edgekit._tf import tensorflow, tf_keras

tf, keras = tensorflow(), tf_keras()
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from edgekit.distill import distill
from edgekit.distill.strategy import activate
from edgekit.export.qat import quantize_aware
from edgekit.prune.training import fine_tune

rng = np.random.default_rng(0)
x = rng.normal(size=(1200, 16)).astype("float32")
y = np.argmax(x @ rng.normal(size=(16, 4)), axis=1)
x_train, y_train, x_val, y_val = x[:1000], y[:1000], x[1000:], y[1000:]


def mlp(hidden: int):
    return keras.Sequential([keras.layers.Input((16,)), keras.layers.Dense(hidden, activation="relu"),
                             keras.layers.Dense(4)])


def accuracy(model) -> float:
    return float(np.mean(np.argmax(model.predict(x_val, verbose=0), axis=1) == y_val))


keras.utils.set_random_seed(1)
teacher = mlp(64)
teacher.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
teacher.fit(x_train, y_train, epochs=5, verbose=0)
teacher_weights = [w.copy() for w in teacher.get_weights()]
start = mlp(8)
students = {}
for name in ("none", "mirrored"):
    if name == "mirrored":
        strategy = activate("mirrored")
    student = mlp(8)
    student.set_weights(start.get_weights())
    result = distill(teacher, student, x_train, y_train, x_val, y_val, epochs=int(sys.argv[1]), learning_rate=1e-2,
                     batch_size=64, seed=0, verbose=0)
    students[name] = {"reported": result.val_metrics["accuracy"], "measured": accuracy(student),
                      "initial": result.initial_val_metrics["accuracy"]}

plain = mlp(8)  # prune fine-tuning's loop on a model built outside the strategy: cloned in, weights copied back
plain.set_weights(start.get_weights())
before = accuracy(plain)
fine_tune(plain, x_train, y_train, epochs=3, learning_rate=1e-2)
qat = quantize_aware(teacher, x_train, y_train, epochs=1, batch_size=64)
print(json.dumps({
    "replicas": strategy.num_replicas_in_sync, "students": students,
    "teacher_unchanged": all(np.array_equal(a, b) for a, b in zip(teacher_weights, teacher.get_weights())),
    # never compiled itself: the clone inside the strategy was trained and its weights copied back
    "fine_tune": {"before": before, "after": accuracy(plain), "trained_a_replica": plain.optimizer is None},
    "qat": {"mirrored": all(strategy.extended.variable_created_in_scope(v) for v in qat.model.variables),
            "accuracy": accuracy(qat.model), "teacher": accuracy(teacher)},
}))
