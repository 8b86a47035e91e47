"""Errors a user can act on, each with the exit code the CLI returns for it.

Exit codes (documented in README.md):
    0  ok
    2  bad input or usage (unreadable model, bad profile, bad data, unknown device)
    3  the model does not fit the device's budgets (and nothing reachable does)
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_DOES_NOT_FIT = 3


class EdgekitError(Exception):
    """Base class: a one-line message meant for the user, and the CLI exit code."""

    exit_code = 1


class BadInputError(EdgekitError):
    """The input (model file, profile, data, option) is unusable; the message says what to do."""

    exit_code = EXIT_BAD_INPUT


class UnsafeModelError(BadInputError):
    """Loading the model would run code stored in it (Lambda, custom objects)."""


class UnsupportedModelError(BadInputError):
    """The model loads but an operation asked of it cannot be done (e.g. pruning a non-Keras SavedModel)."""


class DoesNotFitError(EdgekitError):
    """No candidate meets the device budgets; the message names the binding budget."""

    exit_code = EXIT_DOES_NOT_FIT
