"""The quality benchmark (benchmarks/real_photo_gain.py): held-out photos, the tuned peer, the targets."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import real_photo_gain as bench  # noqa: E402


def test_unsharp_peer_sharpens_and_is_finite():
    """The peer is scikit-image's unsharp mask with channel_axis=2: with -1, scikit-image 0.26 leaves most of the output
    uninitialised (NaN or garbage); this would catch a return to that."""
    from dramnet_edge.data import kernels
    from dramnet_edge.data.families import load_photo

    sharp = bench.quantise(bench.centre_crop(load_photo("camera"), 96))
    blurred = kernels.record(kernels.blur(sharp, kernels.gaussian_psf(1.5), "linear"))
    out = bench.unsharp(blurred, 1.5, 1.0)
    assert np.isfinite(out).all() and out.shape == blurred.shape
    assert bench.psnr(out, sharp) > bench.psnr(blurred, sharp) + 0.3


def test_benchmark_runs_and_scores_an_identity_model(tmp_path):
    from dramnet_edge.models import create_model
    from dramnet_edge.models.checkpoint import save_weights

    torch.manual_seed(0)
    ckpt = tmp_path / "tiny.safetensors"
    save_weights(create_model("dramnet_tiny", tile=112, memory_saving=False), ckpt)  # zero head: returns its input
    out = tmp_path / "q.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "real_photo_gain.py"), "--checkpoint", str(ckpt),
                           "--photos", "camera", "--families", "gaussian,motion", "--variants", "clean",
                           "--max-side", "112", "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "TARGETS for dramnet_tiny" in proc.stdout and "FAIL  mean gain >= +2.5 dB" in proc.stdout
    q = json.loads(out.read_text())
    label = q["models"][0]["label"]
    assert set(q["per_family"]) == {"gaussian", "motion"} and len(q["rows"]) == 2 * 2  # 2 families x 2 spaces
    assert abs(q["overall"]["all"][label]["gain_db"]) < 0.01  # the identity gains nothing
    assert q["unblurred"][label]["min_psnr"] == 100.0  # and returns a sharp photo untouched
    assert q["per_family"]["gaussian"]["usm_gain_db"] > 0.3  # the tuned peer does sharpen
    assert {"radius", "amount"} <= set(q["unsharp_mask"]["gaussian/clean"])


def test_benchmark_refuses_a_training_photo():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "real_photo_gain.py"), "--photos", "brick"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--photos: brick not accepted" in proc.stderr
