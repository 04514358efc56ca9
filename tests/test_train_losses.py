"""Training losses on inputs with known answers, and the VGG-19 loader."""

from __future__ import annotations

import math

import pytest
import torch

from dramnet_edge.train import losses as L


def test_silog_scale_invariant_with_lambda_one():
    d = torch.rand(2, 1, 16, 16) + 0.1
    assert L.silog_loss(3.7 * d, d, lam=1.0).abs().item() < 1e-6
    # With lambda 0.85, a pure scale leaves 0.15 * log(s)^2.
    assert L.silog_loss(2.0 * d, d, lam=0.85).item() == pytest.approx(0.15 * math.log(2.0) ** 2, rel=1e-5)


def test_silog_ignores_invalid_pixels():
    d = torch.rand(1, 1, 8, 8) + 0.5
    pred = d.clone()
    target = d.clone()
    target[..., :4, :] = 0.0  # invalid (non-positive)
    pred[..., :4, :] = 123.0  # would be a huge error if counted
    assert L.silog_loss(pred, target).item() == pytest.approx(0.0, abs=1e-6)
    target[..., 4, 0] = float("nan")
    assert torch.isfinite(L.silog_loss(pred, target))


def test_gradient_l1_of_ramps():
    x = torch.arange(8.0).view(1, 1, 1, 8).expand(1, 1, 8, 8)  # slope 1 along x
    zero = torch.zeros_like(x)
    assert L.gradient_l1(x, zero).item() == pytest.approx(1.0)
    assert L.gradient_l1(2 * x, x).item() == pytest.approx(1.0)
    assert L.gradient_l1(x + 5, x).item() == pytest.approx(0.0)  # a constant offset has no gradient
    # recon = L1 + 0.5 * grad L1: offset 5 -> 5
    assert L.recon_loss(x + 5, x).item() == pytest.approx(5.0)
    assert L.recon_loss(2 * x, x, grad_weight=0.5).item() == pytest.approx(3.5 + 0.5)


def test_charbonnier_edge_fft_values():
    a = torch.zeros(1, 3, 8, 8)
    b = torch.full((1, 3, 8, 8), 0.5)
    assert L.charbonnier_loss(a, b, eps=1e-3).item() == pytest.approx(math.sqrt(0.25 + 1e-6), rel=1e-6)
    assert L.charbonnier_loss(a, a, eps=1e-3).item() == pytest.approx(1e-3, rel=1e-6)
    # constant images have a zero Laplacian (replicate padding): edge loss = eps
    assert L.edge_loss(a, b).item() == pytest.approx(1e-3, rel=1e-4)
    # rfft2 of a constant c over HxW: DC = c*H*W, everything else 0. Real+imag stacked: 2*(H*(W//2+1)) entries.
    n = 2 * 8 * 5
    assert L.fft_loss(a, b).item() == pytest.approx(0.5 * 64 / n, rel=1e-6)
    total, terms = L.aibnet_loss(a, b)
    assert total.item() == pytest.approx(terms["charb"].item() + 0.05 * terms["edge"].item() + 0.1 * terms["fft"].item())


def test_laplacian_kernel():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 1.0
    lap = L.laplacian(x)[0, 0]
    assert lap[2, 2] == -4 and lap[1, 2] == 1 and lap[2, 1] == 1 and lap[0, 0] == 0


def test_depth_consistency_is_scale_and_shift_free():
    d = torch.rand(2, 1, 32, 32)
    assert L.depth_consistency_loss(5 * d + 2, d).item() == pytest.approx(0.0, abs=1e-5)
    assert L.depth_consistency_loss(torch.rand(2, 1, 32, 32), d).item() > 0.5


def test_blur_map_loss_averages_scales():
    preds = [torch.zeros(1, 1, 4 // 2**k or 1, 4 // 2**k or 1) for k in range(3)]
    targets = [torch.full_like(p, float(k + 1)) for k, p in enumerate(preds)]
    assert L.blur_map_loss(preds, targets).item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match="scale"):
        L.blur_map_loss(preds, [t[..., :1, :] for t in targets])


def _fake_vgg19_file(path, extra_layers=True):
    torch.manual_seed(0)
    ref = L.vgg19_features(15)
    state = {f"features.{k}": v for k, v in ref.state_dict().items()}
    if extra_layers:  # the full torchvision file also has deeper features and the classifier
        state["features.16.weight"] = torch.zeros(256, 256, 3, 3)
        state["features.16.bias"] = torch.zeros(256)
        state["classifier.0.weight"] = torch.zeros(8, 8)
    torch.save(state, path)
    return ref


def test_vgg_loader_keeps_features_up_to_15(tmp_path):
    ref = _fake_vgg19_file(tmp_path / "vgg19.pth")
    loss = L.VGGPerceptualLoss.from_file(tmp_path / "vgg19.pth")
    for (k, a), b in zip(loss.features.state_dict().items(), ref.state_dict().values()):
        assert torch.equal(a, b), k
    assert not any(p.requires_grad for p in loss.parameters())
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    y = torch.rand(1, 3, 32, 32)
    v = loss(x, y)
    v.backward()
    assert v.item() > 0 and x.grad is not None
    assert loss(y, y).item() == 0.0
    # layer indices match torchvision: 3, 8, 15 are ReLUs after conv1_2, conv2_2, conv3_3
    assert all(isinstance(loss.features[i], torch.nn.ReLU) for i in (3, 8, 15))
    assert isinstance(loss.features[14], torch.nn.Conv2d) and loss.features[14].out_channels == 256


def test_vgg_loader_rejects_wrong_files(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        L.VGGPerceptualLoss.from_file(tmp_path / "missing.pth")
    torch.save({"foo.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="features"):
        L.VGGPerceptualLoss.from_file(tmp_path / "other.pth")
    ref = L.vgg19_features(15).state_dict()
    bad = {f"features.{k}": v for k, v in ref.items() if not k.startswith("14.")}
    torch.save(bad, tmp_path / "short.pth")
    with pytest.raises(ValueError, match="missing keys: 14.bias"):
        L.VGGPerceptualLoss.from_file(tmp_path / "short.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable"):
        L.VGGPerceptualLoss.from_file(tmp_path / "junk.pth")


def test_psnr_loss_is_minus_the_mean_crop_psnr_with_a_floor():
    from dramnet_edge.train.losses import PSNR_LOSS_EPS, psnr_loss

    target = torch.rand(3, 3, 16, 16)
    pred = target.clone()
    pred[0] += 0.1  # MSE 0.01: 20 dB
    pred[1] += 0.01  # MSE 1e-4: 40 dB
    # crop 2 exact: counted at the floor, 50 dB, not at infinity
    want = -(10 * math.log10(1 / (0.01 + PSNR_LOSS_EPS)) + 10 * math.log10(1 / (1e-4 + PSNR_LOSS_EPS)) + 50.0) / 3
    assert psnr_loss(pred, target).item() == pytest.approx(want, abs=1e-3)


def test_psnr_loss_weighs_crops_per_db_not_per_pixel():
    """A nearly right crop's error gets far more gradient than under L1, so soft content that blur barely changed
    is not sacrificed to the heavily blurred crops (the reason for loss.recon: psnr)."""
    from dramnet_edge.train.losses import psnr_loss

    target = torch.zeros(2, 1, 8, 8)
    pred = target.clone()
    pred[0] += 0.1  # a bad crop (20 dB)
    pred[1] += 0.003  # a nearly right one (~50 dB)
    pred.requires_grad_(True)
    psnr_loss(pred, target).backward()
    g = pred.grad.abs().flatten(1).mean(1)
    assert g[1] > 5 * g[0]  # per-pixel L1 would give both the same gradient


def test_psnr_recon_is_a_config_choice():
    from dramnet_edge.train.config import RECON_LOSSES

    assert "psnr" in RECON_LOSSES
