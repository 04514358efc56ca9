"""Whether a graph is being captured (FX, TorchScript trace, torch.export / torch.compile) rather than run.

DRAMNet's modules skip their Python-side input checks while a graph is captured (see ``capturing_graph``).
"""

from __future__ import annotations

import torch


def capturing_graph() -> bool:
    """True while a graph is being captured rather than run: ``torch.fx`` symbolic tracing (coremltools'
    LinearQuantizer, FX quantization), ``torch.jit.trace``, ``torch.export`` / ``torch.compile``.

    The Python-side input checks of DRAMNet's modules are skipped then: under FX they are control flow on proxies,
    which cannot be traced at all, and a captured graph has its shapes fixed by the example inputs anyway. Eager
    calls (training, the torch runtime) keep every check.
    """
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return True
    fx = torch.fx._symbolic_trace
    # is_fx_symbolic_tracing excludes torch.export (covered above); older torch only has is_fx_tracing.
    return fx.is_fx_symbolic_tracing() if hasattr(fx, "is_fx_symbolic_tracing") else fx.is_fx_tracing()
