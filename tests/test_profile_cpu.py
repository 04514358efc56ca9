"""benchmarks/profile_cpu.py: the torch part timers cover the frame without double counting."""


import numpy as np
import pytest
from conftest import load_benchmark

from dramnet_edge.models.builder import load_model
from dramnet_edge.weights import default_checkpoint

def _module():
    return load_benchmark("profile_cpu")


def test_torch_parts_add_up_to_the_frame_and_markdown_renders():
    mod = _module()
    net, _ = load_model(default_checkpoint("dramnet_tiny"))
    frame = np.random.default_rng(0).random((3, 150, 200), dtype=np.float32)
    r = mod.profile_torch(net.eval(), frame, repeat=1)
    parts = r["parts"]
    assert all(v >= 0 for v in parts.values()), parts
    assert sum(parts.values()) == pytest.approx(r["frame_s"], rel=1e-6)  # parts partition the frame
    assert parts["decoder: Fourier expert (DFT matmuls)"] > 0 and parts["encoder: ViT attention"] > 0
    assert r["model_s"] <= r["frame_s"]
    text = mod.markdown({"frame": "200x150", "tile": 112, "tiles": 4, "repeat": 1, "model": "dramnet_tiny",
                         "weights": "w", "threads": 1, "cpu": {"model": "cpu", "isa": ["avx2"], "logical_cpus": 2},
                         "versions": {"torch": "x"}, "backends": {"torch": r, "openvino": {"error": "not installed"}}})
    assert "| decoder: STM core |" in text and "not profiled (not installed)" in text
