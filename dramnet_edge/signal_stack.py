"""A per-thread alternate signal stack that native runtimes cannot free from under Python.

Why (docs/training.md, "DataLoader workers after ONNX Runtime/OpenVINO"): OpenVINO's CPU plugin
(``libopenvino_intel_cpu_plugin.so``, class ``SigAltStackSetup``) installs its own mmap'd alternate signal stack on
the thread that creates the plugin (one plugin per ``ov.Core`` that compiles for CPU), remembering the previous
one. When the plugin is destroyed it restores the remembered stack only if its own is still the current one on the
destroying thread, and unmaps its own in every case. So two plugins released first-in-first-out (a session with
several compiled graphs, NNCF's internal cores), or one released on another thread, leave the thread's alternate
signal stack pointing at unmapped memory (or at whatever is mapped there later). CPython installs every Python-level
signal handler with ``SA_ONSTACK``, so the next such signal on that thread cannot be delivered: the kernel kills the
process with SIGSEGV (``si_code`` SI_KERNEL) and faulthandler, which needs the same stack, prints nothing. The usual
trigger is SIGCHLD from an exiting DataLoader worker (torch installs a Python SIGCHLD handler for worker processes);
Ctrl-C or a subprocess exiting after that do it too.

``pin_signal_stack()`` gives the calling thread its own stack, allocated once and never freed, and makes it
current. A plugin alive at that moment no longer owns the current stack, so its destructor only unmaps its own;
plugins created afterwards remember the pinned stack, which stays valid. Linux only (a no-op elsewhere).
"""

from __future__ import annotations

import ctypes
import mmap
import sys
import threading

# Generous on purpose: the signal frame holds the full XSAVE area (about 3.4 KB with AVX-512, 11 KB once AMX is
# enabled, which OpenVINO does on AMX Xeons), and the handler runs C code on top of it. Pages are touched only when
# a signal is delivered.
STACK_BYTES = 256 * 1024
SS_DISABLE = 2

_lock = threading.Lock()
_stacks: dict[int, tuple[mmap.mmap, ctypes.c_char, int]] = {}  # thread ident -> (buffer, pinning view, address)
_libc = None


class _StackT(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


def _sigaltstack(new: _StackT | None) -> _StackT:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    old = _StackT()
    if _libc.sigaltstack(ctypes.byref(new) if new is not None else None, ctypes.byref(old)) != 0:
        raise OSError(ctypes.get_errno(), "sigaltstack failed")
    return old


def _mapped(address: int) -> bool:
    with open("/proc/self/maps") as f:
        for line in f:
            lo, hi = (int(x, 16) for x in line.split(None, 1)[0].split("-"))
            if lo <= address < hi:
                return True
    return False


def current_signal_stack() -> dict | None:
    """The calling thread's alternate signal stack: {"address", "size", "enabled", "mapped", "pinned"}; None off
    Linux. "mapped" only says that something is mapped at the address now: the pages of a stack that OpenVINO
    released are soon re-used by other mappings, so a dangling stack can read as mapped (and signal frames would
    then overwrite that memory)."""
    if not sys.platform.startswith("linux"):
        return None
    st = _sigaltstack(None)
    address = st.ss_sp or 0
    enabled = not st.ss_flags & SS_DISABLE
    own = _stacks.get(threading.get_ident())
    return {"address": address, "size": int(st.ss_size), "enabled": enabled,
            "mapped": bool(enabled and _mapped(address)), "pinned": own is not None and own[2] == address}


def pin_signal_stack() -> str | None:
    """Make the calling thread's own never-freed alternate signal stack the current one. Returns None when it
    already was (or off Linux), else one line saying what it replaced (for a log)."""
    if not sys.platform.startswith("linux"):
        return None
    with _lock:
        ident = threading.get_ident()
        if ident not in _stacks:
            buf = mmap.mmap(-1, STACK_BYTES, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            view = ctypes.c_char.from_buffer(buf)  # the exported buffer also keeps the mapping from being closed
            _stacks[ident] = (buf, view, ctypes.addressof(view))
        address = _stacks[ident][2]
        before = current_signal_stack()
        if before["pinned"]:
            return None
        try:
            _sigaltstack(_StackT(address, 0, STACK_BYTES))
        except OSError as e:  # e.g. EPERM while running on the alternate stack: leave it, say so
            return f"could not pin an alternate signal stack for this thread ({e})"
    if not before["enabled"]:
        state = "none"
    else:
        # "mapped" does not prove the old stack alive: a released plugin's pages can be re-used by a later mapping.
        state = (f"{before['size']} B at 0x{before['address']:x}, "
                 + ("mapped" if before["mapped"] else "UNMAPPED: the next Python signal handler would have crashed"))
    return f"pinned a {STACK_BYTES // 1024} KiB alternate signal stack for this thread (was: {state})"
