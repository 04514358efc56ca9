"""PSNR/SSIM gain of a DRAMNet checkpoint on held-out real photographs that we blur ourselves.

The embedded default is trained on the synthetic engine's training photos only; these photos are never seen in
training: scikit-image's chelsea, rocket and coins (the engine's validation split) and matplotlib's grace_hopper.
Each is blurred in linear light with fixed point-spread functions — linear motion streaks, a defocus disk, and a
random camera-shake trajectory — quantised to 8 bits, and restored whole (seamless tiles at the model's tile size).

    python benchmarks/real_photo_gain.py                          # the shipped default (or --checkpoint C)
    python benchmarks/real_photo_gain.py --checkpoint runs/x/model.safetensors --json gain.json

Prints one row per (photo, blur) and the means; PSNR/SSIM as dramnet_edge.metrics (8-bit outputs, [0, 1]).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dramnet_edge.bench.photos import GAMMA, defocus_psf, load_photo, motion_psf
from dramnet_edge.metrics import psnr, ssim

PHOTOS = ("chelsea", "rocket", "coins", "grace_hopper")


def shake_psf(seed: int = 3, diameter: float = 9.0) -> np.ndarray:
    """A camera-shake kernel from the synthetic engine's trajectory model (fixed seed), ``diameter`` px."""
    from dramnet_edge.data.synthetic import _rasterise, _shake_trajectory

    path = _shake_trajectory(np.random.default_rng(seed))
    size = int(np.ceil(diameter)) + 3
    return _rasterise(path, diameter, size | 1).astype(np.float32)


BLURS = {
    "motion7": lambda: motion_psf(7.0, 30.0),
    "motion11": lambda: motion_psf(11.0, 120.0),
    "defocus2": lambda: defocus_psf(2.0),
    "shake9": lambda: shake_psf(),
}


def load(name: str) -> np.ndarray:
    if name == "grace_hopper":
        import cv2
        import matplotlib.cbook

        bgr = cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
        return np.ascontiguousarray(bgr[..., ::-1].transpose(2, 0, 1)).astype(np.float32) / 255.0
    return load_photo(name)


def blur(image: np.ndarray, psf: np.ndarray) -> np.ndarray:
    import cv2

    linear = np.power(np.clip(image, 0, 1), GAMMA).transpose(1, 2, 0)
    out = cv2.filter2D(linear, -1, psf, borderType=cv2.BORDER_REFLECT)
    out = np.power(np.clip(out, 0, 1), 1.0 / GAMMA).transpose(2, 0, 1)
    return (np.round(out * 255.0) / 255.0).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="weights (.safetensors or training .pt); default: the shipped dramnet_tiny")
    ap.add_argument("--photos", default=",".join(PHOTOS))
    ap.add_argument("--blurs", default=",".join(BLURS), help=f"subset of {','.join(BLURS)}")
    ap.add_argument("--max-side", type=int, default=448, help="centre-crop photos to this side (0: whole photo)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from dramnet_edge.models.checkpoint import load_model
    from dramnet_edge.runtime.session import TorchSession
    from dramnet_edge.runtime.tiling import deblur_image
    from dramnet_edge.weights import default_checkpoint

    ckpt = args.checkpoint or default_checkpoint("dramnet_tiny")
    if ckpt is None:
        print("no --checkpoint given and no shipped dramnet_tiny weights", file=sys.stderr)
        return 2
    net, meta = load_model(ckpt)
    session = TorchSession(net.eval())
    rows = []
    t0 = time.perf_counter()
    for name in args.photos.split(","):
        sharp = load(name)
        if args.max_side:
            _, h, w = sharp.shape
            y, x = max(0, (h - args.max_side) // 2), max(0, (w - args.max_side) // 2)
            sharp = np.ascontiguousarray(sharp[:, y : y + args.max_side, x : x + args.max_side])
        sharp = (np.round(sharp * 255.0) / 255.0).astype(np.float32)
        for kind in args.blurs.split(","):
            blurred = blur(sharp, BLURS[kind]())
            restored, _ = deblur_image(session, blurred)
            restored = np.round(restored * 255.0) / 255.0  # what `deblur` writes
            t = torch.from_numpy(sharp)[None]
            b = torch.from_numpy(blurred)[None]
            r = torch.from_numpy(restored.astype(np.float32))[None]
            row = {"photo": name, "blur": kind, "psnr_input": float(psnr(b, t)), "psnr_output": float(psnr(r, t)),
                   "ssim_input": float(ssim(b, t)), "ssim_output": float(ssim(r, t))}
            row["gain_db"] = row["psnr_output"] - row["psnr_input"]
            rows.append(row)
            print(f"{name:13s} {kind:9s} PSNR {row['psnr_input']:6.2f} -> {row['psnr_output']:6.2f} dB "
                  f"({row['gain_db']:+.2f})  SSIM {row['ssim_input']:.4f} -> {row['ssim_output']:.4f}", flush=True)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("psnr_input", "psnr_output", "gain_db",
                                                              "ssim_input", "ssim_output")}
    per_blur = {k: float(np.mean([r["gain_db"] for r in rows if r["blur"] == k])) for k in args.blurs.split(",")}
    print(f"mean over {len(rows)}: PSNR {mean['psnr_input']:.2f} -> {mean['psnr_output']:.2f} dB "
          f"({mean['gain_db']:+.2f}), SSIM {mean['ssim_input']:.4f} -> {mean['ssim_output']:.4f}; "
          + ", ".join(f"{k} {v:+.2f} dB" for k, v in per_blur.items()) + f"; {time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"checkpoint": str(ckpt), "model": meta.get("model"), "rows": rows,
                                         "mean": mean, "gain_db_per_blur": per_blur}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
