"""This CPU's matrix-multiply peak, measured in the running process: the yardstick for a model's efficiency.

``gemm_peak()`` times square matrix products with torch's CPU kernels (oneDNN/MKL) at the current thread count:
FP32 always, BF16 where the CPU has native BF16 (``avx512_bf16`` or ``amx_bf16``) and INT8 (``torch._int_mm``, s8 x s8
-> s32) where it has INT8 dot products (``avx512_vnni``, ``avx_vnni`` or ``amx_int8``). Without those instructions
the kernels still run, by emulation, and a "peak" measured that way would flatter an INT8 or BF16 model: the
figure is then None with the reason. ``efficiency()`` turns a model's MACs per tile and its measured tiles per
second into achieved GMAC/s and the share of a peak (2 FLOPs per MAC).

Timings on a shared machine are lower bounds of the peak; ``dramnet-edge bench`` measures it in the same run as
the models, so their share compares like with like.
"""

from __future__ import annotations

import time

from .device import cpu_isa

BF16_FLAGS = ("avx512_bf16", "amx_bf16")
INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def _rate(fn, ops: float, min_seconds: float) -> float:
    """Best ops/s over repeated calls of ``fn`` (after one warm-up) for at least ``min_seconds``."""
    fn()
    best, spent = float("inf"), 0.0
    while spent < min_seconds or best == float("inf"):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
    return ops / best


def gemm_peak(n: int = 1024, min_seconds: float = 0.3, isa: list[str] | None = None,
              threads: int | None = None) -> dict:
    """{"threads", "n", "fp32_gflops", "bf16_gflops", "int8_gops", "isa", "notes"} for n x n x n products, at
    ``threads`` torch threads (default: torch's current setting, which is restored afterwards).

    Raises ValueError for n < 64, min_seconds <= 0 or threads < 1."""
    import torch

    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _gemm_peak(n, min_seconds, isa)
    finally:
        torch.set_num_threads(before)


def _gemm_peak(n: int, min_seconds: float, isa: list[str] | None) -> dict:
    import torch

    if n < 64:
        raise ValueError(f"GEMM size must be >= 64, got {n}")
    if min_seconds <= 0:
        raise ValueError(f"min_seconds must be > 0, got {min_seconds}")
    isa = cpu_isa() if isa is None else list(isa)
    ops = 2.0 * n ** 3
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g)
    b = torch.randn(n, n, generator=g)
    out = {"threads": torch.get_num_threads(), "n": n, "isa": isa, "notes": {}}
    with torch.inference_mode():
        out["fp32_gflops"] = round(_rate(lambda: torch.mm(a, b), ops, min_seconds) / 1e9, 1)
        if any(f in isa for f in BF16_FLAGS):
            a16, b16 = a.bfloat16(), b.bfloat16()
            out["bf16_gflops"] = round(_rate(lambda: torch.mm(a16, b16), ops, min_seconds) / 1e9, 1)
        else:
            out["bf16_gflops"] = None
            out["notes"]["bf16"] = f"no native BF16 on this CPU (none of {', '.join(BF16_FLAGS)})"
        int_mm = getattr(torch, "_int_mm", None)
        if not any(f in isa for f in INT8_FLAGS):
            out["int8_gops"] = None
            out["notes"]["int8"] = (f"no INT8 dot-product instructions on this CPU (none of {', '.join(INT8_FLAGS)}): "
                                    "INT8 inference is not expected to beat FP32 here")
        elif int_mm is None:
            out["int8_gops"] = None
            out["notes"]["int8"] = "this torch has no _int_mm to measure INT8 GEMM with"
        else:
            a8 = torch.randint(-128, 128, (n, n), dtype=torch.int8, generator=g)
            b8 = torch.randint(-128, 128, (n, n), dtype=torch.int8, generator=g)
            out["int8_gops"] = round(_rate(lambda: int_mm(a8, b8), ops, min_seconds) / 1e9, 1)
    return out


def peak_for(precision: str, peak: dict) -> tuple[float | None, str]:
    """(ops/s in G, its name) of the peak a backend of this precision should be judged against: INT8 artifacts
    against the INT8 peak where it was measured, BF16 against BF16, everything else against FP32."""
    if precision == "int8" and peak.get("int8_gops"):
        return peak["int8_gops"], "INT8"
    if precision == "bf16" and peak.get("bf16_gflops"):
        return peak["bf16_gflops"], "BF16"
    return peak.get("fp32_gflops"), "FP32"


def efficiency(gmacs_per_tile: float, tiles_per_s: float, precision: str, peak: dict) -> dict:
    """Achieved GMAC/s of a run and its share of the matching peak and of the FP32 peak (in %, 2 FLOPs per MAC)."""
    if gmacs_per_tile <= 0 or tiles_per_s < 0:
        raise ValueError(f"need gmacs_per_tile > 0 and tiles_per_s >= 0, got {gmacs_per_tile}, {tiles_per_s}")
    achieved = gmacs_per_tile * tiles_per_s
    ref, ref_name = peak_for(precision, peak)
    fp32 = peak.get("fp32_gflops")
    return {"gmac_per_s": round(achieved, 2),
            "peak_name": ref_name,
            "share_of_peak_pct": round(100 * 2 * achieved / ref, 1) if ref else None,
            "share_of_fp32_peak_pct": round(100 * 2 * achieved / fp32, 1) if fp32 else None}
