"""Training on several devices or machines with tf.distribute: `--strategy none|mirrored|multiworker`.

    >>> from edgekit.distill.strategy import activate, is_chief   # doctest: +SKIP
    >>> activate("multiworker")        # reads TF_CONFIG; every training loop in this process now uses it
    >>> is_chief()                     # True on the worker that writes the outputs

- "mirrored": `tf.distribute.MirroredStrategy` over this host's GPUs (or its logical CPUs when there is no
  GPU), one replica per device.
- "multiworker": `tf.distribute.MultiWorkerMirroredStrategy` over the hosts listed in the standard
  `TF_CONFIG` environment variable, one replica per worker process. Every worker runs the same command on
  the same data; the chief (task type "chief", else worker 0) is the only one that writes outputs.

`batch_size` stays the global batch (the Keras convention): each step's batch is split across the replicas,
so a run gives the same number of optimizer steps per epoch whatever the number of replicas. Gradients are
averaged over replicas (not summed), so the learning rate means the same as in a single-process run.

A strategy is process-wide (TF allows one collective setup per process), so `activate` stores it and the
training loops (distillation, prune fine-tuning, QAT) use it when not given one explicitly (`resolve`).
This module imports TensorFlow only inside the functions that build a strategy or models.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass

from edgekit.errors import BadInputError

STRATEGIES = ("none", "mirrored", "multiworker")
TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host0:12345", "host1:12345"]}, '
                     '"task": {"type": "worker", "index": 0}}')

LOST_PEER_ERRORS = ("UnavailableError", "CancelledError", "DeadlineExceededError", "AbortedError")
_active: dict[str, object] = {}  # name -> the strategy built in this process (TF allows one collective setup)
_active_name = "none"


@dataclass(frozen=True)
class WorkerRole:
    """This process's place in a TF_CONFIG cluster."""

    task_type: str     # "chief" or "worker" (an "evaluator" takes no part in training)
    task_index: int
    n_workers: int     # processes that train: chief + workers
    has_chief: bool    # the cluster names a "chief" task (else worker 0 is the chief)

    @property
    def is_chief(self) -> bool:
        return self.task_type == "chief" or (self.task_type == "worker" and self.task_index == 0
                                             and not self.has_chief)


def parse_strategy(name: str | None) -> str:
    """'none' (also for None), 'mirrored' or 'multiworker'; anything else is a one-line BadInputError."""
    value = "none" if name is None else str(name).strip().lower()
    if value not in STRATEGIES:
        raise BadInputError(f"--strategy {name!r}: unknown; use one of {', '.join(STRATEGIES)}")
    return value


def worker_role(environ=None) -> WorkerRole:
    """Parse TF_CONFIG (from `environ`, default os.environ); a missing or malformed one is a BadInputError."""
    text = (os.environ if environ is None else environ).get("TF_CONFIG", "").strip()

    def bad(what: str) -> BadInputError:
        return BadInputError(f"TF_CONFIG {what}: --strategy multiworker needs it on every worker as JSON like "
                             f"{TF_CONFIG_EXAMPLE} (the same cluster everywhere, this worker's own task)")

    if not text:
        raise bad("is not set")
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise bad(f"is not JSON ({exc.msg} at character {exc.pos})") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise bad('has no "cluster" object or no "task" object')
    trainers = {kind: cluster.get(kind, []) for kind in ("chief", "worker")}
    if any(not isinstance(hosts, list) or not all(isinstance(h, str) and ":" in h for h in hosts)
           for hosts in trainers.values()):
        raise bad('lists "chief"/"worker" hosts that are not "host:port" strings')
    if len(trainers["chief"]) > 1 or not trainers["chief"] + trainers["worker"]:
        raise bad('needs at most one "chief" and at least one "worker" or "chief" host')
    kind, index = task.get("type"), task.get("index", 0)
    if kind not in cluster or not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise bad(f'task {task!r} is not one of the cluster\'s entries')
    return WorkerRole(kind, index, len(trainers["chief"]) + len(trainers["worker"]),
                      bool(trainers["chief"]))


def make_strategy(name: str | None):
    """The tf.distribute strategy for `name` (None for 'none'); built once per process."""
    name = parse_strategy(name)
    if name == "none":
        return None
    if name in _active:
        return _active[name]
    if name == "multiworker":
        worker_role()  # a readable error before TF's own (and before TF loads)
    from edgekit._tf import tensorflow

    tf = tensorflow()
    if name == "multiworker":
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING)
        try:
            strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        except (ValueError, RuntimeError) as exc:
            raise BadInputError(f"TF_CONFIG: cannot start the multi-worker strategy: "
                                f"{str(exc).strip().splitlines()[0]}") from None
    else:
        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
            d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices=devices)
    _active[name] = strategy
    return strategy


def activate(name: str | None):
    """Build the strategy for `name` and make it this process's default for every training loop."""
    global _active_name
    strategy = make_strategy(name)
    _active_name = parse_strategy(name)
    return strategy


def resolve(strategy=None):
    """The strategy to train with: the one given, else the process's active one (None: no distribution)."""
    if strategy is None:
        return _active.get(_active_name)
    if isinstance(strategy, str):
        return make_strategy(strategy)
    return strategy


def is_chief(strategy=None) -> bool:
    """Whether this process writes outputs: always, except a non-chief worker of a multi-worker run."""
    strategy = resolve(strategy)
    if strategy is None or type(strategy).__name__ not in ("MultiWorkerMirroredStrategy",
                                                           "CollectiveAllReduceStrategy"):
        return True
    return worker_role().is_chief


@contextlib.contextmanager
def chief_output(path: str | os.PathLike, strategy=None):
    """Yield where this process should write `path`: the path itself on the chief, else a private temporary
    folder (deleted afterwards), so non-chief workers run the same steps without touching the user's output."""
    if is_chief(strategy):
        yield path
        return
    import shutil
    import tempfile

    private = tempfile.mkdtemp(prefix="edgekit-worker-")
    try:
        yield os.path.join(private, os.path.basename(os.path.normpath(os.fspath(path))) or "out")
    finally:
        shutil.rmtree(private, ignore_errors=True)


@contextlib.contextmanager
def lost_worker_errors():
    """Turn TensorFlow's errors for a lost or unreachable peer worker into one line saying what to do."""
    try:
        yield
    except Exception as exc:
        error = lost_worker_error(exc)
        if error is None:
            raise
        raise error from None


def lost_worker_error(exc: BaseException) -> BadInputError | None:
    """The one-line error for `exc` when it says a peer of a multi-worker run was lost, else None."""
    if _active_name != "multiworker" or type(exc).__name__ not in LOST_PEER_ERRORS:
        return None
    text = str(exc)
    lost = sorted(set(re.findall(r"/job:(\w+)/replica:\d+/task:(\d+)", text[text.find("unhealthy"):])))
    reason = ("lost " + ", ".join(f"{job} {task}" for job, task in lost)) if "unhealthy" in text and lost else (
        type(exc).__name__)
    return BadInputError(f"--strategy multiworker: a worker of the TF_CONFIG cluster stopped or cannot be reached "
                         f"({reason}); check its log, then restart every worker")


def scope(strategy=None):
    """`strategy.scope()`, or a no-op context without a strategy."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def replicate(model, strategy, role: str = "model"):
    """A copy of `model` whose variables live under `strategy` (same weights); `model` itself without one."""
    if strategy is None:
        return model
    from edgekit._tf import tf_keras

    keras = tf_keras()
    with strategy.scope():
        try:
            copy = keras.models.clone_model(model)
        except (ValueError, TypeError, NotImplementedError) as exc:
            raise BadInputError(f"--strategy: cannot rebuild the {role} {model.name!r} for distributed training "
                                f"({str(exc).strip().splitlines()[0][:120]}); use a functional or Sequential "
                                "model, or --strategy none") from None
        copy.set_weights(model.get_weights())
    return copy


def shard(dataset, strategy):
    """Split a tf.data pipeline built from in-memory arrays across workers by element (DATA auto-shard)."""
    if strategy is None:
        return dataset
    from edgekit._tf import tensorflow

    tf = tensorflow()
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def replica_mean_adam(learning_rate, strategy):
    """Adam that averages the replicas' gradients instead of summing them (custom train steps compute a
    per-replica mean loss; Keras' compiled losses scale by 1/replicas themselves). Plain Adam without a strategy."""
    from edgekit._tf import tensorflow, tf_keras

    keras, tf = tf_keras(), tensorflow()
    if strategy is None:
        return keras.optimizers.Adam(learning_rate=learning_rate)

    class ReplicaMeanAdam(keras.optimizers.Adam):
        def aggregate_gradients(self, grads_and_vars):
            summed = super().aggregate_gradients(grads_and_vars)
            n = tf.distribute.get_strategy().num_replicas_in_sync
            if n == 1:
                return summed
            return [(_divide(g, n), v) for g, v in summed]

    with strategy.scope():
        return ReplicaMeanAdam(learning_rate=learning_rate)


def _divide(gradient, n: int):
    if gradient is None:
        return None
    from edgekit._tf import tensorflow

    tf = tensorflow()
    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(gradient.values / n, gradient.indices, gradient.dense_shape)
    return gradient / n


class Replicas:
    """The teacher and student as the training loop should use them under `strategy` (copies whose variables
    are mirrored), and the way back: `copy_back()` puts the trained weights into the caller's student."""

    def __init__(self, strategy, teacher, student) -> None:
        self.strategy = resolve(strategy)
        self.original_student = student
        self.teacher = replicate(teacher, self.strategy, "teacher")
        self.student = replicate(student, self.strategy, "student")

    def scope(self):
        return scope(self.strategy)

    def shard(self, dataset):
        return shard(dataset, self.strategy)

    def optimizer(self, learning_rate):
        return replica_mean_adam(learning_rate, self.strategy)

    def copy_back(self) -> None:
        if self.student is not self.original_student:
            self.original_student.set_weights(self.student.get_weights())


@contextlib.contextmanager
def training_copy(model, strategy=None, callbacks=()):
    """Yield (model to compile and fit, strategy to do it under) for a training loop over `model`.

    Under a strategy, a model built outside its scope is cloned into it and the trained weights are copied
    back afterwards. Models that a clone would change (tfmot wrappers, added losses) or callbacks that hold
    the original's variables train locally on each worker instead: the same seed and data give every
    worker the same result, and no collective op is left waiting.
    """
    strategy = resolve(strategy)
    if strategy is None or all(strategy.extended.variable_created_in_scope(v) for v in model.variables):
        yield model, strategy
        return
    wrapped = any(type(layer).__module__.startswith("tensorflow_model_optimization") for layer in model.layers)
    if callbacks or model.losses or wrapped:
        yield model, None
        return
    copy = replicate(model, strategy)
    yield copy, strategy
    model.set_weights(copy.get_weights())


def fit_arrays(model, x, y, strategy, *, epochs: int, batch_size: int, seed: int, callbacks=()) -> None:
    """`model.fit` on in-memory arrays: as before without a strategy; with one, as a shuffled tf.data pipeline
    sharded across workers (batch_size is the global batch)."""
    if strategy is None:
        model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0, callbacks=list(callbacks))
        return
    from edgekit._tf import tensorflow

    tf = tensorflow()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    model.fit(shard(dataset.batch(batch_size), strategy), epochs=epochs, verbose=0, callbacks=list(callbacks))


def local_tf_configs(n_workers: int, chief: bool = False, host: str = "localhost") -> list[str]:
    """One TF_CONFIG value per process for an n-process cluster on this machine (free ports, worker 0 or the
    chief first): how to try `--strategy multiworker` before a real cluster (docs/distributed.md)."""
    import socket

    sockets = [socket.socket() for _ in range(n_workers)]
    try:
        for s in sockets:
            s.bind((host, 0))
        hosts = [f"{host}:{s.getsockname()[1]}" for s in sockets]
    finally:
        for s in sockets:
            s.close()
    cluster = {"chief": hosts[:1], "worker": hosts[1:]} if chief else {"worker": hosts}
    tasks = ([{"type": "chief", "index": 0}] + [{"type": "worker", "index": i} for i in range(n_workers - 1)]
             if chief else [{"type": "worker", "index": i} for i in range(n_workers)])
    return [json.dumps({"cluster": cluster, "task": task}) for task in tasks]
