"""The Python API the CLI mirrors: one function per command, each returning a dataclass (facade only).

    >>> import edgekit.api as ek
    >>> result = ek.inspect("teacher.h5", device="stm32h743")       # doctest: +SKIP
    >>> result.analysis.macs, result.fits                             # doctest: +SKIP
    >>> plan = ek.plan("teacher.h5", "stm32l4r5", max_flash="32KB")  # doctest: +SKIP
    >>> pruned = ek.prune(model, 0.5).model                           # doctest: +SKIP
    >>> outcome = ek.distill("teacher.h5", "train.npz", width=0.5)    # doctest: +SKIP
    >>> result = ek.fit("teacher.h5", "stm32l4r5", data="train.npz")  # doctest: +SKIP

Nothing inside edgekit imports this module; TensorFlow is imported only when a function runs.
"""

from edgekit.workflows.bench import bench
from edgekit.workflows.distill import distill_model as distill
from edgekit.workflows.export import export
from edgekit.workflows.fit import fit
from edgekit.workflows.inspect import InspectResult, inspect
from edgekit.workflows.plan import plan
from edgekit.workflows.prune import prune

__all__ = ["InspectResult", "bench", "distill", "export", "fit", "inspect", "plan", "prune"]
