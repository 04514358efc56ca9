"""``validate``: what an artifact costs in quality — PSNR/SSIM against ground truth and against the FP32 PyTorch model.

For every artifact (any backend, through its sidecar; a ``.safetensors``/``.pt`` weight file runs on torch) every
held-out pair is restored whole, by tiled inference, and scored against its sharp image. The FP32 reference is the
PyTorch model the artifact was exported from: the sidecar names the model, the weight file and its SHA-256, and the
weight file is looked for at ``--checkpoint``, beside the artifact and among the shipped weights; it is used only when
its hash matches (a mismatch is reported, never silently accepted). The reference runs with the same exit policy,
so "vs FP32" isolates what the backend and its precision cost; what the exit costs is ``bench``'s job.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..data.io import read_image
from .bench import IMAGE_SUFFIXES, BASELINE, ExitPolicy, Target, artifact_target, parse_tau_list
from ..errors import UserError

_BLUR_DIRS = ("blur", "blur_gamma", "blurred", "input")
_SHARP_DIRS = ("sharp", "gt", "target")


@dataclass
class Pair:
    name: str
    blurred: np.ndarray  # (3, H, W) float32 in [0, 1]
    sharp: np.ndarray


def _flat_pairs(root: Path) -> list[tuple[str, Path, Path]]:
    """Pairs from any folder below ``root`` holding a blur/ (blurred/, input/) and a sharp/ (gt/, target/) folder
    with the same file names — e.g. one sequence of ``make_synthetic_pairs``."""
    found = []
    for folder in sorted([root, *[p for p in root.rglob("*") if p.is_dir()]]):
        blur = next((folder / d for d in _BLUR_DIRS if (folder / d).is_dir()), None)
        sharp = next((folder / d for d in _SHARP_DIRS if (folder / d).is_dir()), None)
        if blur is None or sharp is None:
            continue
        for b in sorted(p for p in blur.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            s = sharp / b.name
            if s.is_file():
                found.append((b.relative_to(root).as_posix(), b, s))
    return found


def find_pairs(data: str | os.PathLike, split: str = "test", limit: int | None = None) -> list[tuple[str, Path, Path]]:
    """(name, blurred path, sharp path) of every held-out pair under ``data``: a dataset root in any supported
    layout (GoPro, RealBlur, REDS, RSBlur; ``make_synthetic_pairs`` writes GoPro), or any folder holding
    blur/ and sharp/ folders with matching file names."""
    from ..data.datasets import list_pairs

    root = Path(data)
    if not root.is_dir():
        raise UserError(f"--data {root}: not a folder")
    try:
        pairs = [(p.name, p.blurred, p.sharp) for p in list_pairs(root, split)]
    except ValueError as layout_error:
        pairs = _flat_pairs(root)
        if not pairs:
            raise UserError(f"--data {root}: no pairs ({layout_error}; nor blur/ + sharp/ folders with matching "
                             "file names)") from None
    if limit is not None:
        if limit < 1:
            raise UserError(f"--limit must be >= 1, got {limit}")
        pairs = pairs[:limit]
    return pairs


def load_pairs(data, split: str = "test", limit: int | None = None) -> list[Pair]:
    out = []
    for name, b, s in find_pairs(data, split, limit):
        blurred, sharp = read_image(b).image.numpy(), read_image(s).image.numpy()
        if blurred.shape != sharp.shape:
            raise UserError(f"{b} and {s} differ in size ({blurred.shape} vs {sharp.shape})")
        out.append(Pair(name, blurred, sharp))
    return out


# ------------------------------------------------------------------------------------------- reference

def _retile(net, tile: int):
    from ..models.builder import retile

    return retile(net, tile)


def resolve_reference(target: Target, checkpoint: str | os.PathLike | None = None) -> tuple[Path | None, str]:
    """The FP32 weight file the artifact was exported from, and a note saying how it was found (or why not)."""
    from ..io_utils import file_sha256
    from ..weights import default_checkpoint

    if target.backend == "torch":
        return None, "the artifact is the FP32 PyTorch model itself"
    side = target.sidecar or {}
    want_sha, name = side.get("checkpoint_sha256"), side.get("checkpoint")
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.is_file():
            raise UserError(f"--checkpoint {path}: file not found")
        if want_sha is None:
            return path, "given --checkpoint (the sidecar records no source weights: exported from random init?)"
        if file_sha256(path) != want_sha:
            return path, f"WARNING: --checkpoint {path.name} is not the file this artifact was exported from (SHA-256 differs)"
        return path, f"given --checkpoint {path.name} (SHA-256 matches the sidecar)"
    if want_sha is None:
        return None, "no reference: the artifact was exported from a randomly initialised model (no weight file)"
    candidates = []
    if name:
        candidates += [Path(target.artifact).parent / name, Path.cwd() / name]
    shipped = default_checkpoint(side.get("model", ""))
    if shipped is not None:
        candidates.append(shipped)
    for c in candidates:
        if c.is_file() and file_sha256(c) == want_sha:
            return c, f"{c} (SHA-256 matches the sidecar)"
    return None, (f"no reference: weight file {name!r} (SHA-256 {want_sha[:12]}...) not found beside the artifact "
                  "or among the shipped weights; pass --checkpoint")


class _References:
    """FP32 PyTorch reference sessions by (weight file, tile), built once."""

    def __init__(self, device: str = "cpu"):
        self.device = device
        self._sessions: dict = {}

    def session(self, path: Path | None, target: Target):
        from ..models.builder import load_model
        from ..runtime.session import TorchSession

        if target.backend == "torch":
            return TorchSession(target.net, self.device)
        if path is None:
            return None
        key = (str(path), target.tile)
        if key not in self._sessions:
            net, _ = load_model(path)
            if target.tile and getattr(net, "tile", target.tile) != target.tile:
                net = _retile(net, target.tile)
            self._sessions[key] = TorchSession(net.eval(), self.device)
        return self._sessions[key]


# ------------------------------------------------------------------------------------------------ scoring

def score_image(pred: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(PSNR dB, SSIM) of one (3, H, W) image in [0, 1] against its reference: the one scoring of ``validate`` and
    ``dramnet-edge eval``."""
    import torch

    from ..metrics import psnr, ssim

    a = torch.from_numpy(np.clip(np.asarray(pred, dtype=np.float32), 0, 1))[None]
    b = torch.from_numpy(np.clip(np.asarray(ref, dtype=np.float32), 0, 1))[None]
    return float(psnr(a, b)[0]), float(ssim(a, b)[0])



def evaluate_model(net, dataset, *, overlap: int = 32, batch_size: int = 8, device: str = "cpu",
                   progress: bool = True) -> dict:
    """Mean PSNR/SSIM of a model's restorations of ``dataset``'s pairs (items with ``blurred``/``sharp`` (3, H, W)
    tensors) and of the blurred inputs, against the sharp images (``dramnet-edge eval``). Models with a fixed tile
    (DRAMNet) run whole images tile by tile with blended overlaps; the others (AIBNet) one image per forward.

    A pair whose blurred side equals its sharp side (the synthetic engine makes some: a still-camera crop whose
    depth lies within the focal plane) has an infinite input PSNR, capped at 100 dB; averaged with the others it
    would lift the input mean by tens of dB and make any model look worse than its input. Such pairs are therefore
    scored apart, as the quality benchmark scores its unblurred photos: the means cover the blurred pairs only (all
    pairs if none is blurred), and ``unblurred`` / ``psnr_unblurred`` / ``psnr_unblurred_min`` say how many there
    were and how close to themselves the model left them.
    Returns {psnr, ssim, psnr_input, ssim_input, images, unblurred, psnr_unblurred, psnr_unblurred_min}."""
    import sys

    import torch
    from tqdm import tqdm

    from ..runtime.session import open_session
    from ..runtime.tiling import deblur_image

    session = open_session("torch", model=net, device=device) if getattr(net, "tile", None) is not None else None

    def restore(img: torch.Tensor) -> np.ndarray:
        if session is not None:  # DRAMNet: fixed tiles, blended
            out, _ = deblur_image(session, img.numpy(), overlap=overlap, batch_size=batch_size)
            return out
        with torch.inference_mode():
            return net(img[None].to(device)).float().clamp(0, 1)[0].cpu().numpy()

    blurred_rows, unblurred_psnr = [], []
    n = len(dataset)
    for i in tqdm(range(n), desc="eval", disable=not progress, file=sys.stderr):
        item = dataset[i]
        blurred, sharp = item["blurred"].float(), item["sharp"].float().numpy()
        p_out, s_out = score_image(restore(blurred), sharp)
        if np.array_equal(blurred.numpy(), sharp):
            unblurred_psnr.append(p_out)
            continue
        p_in, s_in = score_image(blurred.numpy(), sharp)
        blurred_rows.append((p_out, s_out, p_in, s_in))
    if not blurred_rows:  # nothing but identical pairs: their means (inputs at the 100 dB cap) are all there is
        blurred_rows = [(p, 1.0, 100.0, 1.0) for p in unblurred_psnr]
    means = np.mean(np.asarray(blurred_rows, dtype=np.float64), axis=0)
    return {"psnr": float(means[0]), "ssim": float(means[1]), "psnr_input": float(means[2]),
            "ssim_input": float(means[3]), "images": n, "unblurred": len(unblurred_psnr),
            "psnr_unblurred": float(np.mean(unblurred_psnr)) if unblurred_psnr else None,
            "psnr_unblurred_min": float(np.min(unblurred_psnr)) if unblurred_psnr else None}


def _restore(session, image: np.ndarray, policy: ExitPolicy, overlap: int, batch_size: int):
    from ..runtime.tiling import deblur_image

    if hasattr(session, "tau_skip"):
        session.tau_skip = policy.tau_skip
    return deblur_image(session, image, tau=policy.tau, overlap=overlap, batch_size=batch_size)


def validate(
    artifacts: list[str | os.PathLike], data: str | os.PathLike, *, checkpoint: str | os.PathLike | None = None,
    tau: str | float | None = None, split: str = "test", limit: int | None = None, overlap: int = 32,
    batch_size: int = 8, device: str = "cpu", threads: int | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Score every artifact on the held-out pairs of ``data``. Returns
    {"data", "split", "images", "policy", "input": {psnr, ssim}, "device": {...}, "artifacts": [per artifact]}.

    Per artifact: psnr/ssim (mean over images, vs ground truth) with psnr_min/ssim_min (worst image), psnr_ref/
    ssim_ref and their minima (vs the FP32 PyTorch reference; None with ``reference_note`` saying why when there is
    none), exit_fraction, seconds, per_image; or ``skipped`` with the reason when its backend cannot run here.
    """
    from .device import device_info

    log = log or (lambda msg: None)
    if not artifacts:
        raise UserError("validate needs at least one ARTIFACT (an exported model, its .json, or a weight file)")
    policy = BASELINE if tau is None else parse_tau_list(str(tau))[-1]
    if threads:
        import torch

        torch.set_num_threads(threads)
    targets = [artifact_target(a, device, threads) for a in artifacts]  # every artifact checked before any work
    if all(t.skipped for t in targets):  # exit 0 with nothing measured would pass a CI job
        raise UserError(f"nothing could be measured: every artifact was skipped ({targets[0].artifact}: "
                         f"{targets[0].skipped})")
    pairs = load_pairs(data, split, limit)
    log(f"{len(pairs)} pairs from {data}")
    inputs = [score_image(p.blurred, p.sharp) for p in pairs]
    refs = _References(device)
    ref_cache: dict = {}
    rows = []
    for a, target in zip(artifacts, targets):
        row = {"artifact": target.artifact, "backend": target.backend, "precision": target.precision,
               "model": target.model, "tile": target.tile}
        if target.skipped:
            row["skipped"] = target.skipped
            log(f"skipping {a}: {target.skipped}")
            rows.append(row)
            continue
        ref_path, note = resolve_reference(target, checkpoint)
        ref_session = refs.session(ref_path, target)
        row["reference"] = None if ref_path is None else str(ref_path)
        row["reference_note"] = note
        t0 = time.perf_counter()
        per_image = []
        tiles = exited = 0
        for p in pairs:
            out, stats = _restore(target.session, p.blurred, policy, overlap, batch_size)
            tiles += stats.tiles
            exited += stats.exited
            psnr_gt, ssim_gt = score_image(out, p.sharp)
            entry = {"name": p.name, "psnr": psnr_gt, "ssim": ssim_gt, "psnr_ref": None, "ssim_ref": None}
            if ref_session is not None:
                key = (id(ref_session), p.name)
                if key not in ref_cache:
                    ref_cache[key] = _restore(ref_session, p.blurred, policy, overlap, batch_size)[0]
                entry["psnr_ref"], entry["ssim_ref"] = score_image(out, ref_cache[key])
            per_image.append(entry)
        row["seconds"] = round(time.perf_counter() - t0, 2)
        for key in ("psnr", "ssim", "psnr_ref", "ssim_ref"):
            vals = [e[key] for e in per_image if e[key] is not None]
            row[key] = float(np.mean(vals)) if vals else None
            row[key + "_min"] = float(np.min(vals)) if vals else None
        worst = min(per_image, key=lambda e: e["psnr"])
        row["worst_image"] = worst["name"]
        row["exit_fraction"] = exited / tiles if tiles else 0.0
        row["per_image"] = per_image
        log(f"{a}: PSNR {row['psnr']:.2f} dB vs ground truth"
            + ("" if row["psnr_ref"] is None else f", {row['psnr_ref']:.2f} dB vs FP32 (worst {row['psnr_ref_min']:.2f})"))
        rows.append(row)
    info = device_info()
    info["device"] = device
    return {
        "data": str(data), "split": split, "images": len(pairs), "policy": policy.label,
        "tau": policy.tau, "tau_skip": policy.tau_skip,
        "input": {"psnr": float(np.mean([s[0] for s in inputs])), "ssim": float(np.mean([s[1] for s in inputs]))},
        "device": info, "artifacts": rows,
    }
