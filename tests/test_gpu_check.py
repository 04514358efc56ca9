"""benchmarks/gpu_check.py runs every section on the CPU in --smoke mode (so it is known to work before device time
is spent) and its report says what each section measured."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_smoke_runs_every_section(tmp_path):
    out = tmp_path / "report"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--out", str(out), "--smoke"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    sections = report["sections"]
    assert set(sections) == {"env", "parity", "train_default", "train_bench", "infer", "early_exit"}
    assert all(s["status"] == "ok" for s in sections.values()), {k: s.get("error") for k, s in sections.items()}
    parity = sections["parity"]["result"]["rows"][0]
    # CPU vs CPU in the smoke: identical; the randomised model really changes its input (not the zero head's identity)
    assert parity["fp32_max_abs_diff_vs_cpu"] == 0.0 and parity["residual_rms"] > 1e-3
    train = sections["train_default"]["result"]
    assert train["finished"] and train["iters"] >= 2 and (out / "model.safetensors").is_file()
    bench = sections["train_bench"]["result"]["rows"]
    assert {r["stage"] for r in bench} == {"deblur", "depth"} and all(r["steps_per_s"] > 0 for r in bench)
    infer = sections["infer"]["result"]["rows"]
    assert {r["precision"] for r in infer} == {"fp32", "fp16", "bf16"} and all(r["p50_ms"] > 0 for r in infer)
    ee = sections["early_exit"]["result"]["rows"]
    assert ee[0]["policy"] == "none" and ee[0]["speedup"] == 1.0
    assert len(list(out.iterdir())) <= 8  # what the device tool can bring back
    assert "## train_default (ok" in (out / "report.md").read_text()
