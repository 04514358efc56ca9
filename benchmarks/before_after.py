"""A before/after figure: for each blur family, a detail of a held-out photo: blurred | unsharp mask | ours | sharp.

    python benchmarks/before_after.py                                     # the shipped default -> docs/before_after.png
    python benchmarks/before_after.py --checkpoint runs/x/model.safetensors --out /tmp/ba.png
    python benchmarks/before_after.py --json q.json                       # unsharp-mask settings of a benchmark run

One row per blur family, each on its own held-out photo (never trained on), centre-cropped to ``--side`` (320) and
8-bit, blurred at the middle of the quality benchmark's range (``kernels.EVAL_RANGES``: Gaussian sigma 1.75, defocus
radius 3, motion 11 px, shake 11 px) in linear light and recorded clean. The unsharp mask uses the setting the quality
benchmark (``benchmarks/real_photo_gain.py``) tunes on the training photos for that family (clean variant): tuned here
by the same function, or read from a benchmark ``--json``. The model restores the whole crop through the tiled runtime
(as ``dramnet-edge deblur`` does); the figure shows a ``--detail`` px detail of it. Each panel's title gives the PSNR
of the whole crop against the sharp photo.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402

#: (family, held-out photo, detail top, detail left in the centre crop, rng seed of the angle / shake path)
ROWS = (("gaussian", "astronaut", 40, 110, 0), ("defocus", "coffee", 100, 100, 1), ("motion", "chelsea", 90, 150, 2),
        ("shake", "grace_hopper", 70, 90, 3))
COLUMNS = ("blurred", "unsharp mask", "ours", "sharp")
PANEL_INCHES = (2.6, 2.8)  # width, height of one panel (with its title)
DPI = 110


def figure_size_px(rows: int = len(ROWS), dpi: int = DPI) -> tuple[int, int]:
    """(width, height) in px of the PNG this script writes."""
    return round(len(COLUMNS) * PANEL_INCHES[0] * dpi), round(rows * PANEL_INCHES[1] * dpi)


def middle_extent(family: str) -> float:
    from dramnet_edge.data.kernels import EVAL_RANGES

    low, high = EVAL_RANGES[family]
    return (low + high) / 2.0


def usm_settings(json_path: Path | None, families: list[str], side: int) -> dict:
    """{"family/clean": {radius, amount}}: from a quality-benchmark JSON, else tuned as the benchmark tunes them."""
    import real_photo_gain as q

    if json_path is not None:
        usm = json.loads(Path(json_path).read_text()).get("unsharp_mask", {})
        missing = [f for f in families if f"{f}/clean" not in usm]
        if missing:
            raise ValueError(f"{json_path} has no unsharp-mask setting for {', '.join(missing)} (clean)")
        return usm
    return q.tune_unsharp(families, ["clean"], side, log=lambda *_: None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="before_after.py", description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--checkpoint", metavar="PATH",
                    help="weights (default: the shipped default, dramnet_lite if its weights ship, else dramnet_tiny)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "before_after.png", help="PNG to write "
                    "(default docs/before_after.png)")
    ap.add_argument("--json", type=Path, metavar="PATH",
                    help="quality-benchmark JSON (real_photo_gain.py --json) to take the unsharp-mask settings from "
                         "(default: tune them here, as the benchmark does)")
    ap.add_argument("--side", type=int, default=320, help="centre crop the model restores, px (default 320)")
    ap.add_argument("--detail", type=int, default=128, help="side of the shown detail, px (default 128)")
    ap.add_argument("--dpi", type=int, default=DPI, help=f"PNG resolution (default {DPI})")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = ap.parse_args(argv)
    if args.detail < 16 or args.side < args.detail or args.threads < 1 or args.dpi < 10:
        print("need --side >= --detail >= 16, --threads >= 1, --dpi >= 10", file=sys.stderr)
        return 2

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    import real_photo_gain as q
    from dramnet_edge.data import kernels

    torch.set_num_threads(args.threads)
    try:
        model = q.load_models([args.checkpoint] if args.checkpoint else [])[0]
        usm = usm_settings(args.json, [r[0] for r in ROWS], args.side)
    except (ValueError, OSError) as e:
        print(e, file=sys.stderr)
        return 2

    fig, axes = plt.subplots(len(ROWS), len(COLUMNS), squeeze=False,
                             figsize=(len(COLUMNS) * PANEL_INCHES[0], len(ROWS) * PANEL_INCHES[1]))
    d = args.detail
    for i, (family, photo, y, x, seed) in enumerate(ROWS):
        sharp = q.sharp_photo(photo, args.side)
        h, w = sharp.shape[:2]
        y, x = min(y, h - d), min(x, w - d)  # keep the detail inside a smaller --side
        psf, params = kernels.family_psf(family, middle_extent(family), np.random.default_rng(seed))
        blurred = kernels.record(kernels.blur(sharp, psf, "linear"))
        p = usm[f"{family}/clean"]
        ours, _ = q.restore(model["session"], blurred)
        usm_img = q.unsharp(blurred, p["radius"], p["amount"])
        panels = (("blurred", blurred), (f"unsharp mask (r {p['radius']:g}, x{p['amount']:g})", usm_img),
                  (f"ours ({model['model']})", ours), ("sharp", sharp))
        extent = f"{kernels.EXTENT_NAMES[family]} {middle_extent(family):g}"
        if "angle" in params:
            extent += f", {params['angle']:g} deg"
        for j, (title, img) in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(np.clip(img[y : y + d, x : x + d], 0, 1), interpolation="nearest")
            score = "reference" if img is sharp else f"{q.psnr(img, sharp):.2f} dB"
            ax.set_title(f"{title}\n{score}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(f"{family} ({extent})\n{photo}", fontsize=8)
    fig.suptitle(f"Held-out photos, blur in linear light, 8-bit; PSNR of the whole {args.side} px crop "
                 f"(shown: a {d} px detail)", fontsize=9)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.stem}.{os.getpid()}.tmp.png")
    try:
        fig.savefig(tmp, dpi=args.dpi)
        os.replace(tmp, args.out)
    finally:
        tmp.unlink(missing_ok=True)
        plt.close(fig)
    print(f"wrote {args.out} ({model['label']} from {model['checkpoint']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
