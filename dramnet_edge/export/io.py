"""Writing artifacts atomically.

``write_atomically`` is ``models.checkpoint.atomic_write`` (which now also gives the file ordinary permissions
instead of mkstemp's 0600); kept under this name because calibrate/ imports it from here.
"""

from __future__ import annotations

import os


def write_atomically(path: str | os.PathLike, write_fn) -> None:
    """``write_fn(tmp_path)``, then rename into ``path`` (a crash never leaves half a file)."""
    from ..io_utils import atomic_write

    atomic_write(path, write_fn)
