"""The CPU peak yardstick of `bench`: measured figures, ISA-gated INT8/BF16, efficiency arithmetic."""

import pytest

from dramnet_edge.bench.peak import efficiency, gemm_peak, peak_for


def test_gemm_peak_measures_fp32_and_gates_int8_bf16_on_the_isa():
    full = gemm_peak(n=128, min_seconds=0.02, isa=["avx2", "avx512_vnni", "avx512_bf16"])
    assert full["fp32_gflops"] > 0 and full["bf16_gflops"] > 0 and full["int8_gops"] > 0 and not full["notes"]
    plain = gemm_peak(n=128, min_seconds=0.02, isa=["avx2"])
    assert plain["fp32_gflops"] > 0 and plain["bf16_gflops"] is None and plain["int8_gops"] is None
    assert "not expected to beat FP32" in plain["notes"]["int8"] and "BF16" in plain["notes"]["bf16"]
    with pytest.raises(ValueError, match="GEMM size must be >= 64, got 8"):
        gemm_peak(n=8)


def test_efficiency_uses_the_peak_of_the_precision():
    peak = {"fp32_gflops": 100.0, "bf16_gflops": 200.0, "int8_gops": 400.0}
    assert peak_for("int8", peak) == (400.0, "INT8") and peak_for("fp16", peak) == (100.0, "FP32")
    e = efficiency(0.5, 20.0, "int8", peak)  # 10 GMAC/s = 20 GOP/s
    assert e == {"gmac_per_s": 10.0, "peak_name": "INT8", "share_of_peak_pct": 5.0, "share_of_fp32_peak_pct": 20.0}
    assert efficiency(0.5, 20.0, "int8", {"fp32_gflops": 100.0, "int8_gops": None})["peak_name"] == "FP32"
    with pytest.raises(ValueError, match="gmacs_per_tile > 0"):
        efficiency(0.0, 1.0, "fp32", peak)


def test_gemm_peak_runs_at_the_asked_threads_and_restores_torch_setting():
    import torch

    before = torch.get_num_threads()
    p = gemm_peak(n=128, min_seconds=0.02, threads=1)
    assert p["threads"] == 1 and torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads must be >= 1, got 0"):
        gemm_peak(threads=0)
