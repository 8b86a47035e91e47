"""Runners: measure a TFLite model on one runtime (LiteRT, TFLite Micro, ...); see `base.Runner`.

Submodules import their runtime lazily enough that importing this package stays light.
"""

from edgekit.runners.base import Measurement, Runner

RUNNERS = ("litert", "tflm", "adb")  # the names `bench --runner` takes

__all__ = ["RUNNERS", "Measurement", "Runner"]
