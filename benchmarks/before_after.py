"""A before/after figure: for each blur family, a detail of a held-out photo — blurred | unsharp mask | ours | sharp.

    python benchmarks/before_after.py                                   # the shipped default -> docs/before_after.png
    python benchmarks/before_after.py --checkpoint runs/x/model.safetensors --out /tmp/ba.png

Each row is one blur family at the middle of the quality benchmark's range (Gaussian sigma 1.75, defocus radius 3,
motion 11 px, shake 11 px), applied in linear light and recorded clean, on a held-out photo; the unsharp mask uses the
parameters the benchmark tunes on the training photos (``real_photo_gain.tune_unsharp``). Titles carry each panel's
PSNR against the sharp photo. The model restores the whole centre crop (seamless tiles); the figure shows a detail.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402

#: (family, photo, detail box y, x in the 320 centre crop) — varied subjects, all held out of training.
ROWS = (("gaussian", "astronaut", 40, 110), ("defocus", "coffee", 100, 100), ("motion", "chelsea", 90, 150),
        ("shake", "grace_hopper", 70, 90))
MIDDLE = {"gaussian": 1.75, "defocus": 3.0, "motion": 11.0, "shake": 11.0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="weights (default: the shipped default model)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "before_after.png")
    ap.add_argument("--detail", type=int, default=128, help="side of the shown detail in px (default 128)")
    ap.add_argument("--side", type=int, default=320, help="centre crop the model restores (default 320)")
    args = ap.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    import real_photo_gain as q
    from dramnet_edge.data import kernels
    from dramnet_edge.data.families import load_photo
    from dramnet_edge.models.checkpoint import load_model
    from dramnet_edge.runtime.session import TorchSession
    from dramnet_edge.weights import EMBEDDED_DEFAULT, default_checkpoint

    torch.set_num_threads(1)
    ckpt = args.checkpoint or default_checkpoint(EMBEDDED_DEFAULT)
    if ckpt is None:
        print(f"no --checkpoint given and no shipped {EMBEDDED_DEFAULT} weights", file=sys.stderr)
        return 2
    net, meta = load_model(ckpt)
    session = TorchSession(net.eval())
    usm = q.tune_unsharp([r[0] for r in ROWS], ["linear", "srgb"], ["clean"], args.side, log=lambda *_: None)
    fig, axes = plt.subplots(len(ROWS), 4, figsize=(4 * 2.6, len(ROWS) * 2.8))
    d = args.detail
    for i, (family, photo, y, x) in enumerate(ROWS):
        sharp = q.quantise(q.centre_crop(load_photo(photo), args.side))
        psf, params = kernels.family_psf(family, MIDDLE[family], np.random.default_rng(i))
        blurred = kernels.record(kernels.blur(sharp, psf, "linear"))
        p = usm[f"{family}/clean"]
        panels = [("blurred", blurred), (f"unsharp mask (r {p['radius']:g}, a {p['amount']:g})",
                                         q.unsharp(blurred, p["radius"], p["amount"])),
                  (f"ours ({meta.get('model')})", q.restore(session, blurred, None)), ("sharp", sharp)]
        extent = ", ".join(f"{k} {v:g}" for k, v in params.items() if k != "angle")
        for j, (title, img) in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(np.clip(img[y : y + d, x : x + d], 0, 1), interpolation="nearest")
            label = title if j == 3 else f"{title}\n{q.psnr(img, sharp):.2f} dB"
            ax.set_title(label, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(f"{family} ({extent})\n{photo}", fontsize=8)
    fig.suptitle("Held-out photos, blur in linear light, 8-bit; PSNR of the whole 320 crop", fontsize=9)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.stem + ".tmp" + args.out.suffix)
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, args.out)
    print(f"wrote {args.out} ({meta.get('model')} from {ckpt})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
