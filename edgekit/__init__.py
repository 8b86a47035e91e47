"""edgekit: make a trained Keras model fit a real device, keep its accuracy, prove it.

The package import is light: TensorFlow is imported only by the functions that need it.
"""

__version__ = "0.1.0"
