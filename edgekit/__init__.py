"""edgekit: make a trained Keras model fit a real device, keep its accuracy, prove it.

The package import is light: TensorFlow is imported only by the functions that need it.
"""

__version__ = "0.1.0"


def fit(model_or_path, device: str, data=None, **budgets_and_options):
    """Make a model fit a device and prove it: `edgekit.fit("m.h5", device="pixel7", data="train.npz")`.

    Returns a FitResult (edgekit.workflows.fit.report); see edgekit.workflows.fit.fit for the options.
    """
    from edgekit.workflows.fit import fit as _fit

    return _fit(model_or_path, device, data, **budgets_and_options)
