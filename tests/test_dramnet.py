"""DRAMNet assembly: every registered variant builds; tiny runs forward/backward on CPU; early exit; tiling."""

import numpy as np
import pytest
import torch

from dramnet_edge.models import create_model, list_models
from dramnet_edge.models.summary import param_report
from dramnet_edge.runtime.session import TorchSession
from dramnet_edge.runtime.tiling import deblur_image


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = create_model("dramnet_tiny", tile=112).eval()
    # The head is zero-initialised (an untrained model returns its input); give it weights so the
    # decoder paths can be told apart by their outputs.
    torch.nn.init.normal_(model.head.weight, std=0.05)
    return model


def test_registry_lists_every_variant():
    names = set(list_models())
    assert {"dramnet_tiny", "dramnet_s", "dramnet_b", "dramnet_l", "aibnet_s", "aibnet_b", "aibnet_l"} <= names


def test_unknown_model_names_the_valid_ones():
    with pytest.raises(ValueError, match="dramnet_tiny"):
        create_model("dramnet_xl")


def test_unknown_override_is_rejected():
    with pytest.raises(ValueError, match="colour"):
        create_model("dramnet_tiny", colour=3)


def test_untrained_model_returns_its_input():
    model = create_model("dramnet_tiny", tile=112).eval()
    x = torch.rand(1, 3, 112, 112)
    with torch.no_grad():
        assert torch.equal(model(x), x)


def test_tiny_forward_backward_no_nan(tiny):
    model = create_model("dramnet_tiny", tile=112).train()
    x = torch.rand(2, 3, 112, 112)
    out = model.forward_train(x)
    assert out["image"].shape == x.shape
    assert out["depth"].shape == (2, 1, 112, 112)
    assert [m.shape[-1] for m in out["blur_maps"]] == [8, 4, 2, 1]
    loss = out["image"].abs().mean() + out["depth"].mean() + sum(m.mean() for m in out["blur_maps"])
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert torch.isfinite(out["image"]).all()


def test_wrong_tile_size_is_a_clear_error(tiny):
    with pytest.raises(ValueError, match="112"):
        tiny(torch.rand(1, 3, 100, 100))


@pytest.mark.parametrize("name,encoder_m,total_min,total_max", [
    ("dramnet_s", 22.0, 23.5, 40.0), ("dramnet_b", 86.5, 90.0, 140.0), ("dramnet_l", 304.0, 310.0, 420.0)])
def test_big_variants_by_parameter_count_on_meta(name, encoder_m, total_min, total_max):
    with torch.device("meta"):
        model = create_model(name)
    report = param_report(model)
    vit = sum(p.numel() for p in model.encoder.parameters()) / 1e6
    assert abs(vit - encoder_m) / encoder_m < 0.02, vit
    assert 0.40e6 < report["blur_map"] < 0.48e6, report["blur_map"]
    assert total_min < report["total"] / 1e6 < total_max, report


def test_dramnet_s_forward_on_cpu_is_finite():
    torch.manual_seed(0)
    model = create_model("dramnet_s").eval()
    with torch.no_grad():
        y = model(torch.rand(1, 3, 224, 224))
    assert y.shape == (1, 3, 224, 224) and torch.isfinite(y).all()


def test_early_exit_changes_only_tiles_below_tau(tiny):
    x = torch.rand(3, 3, 112, 112)
    with torch.no_grad():
        _, blur_maps, _ = tiny.encode(x)
        scores = blur_maps[0].flatten(1).amax(1)
        tau = float(scores.sort().values[1]) + 1e-6  # between the 2nd and 3rd scores: two tiles exit
        tiny.tau = None
        full = tiny(x)
        tiny.tau = tau
        mixed = tiny(x)
        tiny.tau = None
    exit_mask = scores < tau
    assert int(exit_mask.sum()) == 2
    assert torch.allclose(mixed[~exit_mask], full[~exit_mask], atol=1e-6)
    assert not torch.allclose(mixed[exit_mask], full[exit_mask], atol=1e-6)


def test_session_dispatch_matches_model_forward(tiny):
    x = torch.rand(4, 3, 112, 112)
    with torch.no_grad():
        scores = tiny.encode(x)[1][0].flatten(1).amax(1)
        tau = float(scores.median()) + 1e-6
        tiny.tau = tau
        ref = tiny(x).numpy()
        tiny.tau = None
    out, exited = TorchSession(tiny).infer(x.numpy(), tau)
    np.testing.assert_allclose(out, ref, atol=1e-5)
    np.testing.assert_array_equal(exited, (scores < tau).numpy())


def test_tiled_equals_single_tile_on_a_tile_sized_image(tiny):
    img = np.random.default_rng(1).random((3, 112, 112), dtype=np.float32)
    with torch.no_grad():
        ref = tiny(torch.from_numpy(img)[None])[0].clamp(0, 1).numpy()
    out, stats = deblur_image(TorchSession(tiny), img, overlap=16)
    assert stats.tiles == 1
    np.testing.assert_allclose(out, ref, atol=1e-6)


def test_tiled_inference_on_odd_sizes(tiny):
    img = np.random.default_rng(2).random((3, 150, 97), dtype=np.float32)
    out, stats = deblur_image(TorchSession(tiny), img, overlap=16, batch_size=4)
    assert out.shape == img.shape and np.isfinite(out).all()
    assert stats.tiles == 2 * 1
