"""`--metric module:function`: the user's own scoring function, imported as trusted code.

The function takes (outputs, y, teacher_outputs) -- numpy arrays, or lists of them for multi-output models;
y may be None -- and returns one number, higher is better. Importing it runs the user's code: it is loaded
only when the user names it, never from a model or data file. `module` is an importable module name or the
path of a .py file.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable

from edgekit.errors import BadInputError


def load_metric(spec: str) -> Callable:
    """The function `spec` ("package.module:function" or "path/to/file.py:function") names."""
    module_name, sep, function = spec.rpartition(":")
    if not sep or not module_name or not function.isidentifier():
        raise BadInputError(f"--metric {spec!r}: expected module:function (e.g. mymetrics:score) or "
                            "path/to/file.py:function")
    try:
        if module_name.endswith(".py"):
            if not os.path.isfile(module_name):
                raise BadInputError(f"--metric {spec!r}: no such file {module_name}")
            loader_spec = importlib.util.spec_from_file_location(f"edgekit_user_metric_{abs(hash(module_name))}",
                                                                 module_name)
            module = importlib.util.module_from_spec(loader_spec)
            loader_spec.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path and "" not in sys.path:
                sys.path.insert(0, os.getcwd())  # `edgekit` is an entry point: let it find the user's module
            module = importlib.import_module(module_name)
    except BadInputError:
        raise
    except Exception as err:  # noqa: BLE001  (the user's code failed to import: one line, no traceback)
        raise BadInputError(f"--metric {spec!r}: cannot import {module_name} ({type(err).__name__}: {err})"
                            ) from None
    fn = getattr(module, function, None)
    if not callable(fn):
        raise BadInputError(f"--metric {spec!r}: {module_name} has no function {function}")
    return fn
