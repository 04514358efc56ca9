"""The errors a user can cause, and nothing else.

The command line turns exactly these into a one-line ``Error: ...`` and exit code 2 (``cli/_common.py``); any other
exception is a bug in this package or a dependency and keeps its traceback. Both subclass ``ValueError``, so code
(and tests) that catch ``ValueError`` around a validation keep working.

This module imports nothing from the package: every layer may raise these.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input the user can fix: a missing or corrupt file, an unknown name, a value out of range, flags that
    contradict each other, an output that exists. The message's first line says what and how to fix it."""


class MissingExtraError(UserError):
    """A feature needs an optional dependency that is not installed; the message names the ``pip install`` to run."""


def first_line(err: BaseException) -> str:
    """The one line the command line prints for ``err``."""
    text = str(err)
    return text.splitlines()[0] if text else repr(err)
