"""Does `dramnet-edge deblur` scale with the photo? Time per megapixel of a small and a large photo, in one run.

    python benchmarks/deblur_scaling.py                          # shipped weights, 1 MP and 24 MP, torch on CPU
    python benchmarks/deblur_scaling.py --session identity       # the pipeline alone (decode, tiles, blend, encode)
    python benchmarks/deblur_scaling.py --sizes 1,6 --threads 2 --json out/scaling.json

Each size is a JPEG (3:2, a scikit-image photo resized and tiled, with noise so it does not compress to nothing)
written to a temporary folder; it then goes through what `deblur` does per input: header check, decode, tiled
restoration with the blend, PNG encode and write. Sizes run in the order given, alternating over --repeat rounds, so
machine load hits them alike; the median per size is reported. Target (issue 12): seconds per megapixel of the
largest size within 1.3x of the smallest's. ``--session identity`` replaces the network with a session that returns
its tiles, which isolates the pipeline's own cost (the network's cost per tile does not depend on the photo size).
The peak resident memory after each size's first round is reported too (ru_maxrss only grows: small sizes first).

Measured on 2 shared CPU cores, shipped dramnet_tiny (tile 112), 1 thread, overlap 32, batch 8, one run:

| MP | tiles | s | s/MP | read s | restore s | write s | peak RSS after (MB) |
|---|---|---|---|---|---|---|---|
| 1.0 | 150 | 7.0 | 7.02 | 0.1 | 6.9 | 0.1 | 438 |
| 24.0 | 3750 | 138.9 | 5.79 | 0.8 | 136.3 | 1.8 | 1778 |

24 MP / 1 MP time per megapixel: 0.82 (target <= 1.3: met; a large photo has relatively fewer border tiles). The
pipeline alone (``--session identity``, 3 rounds): 0.09 s/MP at 1 MP, 0.12 s/MP at 24 MP (1.27), i.e. 2.9 s of a
24 MP photo's 139 s. Peak memory is one image's: 1.8 GB at 24 MP, whatever the number of inputs.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dramnet_edge.data.io import read_image, read_image_header, write_image  # noqa: E402
from dramnet_edge.runtime.tiling import count_tiles, deblur_image  # noqa: E402


class IdentitySession:
    """Returns its tiles: the pipeline's cost without the network's."""

    backend = "identity"

    def __init__(self, tile: int):
        self.tile = tile

    def infer(self, tiles, tau):
        return tiles, np.zeros(len(tiles), dtype=bool)


def make_photo(path: Path, megapixels: float, seed: int = 0) -> tuple[int, int]:
    """A 3:2 JPEG of about ``megapixels`` MP; returns (width, height)."""
    import skimage.data
    from skimage.transform import resize

    width = int(round((megapixels * 1e6 * 1.5) ** 0.5))
    height = int(round(width / 1.5))
    base = resize(skimage.data.astronaut(), (384, 384), anti_aliasing=True, preserve_range=True).astype(np.uint8)
    reps = (height // 384 + 1, width // 384 + 1, 1)
    img = np.tile(base, reps)[:height, :width]
    noise = np.random.default_rng(seed).normal(0, 4, img.shape)
    img = np.clip(img + noise, 0, 255).astype(np.uint8)
    cv2.imwrite(str(path), img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
    return width, height


def deblur_one(session, src: Path, dst: Path, overlap: int, batch_size: int) -> dict:
    t0 = time.perf_counter()
    width, height = read_image_header(src)
    img = read_image(src)
    t_read = time.perf_counter()
    restored, stats = deblur_image(session, img.image.numpy(), overlap=overlap, batch_size=batch_size)
    t_run = time.perf_counter()
    write_image(dst, img.with_image(torch.from_numpy(restored)))
    t_end = time.perf_counter()
    mp = width * height / 1e6
    return {"megapixels": round(mp, 2), "tiles": stats.tiles, "seconds": t_end - t0, "read_s": t_read - t0,
            "restore_s": t_run - t_read, "write_s": t_end - t_run, "s_per_mp": (t_end - t0) / mp}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,24", help="Comma-separated megapixels, smallest first (default 1,24).")
    ap.add_argument("--session", choices=["torch", "identity"], default="torch")
    ap.add_argument("--checkpoint", type=Path, default=None, help="Weight file (default: the shipped model).")
    ap.add_argument("--tile", type=int, default=None, help="identity session: tile size (default: the model's).")
    ap.add_argument("--overlap", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    sizes = [float(s) for s in args.sizes.split(",")]

    if args.session == "torch":
        from dramnet_edge.runtime.session import TorchSession
        from dramnet_edge.weights import resolve_model

        net, name, source = resolve_model(None, args.checkpoint, "dramnet_tiny",
                                          warn=lambda m: print(m, file=sys.stderr))
        session = TorchSession(net)
        label = f"{name} ({source.name if source else 'random init'}), torch, {args.threads} thread(s)"
    else:
        session = IdentitySession(args.tile or 112)
        label = f"identity session (pipeline only), tile {session.tile}"
    runs: dict[float, list[dict]] = {s: [] for s in sizes}
    peak_mb = {}
    with tempfile.TemporaryDirectory(prefix="deblur-scaling-") as tmp:
        tmp = Path(tmp)
        for s in sizes:
            # made in a child process: ru_maxrss only grows, and making a 24 MP photo takes more than reading it
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                w, h = pool.apply(make_photo, (tmp / f"{s:g}mp.jpg", s))
            print(f"{s:g} MP: {w}x{h}, {count_tiles(h, w, session.tile, args.overlap)} tiles", file=sys.stderr)
        for r in range(args.repeat):
            for s in sizes:
                res = deblur_one(session, tmp / f"{s:g}mp.jpg", tmp / f"{s:g}mp.png", args.overlap, args.batch_size)
                runs[s].append(res)
                peak_mb.setdefault(s, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # first round
                print(f"  round {r + 1}: {s:g} MP {res['seconds']:.1f} s ({res['s_per_mp']:.2f} s/MP; read "
                      f"{res['read_s']:.1f}, restore {res['restore_s']:.1f}, write {res['write_s']:.1f})",
                      file=sys.stderr)
    rows = []
    for s in sizes:
        med = {k: statistics.median(r[k] for r in runs[s]) for k in ("seconds", "s_per_mp", "read_s", "restore_s",
                                                                      "write_s")}
        rows.append({"megapixels": runs[s][0]["megapixels"], "tiles": runs[s][0]["tiles"], **{k: round(v, 3) for k, v
                     in med.items()}, "peak_rss_mb_after": round(peak_mb[s])})
    ratio = rows[-1]["s_per_mp"] / rows[0]["s_per_mp"]
    result = {"session": label, "overlap": args.overlap, "batch_size": args.batch_size, "repeat": args.repeat,
              "rows": rows, "s_per_mp_ratio_largest_to_smallest": round(ratio, 3), "target_ratio": 1.3,
              "met": ratio <= 1.3}
    print(f"{label}")
    print("| MP | tiles | s | s/MP | read s | restore s | write s | peak RSS after (MB) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['megapixels']} | {r['tiles']} | {r['seconds']:.1f} | {r['s_per_mp']:.2f} | {r['read_s']:.1f} | "
              f"{r['restore_s']:.1f} | {r['write_s']:.1f} | {r['peak_rss_mb_after']} |")
    print(f"s/MP ratio {rows[-1]['megapixels']} MP / {rows[0]['megapixels']} MP: {ratio:.2f} "
          f"(target <= 1.3: {'met' if result['met'] else 'NOT met'})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
