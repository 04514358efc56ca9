"""CoreML W8A8 through coremltools' torch-side LinearQuantizer, calibrated on Linux; prediction needs macOS.

DRAMNet's Python-side input checks skip themselves while a graph is captured (FX, jit.trace, torch.export) and still
raise in eager mode; ``trace_static`` gives LinearQuantizer a flat FX graph of each split graph with its shape
arithmetic resolved on the example inputs. The whole ``export --target coreml --int8`` is tested in
test_export_onnx.py (it reuses that module's checkpoint).
"""

import platform

import numpy as np
import pytest
import torch
import torch.nn as nn

pytest.importorskip("coremltools")

from dramnet_edge.calibrate.coreml_w8a8 import (calibration_inputs, convert_coreml_w8a8,  # noqa: E402
                                                prepare_w8a8, sensitive_modules, trace_static)
from dramnet_edge.export.fold import example_inputs, fold_model, split_graphs  # noqa: E402
from dramnet_edge.export.sidecar import parity_photos  # noqa: E402
from dramnet_edge.models import create_model  # noqa: E402
from dramnet_edge.models.dram_blocks import FourierExpert, HaarDWT  # noqa: E402

from test_export_fold import trained_like  # noqa: E402

TILE = 112


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def folded():
    torch.manual_seed(0)
    net = trained_like(create_model("dramnet_tiny", tile=TILE, num_columns=1))
    with torch.no_grad():  # the zero-initialised head would make every decoder output equal its input
        net.head.weight.copy_(torch.randn(net.head.weight.shape, generator=torch.Generator().manual_seed(2)) * 0.05)
    return fold_model(net, "dft")


class _Toy(nn.Module):
    """FX-traceable stand-in with DRAMNet's residual output: x + conv(relu(conv(x)))."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x):
        return x + self.b(torch.relu(self.a(x)))


def test_input_checks_skip_while_a_graph_is_captured_and_hold_in_eager():
    net = create_model("dramnet_tiny", tile=TILE, num_columns=1).eval()

    class Checked(nn.Module):
        def forward(self, x):
            net._check_input(x)
            return x * 2

    with pytest.raises(ValueError, match="DRAMNet expects"):
        Checked()(torch.zeros(1, 3, 100, 100))
    with pytest.raises(ValueError, match="Haar DWT needs an even"):
        HaarDWT(2)(torch.zeros(1, 2, 5, 6))
    with pytest.raises(ValueError, match="BME input"):
        net.blur_map(torch.zeros(1, net.config.stem_channels, 100, 100))
    levels = [torch.zeros(1, w, 56 >> i, 56 >> i) for i, w in enumerate(net.config.widths)]
    with pytest.raises(ValueError, match="level 1 must have shape"):
        net.decoder([levels[0], levels[0], *levels[2:]], torch.zeros(1, 1, 4, 4))
    # FX symbolic tracing cannot evaluate these checks (control flow on proxies): they must be skipped, not traced
    x = torch.rand(1, 3, TILE, TILE)
    assert torch.equal(torch.fx.symbolic_trace(Checked())(x), x * 2)
    stem = torch.rand(1, net.config.stem_channels, TILE, TILE)
    bme = torch.fx.symbolic_trace(net.blur_map)
    assert all(torch.equal(a, b) for a, b in zip(bme(stem), net.blur_map(stem)))
    y = torch.rand(1, 2, 6, 8)
    assert torch.equal(torch.fx.symbolic_trace(HaarDWT(2))(y), HaarDWT(2)(y))


def test_static_trace_reproduces_every_split_graph_on_new_inputs(folded):
    graphs = split_graphs(folded)
    for name, graph in graphs.items():
        ex = example_inputs(graph, folded, 1)
        leaves = [n for n, k in sensitive_modules(graph).items() if k == "dft"]
        traced = trace_static(graph, ex, leaves)
        assert not [n for n in traced.graph.nodes if n.op == "call_method" and n.target in ("size", "dim")], name
        if name not in ("encoder", "gate"):  # the Fourier experts stay single calls, themselves statically traced
            called = {n.target for n in traced.graph.nodes if n.op == "call_module"}
            assert leaves and set(leaves) <= called, name
            assert all(isinstance(traced.get_submodule(n), torch.fx.GraphModule) for n in leaves)
        # the graph is specialised to the example's shapes, not to its values
        x = torch.rand(ex[0].shape, generator=torch.Generator().manual_seed(5))
        inputs = (x,) if len(ex) == 1 else (x, *split_graphs(folded)["encoder"](x))
        with torch.no_grad():
            ref, out = graph(*inputs), traced(*inputs)
        ref, out = (ref, out) if isinstance(ref, tuple) else ((ref,), (out,))
        assert all(torch.equal(a, b) for a, b in zip(ref, out)), name


def test_w8a8_keeps_the_sensitive_layers_float_and_quantizes_the_rest(folded):
    graph = split_graphs(folded)["decoder_full"]
    x = torch.from_numpy(parity_photos(TILE))  # 3 photos: ranges from two, the third held out
    with torch.no_grad():
        enc = split_graphs(folded)["encoder"](x)
    batches = [(x[i : i + 1], *(e[i : i + 1] for e in enc)) for i in range(2)]
    finalized, kept = prepare_w8a8(graph, batches[0], batches)
    assert set(kept.values()) == {"dft", "last_conv"} and "net.head" in kept
    modules = dict(finalized.named_modules())
    quantized = [n for n, m in modules.items() if "quantized.reference" in type(m).__module__]
    assert len(quantized) >= 20  # STM, wavelet, mixer, attention projections, up/down sampling convs
    assert not [n for n in quantized if ".fourier." in n or n == "net.head"]
    assert type(modules["net.head"]) is nn.Conv2d
    spectral = [m for n, m in modules.items() if ".fourier.spectral." in n and isinstance(m, nn.Conv2d)]
    assert len(spectral) == 8 and all(type(m) is nn.Conv2d for m in spectral)  # 4 levels x 2, float
    # held out: the third photo. These random weights are no deblurring network (outputs span about [-3, 3]), so
    # 8-bit activations cost more than on a trained model: ~29 dB here, ~28.5 with nothing kept float.
    everything, _ = prepare_w8a8(graph, batches[0], batches, keep_float=False)
    inputs = (x[2:], *(e[2:] for e in enc))
    with torch.no_grad():
        ref = graph(*inputs).clamp(0, 1)
        psnr = [float(10 * torch.log10(1 / torch.mean((m(*inputs).clamp(0, 1) - ref) ** 2)))
                for m in (finalized, everything)]
    assert all(np.isfinite(psnr)) and psnr[0] > 25.0 and psnr[0] > psnr[1], psnr
    with pytest.raises(ValueError, match="calibration batch 1 has input shapes"):
        prepare_w8a8(graph, batches[0], [batches[0], tuple(t.repeat(2, 1, 1, 1) for t in batches[1])])


def test_w8a8_package_converts_with_activation_quantization(tmp_path):
    torch.manual_seed(0)
    tiles = np.random.default_rng(0).random((4, 3, 32, 32), dtype=np.float32)
    info, finalized = convert_coreml_w8a8(_Toy().eval(), (torch.from_numpy(tiles[:2]),), calibration_inputs(tiles, 2),
                                          tmp_path / "toy.mlpackage", input_names=("x",), output_names=("image",))
    assert info["minimum_deployment_target"] == "iOS17" and info["kept_float"] == {}
    assert info["activation_quantize_ops"] >= 2 and info["weight_dequantize_ops"] >= 2  # A8 and W8
    assert (tmp_path / "toy.mlpackage").is_dir()
    assert [t.shape[0] for (t,) in calibration_inputs(tiles[:3], 2)] == [2, 2]  # the last batch is padded


@pytest.mark.macos
@pytest.mark.skipif(platform.system() != "Darwin", reason="CoreML prediction needs macOS")
def test_w8a8_prediction_is_close_to_torch(tmp_path):
    import coremltools as ct

    torch.manual_seed(0)
    net = _Toy().eval()
    tiles = np.random.default_rng(0).random((4, 3, 32, 32), dtype=np.float32)
    path = tmp_path / "toy.mlpackage"
    convert_coreml_w8a8(net, (torch.from_numpy(tiles[:1]),), calibration_inputs(tiles, 1), path,
                        input_names=("x",), output_names=("image",))
    out = ct.models.MLModel(str(path)).predict({"x": tiles[:1]})["image"]
    with torch.no_grad():
        ref = net(torch.from_numpy(tiles[:1])).numpy()
    assert np.abs(out - ref).max() < 0.05


def test_activation_ranges_cover_every_calibration_tile_not_the_first():
    # coremltools/optimize/torch/quantization/quantization_config.py: the default observer is
    # moving_average_min_max (torch's MovingAverageMinMaxObserver, averaging_constant 0.01), so with one-tile
    # batches the first tile sets the range. A dim first tile then clips every brighter one; min_max does not.
    torch.manual_seed(0)
    toy = _Toy().eval()
    ramp = torch.linspace(0, 1, 16 * 16).reshape(1, 1, 16, 16).repeat(1, 3, 1, 1)
    batches = [(0.1 * ramp,)] + [(ramp,)] * 7  # the dim tile first, as a stratified set may order them
    with torch.no_grad():
        ref = toy(ramp)
        errors = {obs: float((prepare_w8a8(toy, batches[0], batches, activation_observer=obs)[0](ramp) - ref)
                             .abs().max()) for obs in ("min_max", "moving_average_min_max")}
    assert errors["min_max"] < 0.05 < errors["moving_average_min_max"], errors
