"""The one place TensorFlow is imported: legacy Keras (tf_keras) engine, logs silenced.

Call `tf_keras()` (or `tensorflow()`) inside functions that need TF; never at module top level
of light modules (cli, profiles, graph, costs, planner), so `edgekit --help` stays fast.
"""

from __future__ import annotations

import contextlib
import logging
import os

_verbose = False


def is_verbose() -> bool:
    """Whether --verbose asked for TensorFlow's own log output (and tracebacks)."""
    return _verbose


def set_verbose(verbose: bool) -> None:
    """Show TensorFlow's own C++/absl/Python log output (off by default)."""
    global _verbose
    _verbose = verbose
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if verbose else "3"


def _prepare_env() -> None:
    # tfmot only works with tf_keras; this must be set before TensorFlow is first imported.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    if not _verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


@contextlib.contextmanager
def _stderr_silenced():
    """Send file descriptor 2 to /dev/null: TF's C++ startup lines bypass every log setting."""
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr (e.g. closed): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def tensorflow():
    """Import and return the `tensorflow` module with edgekit's settings."""
    _prepare_env()
    if _verbose:
        import tensorflow as tf
    else:
        with _stderr_silenced():
            import tensorflow as tf

    if not _verbose:
        tf.get_logger().setLevel(logging.ERROR)
        try:
            import absl.logging

            absl.logging.set_verbosity(absl.logging.ERROR)
        except ImportError:  # pragma: no cover - absl ships with TF
            pass
        tf.autograph.set_verbosity(0)
    return tf


def tf_keras():
    """Import and return the `tf_keras` module (the Keras 2 engine edgekit works with)."""
    tensorflow()
    import tf_keras as keras

    return keras
