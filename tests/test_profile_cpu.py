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


def test_counter_books_flops_and_bytes_of_an_op_to_its_part():
    import torch

    mod = _module()
    conv = torch.nn.Conv2d(4, 8, 3)
    counter = mod._Counter()
    counter.hook(conv, "a conv")
    x = torch.rand(2, 4, 16, 16)
    with torch.inference_mode(), counter.mode():
        y = conv(x)
        y.view(-1)  # a view moves nothing
        z = y + 1.0  # outside every part: runtime
    assert counter.flops["a conv"] == 2 * (2 * 8 * 14 * 14) * (4 * 9)
    assert counter.bytes["a conv"] == 4 * (x.numel() + conv.weight.numel() + conv.bias.numel() + y.numel())
    assert counter.flops[mod.REST[None]] == 0 and counter.bytes[mod.REST[None]] == 4 * (y.numel() + z.numel())


def test_roofline_rows_count_every_flop_and_render():
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    mod = _module()
    net, _ = load_model(default_checkpoint("dramnet_tiny"))
    net.eval()
    parts_s = {label: 0.01 for label in ["gate: stem convs", "decoder: STM core", "decoder: head",
                                         "encoder: ViT attention", mod.REST["_decode_total"]]}
    r = mod.roofline_torch(net, parts_s, tiles=4, batch=2)
    rows = r["parts"]
    assert set(rows) <= set(parts_s) and "decoder: STM core" in rows
    for v in rows.values():
        assert v["gbytes"] > 0 and v["bound_gflops"] <= r["fp32_peak_gflops"] + 1e-9
        assert v["memory_bound"] == (v["flop_per_byte"] < r["ridge_flop_per_byte"])
    # the counter's FLOPs over all parts equal torch's own count of the same passes (x 2 for tiles=4 / batch=2)
    x = torch.rand(2, 3, net.tile, net.tile)
    counter = mod._Counter()
    mod._instrument(net, counter)
    with FlopCounterMode(display=False) as ref, torch.inference_mode(), counter.mode():
        stem, blur = net.gate_features(x)
        net.decode(x, net.encode_levels(x, stem), blur, None)
    assert sum(counter.flops.values()) == pytest.approx(ref.get_total_flops(), rel=1e-9)
    assert r["copy_bandwidth_gbs"] > 0
    text = "\n".join(mod._roofline_table(r))
    assert "| decoder: STM core |" in text and "FLOP/byte" in text
