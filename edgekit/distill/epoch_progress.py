"""One line per training epoch for people following a long fit: epoch n/N, the scores, time per epoch, ETA.

`distill(..., verbose=EPOCH_LINES)` uses it instead of Keras' own output: the lines go to stderr (stdout
stays for results and `--json`), and the ETA is the mean epoch time so far times the epochs left (an
upper bound when early stopping ends the run sooner).
"""

from __future__ import annotations

import sys
import time

EPOCH_LINES = 3  # the `verbose` level of distill() that prints these lines (0-2 are Keras' own levels)


def eta_text(seconds_per_epoch: float, epochs_left: int) -> str:
    """'about 1 min 30 s left', 'about 12 s left', or 'done'."""
    left = seconds_per_epoch * epochs_left
    if epochs_left <= 0:
        return "done"
    if left >= 90:
        return f"about {int(left // 60)} min {int(left % 60):02d} s left"
    return f"about {left:.0f} s left"


def epoch_line(epoch: int, epochs: int, logs: dict, seconds_per_epoch: float) -> str:
    scores = [f"{k} {v:.4f}" for k, v in sorted((logs or {}).items())
              if k in ("loss", "val_loss") or k.startswith("val_") and "accuracy" in k or k == "val_agreement"]
    return (f"  epoch {epoch}/{epochs}: {', '.join(scores) or 'no scores'}; {seconds_per_epoch:.1f} s/epoch, "
            f"{eta_text(seconds_per_epoch, epochs - epoch)}")


def epoch_progress_callback(epochs: int, stream=None):
    """A tf_keras callback printing `epoch_line` after every epoch."""
    from edgekit._tf import tf_keras

    class EpochProgress(tf_keras().callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            per_epoch = (time.monotonic() - self.start) / (epoch + 1)
            print(epoch_line(epoch + 1, epochs, logs or {}, per_epoch), file=stream or sys.stderr, flush=True)

    return EpochProgress()


__all__ = ["EPOCH_LINES", "epoch_line", "epoch_progress_callback", "eta_text"]
