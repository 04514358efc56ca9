"""Per-stage training logic: what a stage trains (``configure_stage``) and its forward pass and loss (``TrainStep``).

The stages are DRAMNet's depth, blurmap and deblur (Eq. 4) and AIBNet's one stage per sub-decoder.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .config import StageConfig, TrainConfig
from .losses import (VGGPerceptualLoss, aibnet_loss, blur_map_loss, charbonnier_recon_loss, depth_consistency_loss,
                     psnr_recon_loss, recon_loss, silog_loss)

# The loss terms a stage's TrainStep reports, per model family (the columns of metrics.csv).
DRAMNET_TERMS = ("silog", "recon", "depth", "perc", "blur")
AIBNET_TERMS = ("charb", "edge", "fft")


def unwrap(module: nn.Module) -> nn.Module:
    """The plain model under DDP and torch.compile wrappers."""
    while True:
        if isinstance(module, nn.parallel.DistributedDataParallel):
            module = module.module
        elif hasattr(module, "_orig_mod"):
            module = module._orig_mod
        elif isinstance(module, TrainStep):
            module = module.model
        else:
            return module


class TrainStep(nn.Module):
    """One stage's forward pass and loss, as a module so DDP can wrap it (DDP only syncs through ``forward``).

    forward(blurred, sharp, depth=None) -> (loss, {term: detached value}, restored image detached).
    """

    def __init__(self, model: nn.Module, stage: StageConfig, family: str, cfg: TrainConfig,
                 perceptual: VGGPerceptualLoss | None, sub_decoder: int | None = None):
        super().__init__()
        self.model = model
        self.kind = stage.name
        self.family = family
        self.loss_cfg = cfg.loss
        self.perceptual = perceptual  # frozen, no parameters that require grad
        self.sub_decoder = sub_decoder

    def forward(self, blurred: torch.Tensor, sharp: torch.Tensor, depth: torch.Tensor | None = None):
        m, lc = self.model, self.loss_cfg
        if self.kind == "subdecoder":
            image = m.forward_train(blurred, upto=self.sub_decoder)["image"]
            loss, terms = aibnet_loss(image, sharp, lc.charbonnier_eps, lc.edge_weight, lc.fft_weight)
            return loss, {k: v.detach() for k, v in terms.items()}, image.detach()
        if self.kind == "blurmap":
            # Only the BME cascade on the (frozen) stem: no ViT, no decoder, so a step costs a few percent of a
            # deblur step.
            from ..blur_target import laplacian_blur_target_pyramid

            with torch.no_grad():
                stem = m.stem.conv(m.normalize(blurred))
                targets = laplacian_blur_target_pyramid(blurred.float(), sharp.float(), tile=m.blur_map.tile,
                                                        levels=len(m.blur_map.blocks))
            loss = blur_map_loss(m.blur_map(stem), targets)
            return loss, {"blur": loss.detach()}, None
        if self.kind == "depth":
            pred = m.estimate_depth(m.normalize(blurred)).unsqueeze(1)
            loss = silog_loss(pred, depth, lam=lc.silog_lambda)
            return loss, {"silog": loss.detach()}, None
        # DRAMNet stage 2 (Eq. 4)
        if lc.lambda_depth <= 0 or lc.depth_source == "restored":  # no depth of the blurred input needed
            levels, blur_maps, _ = m.encode(blurred)
            image = m.decode(blurred, levels, blur_maps[0])
            d_pred = self._depth_of_restored(image) if lc.lambda_depth > 0 else None
        else:
            out = m.forward_train(blurred)
            image, blur_maps, d_pred = out["image"], out["blur_maps"], out["depth"]
        if lc.recon == "charbonnier":
            terms = {"recon": charbonnier_recon_loss(image, sharp, lc.grad_weight, lc.recon_fft_weight, lc.charbonnier_eps)}
        elif lc.recon == "psnr":
            terms = {"recon": psnr_recon_loss(image, sharp, lc.grad_weight)}
        else:
            terms = {"recon": recon_loss(image, sharp, lc.grad_weight)}
        loss = terms["recon"]
        if lc.lambda_depth > 0:
            terms["depth"] = depth_consistency_loss(d_pred, depth)
            loss = loss + lc.lambda_depth * terms["depth"]
        if self.perceptual is not None and lc.lambda_perc > 0:
            terms["perc"] = self.perceptual(image, sharp)
            loss = loss + lc.lambda_perc * terms["perc"]
        if lc.lambda_blur > 0:
            from ..blur_target import laplacian_blur_target_pyramid

            tile = getattr(m.blur_map, "tile", m.encoder.patch_size)
            with torch.no_grad():
                targets = laplacian_blur_target_pyramid(blurred.float(), sharp.float(), tile=tile, levels=len(blur_maps))
            terms["blur"] = blur_map_loss(blur_maps, targets)
            loss = loss + lc.lambda_blur * terms["blur"]
        return loss, {k: v.detach() for k, v in terms.items()}, image.detach()

    def _depth_of_restored(self, image: torch.Tensor) -> torch.Tensor:
        """Eq. 6 as written: the frozen depth head on the encoder's view of the restored image. The encoder runs
        with detached copies of its weights, so this term trains the restoration (through the image), not the
        encoder to read depth off whatever the decoder produces; it also keeps DDP's one-gradient-per-parameter
        bookkeeping intact."""
        m = self.model
        params = {k: v.detach() for k, v in m.encoder.named_parameters()}
        buffers = dict(m.encoder.named_buffers())
        taps = torch.func.functional_call(m.encoder, {**params, **buffers}, (m.normalize(image),))
        return m.depth_head(taps, (m.tile, m.tile))


def configure_stage(model: nn.Module, stage: StageConfig, family: str, sub_decoder: int | None,
                    lambda_blur: float = 1.0) -> None:
    """Set requires_grad (and train/eval of frozen parts) for a stage: exactly the parameters the stage's loss
    reaches are trainable (DDP requires every trainable parameter to get a gradient)."""
    model.train()
    if family == "aibnet":
        model.freeze_for_stage(sub_decoder)
        return
    model.requires_grad_(False)
    if stage.name == "depth":
        model.encoder.requires_grad_(True)
        model.depth_head.requires_grad_(True)
    elif stage.name == "blurmap":
        model.blur_map.requires_grad_(True)
    else:
        model.requires_grad_(True)
        model.depth_head.requires_grad_(False)
        if lambda_blur <= 0:  # the decoder reads the blur map detached: only L_blur trains the BME cascade
            model.blur_map.requires_grad_(False)
    set_stage_modes(model, stage, lambda_blur)


def set_stage_modes(model: nn.Module, stage: StageConfig, lambda_blur: float) -> None:
    """train/eval mode of a DRAMNet's parts for a stage: frozen parts that hold BatchNorm statistics stay in eval mode,
    so "frozen" also freezes their running statistics (the BME cascade's are what the early-exit gate uses)."""
    model.train()
    if stage.name == "blurmap":  # only the cascade trains; its statistics follow the stage's data
        model.eval()
        model.blur_map.train()
    elif stage.name != "depth":
        model.depth_head.eval()
        if lambda_blur <= 0:
            model.blur_map.eval()


def stage_sub_decoders(cfg: TrainConfig) -> list[int | None]:
    """The sub-decoder each stage trains (AIBNet: its own, or the next in order; None for other stages)."""
    out, k = [], 0
    for st in cfg.stages:
        if st.name == "subdecoder":
            out.append(st.sub_decoder if st.sub_decoder is not None else k)
            k += 1
        else:
            out.append(None)
    return out
