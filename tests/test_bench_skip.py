"""The skip exit: the gate (stem + first BME block) scores tiles before the ViT; tiles below tau_skip come back
unchanged; tau_skip None or 0 is exactly the no-exit output; the three paths compose with the paper's light exit."""

import numpy as np
import pytest
import torch

from dramnet_edge.models import create_model
from dramnet_edge.models.dramnet import PATH_FULL, PATH_LIGHT, PATH_SKIP
from dramnet_edge.runtime.session import TorchSession
from dramnet_edge.runtime.tiling import deblur_image


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    net = create_model("dramnet_tiny", tile=112).eval()
    # Random init leaves the STM residual scales at exactly 0; give them values so the paths really differ.
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith(("beta", "gamma")) and "decoder" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        # The output head is zero-initialised (an untrained DRAMNet returns its input), which would make "returned
        # as input" indistinguishable from "restored"; a random head makes every path change its tiles.
        net.head.weight.copy_(torch.randn(net.head.weight.shape, generator=g) * 0.05)
        net.head.bias.copy_(torch.randn(net.head.bias.shape, generator=g) * 0.01)
    return net


@pytest.fixture(scope="module")
def tiles():
    g = torch.Generator().manual_seed(2)
    return torch.rand(6, 3, 112, 112, generator=g)


def _scores(net, x):
    with torch.no_grad():
        return net.gate(x).flatten(1).amax(1)


def test_gate_equals_the_encoders_finest_blur_map(tiny, tiles):
    with torch.no_grad():
        blur = tiny.encode(tiles)[1][0]
        stem, gate = tiny.gate_features(tiles)
        levels = tiny.encode_levels(tiles, stem)
        ref_levels = tiny.encode(tiles)[0]
    assert torch.equal(gate, blur)
    for a, b in zip(levels, ref_levels):
        assert torch.equal(a, b)


@pytest.mark.parametrize("tau_skip", [None, 0.0])
def test_no_skip_threshold_is_identical_to_no_exit(tiny, tiles, tau_skip):
    with torch.no_grad():
        ref = tiny(tiles).numpy()
    session = TorchSession(tiny, tau_skip=tau_skip)
    out, exited = session.infer(tiles.numpy(), None)
    np.testing.assert_array_equal(out, ref)
    assert not exited.any()
    assert session.path_counts == {"full": len(tiles), "light": 0, "skip": 0}


def test_tiles_below_the_threshold_are_returned_as_input(tiny, tiles):
    scores = _scores(tiny, tiles)
    tau_skip = float(scores.sort().values[2])  # the 2 lowest tiles skip
    skip = (scores < tau_skip).numpy()
    assert skip.sum() == 2
    with torch.no_grad():
        ref = tiny(tiles).numpy()
    out, exited = TorchSession(tiny, tau_skip=tau_skip).infer(tiles.numpy(), None)
    np.testing.assert_array_equal(out[skip], tiles.numpy()[skip])
    np.testing.assert_allclose(out[~skip], ref[~skip], atol=1e-5)
    np.testing.assert_array_equal(exited, skip)
    assert not np.allclose(ref[skip], tiles.numpy()[skip], atol=1e-3)  # the model would have changed them


def test_three_paths_match_the_models_forward(tiny, tiles):
    scores = _scores(tiny, tiles).sort().values
    tau_skip, tau = float(scores[1]), float(scores[4])  # 1 skip, 3 light, 2 full
    with torch.no_grad():
        paths = tiny.exit_paths(tiny.gate(tiles), tau, tau_skip)
        tiny.tau, tiny.tau_skip = tau, tau_skip
        ref = tiny(tiles).numpy()
        tiny.tau = tiny.tau_skip = None
    assert sorted(paths.tolist()) == [PATH_FULL] * 2 + [PATH_LIGHT] * 3 + [PATH_SKIP]
    session = TorchSession(tiny, tau_skip=tau_skip)
    out, exited = session.infer(tiles.numpy(), tau)
    np.testing.assert_allclose(out, ref, atol=1e-5)
    assert session.path_counts == {"full": 2, "light": 3, "skip": 1}
    np.testing.assert_array_equal(exited, (paths != PATH_FULL).numpy())


def test_skip_wins_over_light_when_both_hold(tiny, tiles):
    scores = _scores(tiny, tiles)
    with torch.no_grad():
        paths = tiny.exit_paths(tiny.gate(tiles), 1.0, 1.0)
    assert (paths == PATH_SKIP).all()
    out, _ = TorchSession(tiny, tau_skip=1.0).infer(tiles.numpy(), 1.0)
    np.testing.assert_array_equal(out, tiles.numpy())
    assert float(scores.max()) < 1.0


def test_forward_without_thresholds_is_unchanged(tiny, tiles):
    with torch.no_grad():
        levels, blur_maps, _ = tiny.encode(tiles)
        ref = tiny.decode(tiles, levels, blur_maps[0], None)
        assert tiny.tau is None and tiny.tau_skip is None
        assert torch.equal(tiny(tiles), ref)


def test_tiled_image_with_every_tile_skipped_is_the_input(tiny):
    img = np.random.default_rng(3).random((3, 150, 200), dtype=np.float32)
    out, stats = deblur_image(TorchSession(tiny, tau_skip=1.0), img, overlap=16)
    np.testing.assert_allclose(out, img, atol=1e-6)
    assert stats.exited == stats.tiles > 1
