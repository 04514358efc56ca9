"""Choose a DRAMNet checkpoint's skip threshold (``tau_skip``) on the *training* photos, and optionally store it.

    python benchmarks/tune_skip.py                                   # the shipped default; prints the sweep
    python benchmarks/tune_skip.py --checkpoint w.safetensors --write   # ... and stores the chosen value in w

The skip exit returns a tile untouched when the gate's highest blur score on it is below ``tau_skip`` (no ViT, no
decoder). Where a model would only harm a tile (soft-by-nature content it takes for blurred, a sharp tile) the skip
is a gain; where it would help, a loss. This script measures both on photos that neither the quality benchmark
scores nor the shipped weights trained on (``TUNING_PHOTOS``: scikit-learn's two colour photos and scikit-image's
fundus micrograph, upscaled 3x so it is soft by nature, as the benchmark's micrograph is), blurred by the
benchmark's own protocol (every family, space and variant, seeds of their own), plus each photo unblurred. The
training photos would be the wrong set: the gate has learned them, so every threshold looks safe on them (on step
4's weights a sweep over them picked 0.75, which skips blurred tiles of held-out photos). Each image runs through the model **once**
(tiled exactly as ``dramnet-edge deblur`` tiles it, overlap 32); the output for every threshold of the grid is then
re-blended from those tiles, replacing the tiles whose gate score is below the threshold by their input, which is
what the runtime returns for them. So the sweep costs one model pass per image.

The chosen threshold: the highest of the grid whose mean PSNR gain over the blurred images is within ``--tolerance``
dB (default 0.02) of the best threshold's (0 = never skip is always in the grid). Highest, because a higher threshold
skips more tiles (faster, and sharp content is left alone); within a tolerance, because a difference of 0.02 dB on
this set is noise. ``--write`` stores it in the weight file's metadata (``tau_skip``), atomically; ``dramnet-edge
deblur`` and ``benchmarks/real_photo_gain.py`` then use it unless told ``--tau-skip``.

Three tuning photos are few: check a threshold on the photos you care about before storing it. On a gate retrained
for soft content this script chose 0.6 (+0.67 dB on its three photos), and the held-out benchmark then lost 0.11 dB
with it (docs/early_exit.md), so the shipped weights store none.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402

import real_photo_gain as rpg  # noqa: E402

DEFAULT_GRID = (0.0, 0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8)
#: The tuning photos and the factor each is upscaled by (bicubic) before the centre crop.
TUNING_PHOTOS = {"china": 1.0, "flower": 1.0, "microaneurysms": 3.0}
#: Tuning images are seeded apart from the benchmark's and the unsharp-mask tuning's.
SEED_OFFSET = 20_000


def tuning_photo(name: str, side: int) -> np.ndarray:
    """A tuning photo, upscaled by its ``TUNING_PHOTOS`` factor, centre-cropped, on the 8-bit grid: (H, W, 3)."""
    import cv2

    from dramnet_edge.data.families import load_photo

    photo = load_photo(name)
    factor = TUNING_PHOTOS.get(name, 1.0)
    if factor != 1.0:
        h, w = photo.shape[:2]
        photo = cv2.resize(photo, (round(w * factor), round(h * factor)), interpolation=cv2.INTER_CUBIC)
    return rpg.quantise(rpg.centre_crop(photo, side))


class ReplaySession:
    """A session that runs the model once per image and then replays its tiles for any skip threshold.

    ``record()`` before the first pass: every ``infer`` call runs the wrapped TorchSession (no skip) and keeps its
    output and the gate's max score per tile. ``replay(tau_skip)`` before each further pass: ``infer`` returns the
    kept outputs, with the tiles whose score is below ``tau_skip`` replaced by their input. The tiler calls
    ``infer`` with the same batches in the same order for the same image, which ``replay`` checks.
    """

    def __init__(self, session):
        self.inner = session
        self.tile = session.tile
        self.path_counts = {"full": 0, "light": 0, "skip": 0}
        self._calls: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._tau: float | None = None
        self._i = 0
        self.replayed_tiles = 0

    def record(self) -> None:
        self._calls, self._tau, self._i = [], None, 0

    def replay(self, tau_skip: float) -> None:
        self._tau, self._i = tau_skip, 0

    def infer(self, tiles: np.ndarray, tau: float | None):
        import torch

        if self._tau is None:
            out, exited = self.inner.infer(tiles, tau)
            with torch.inference_mode():
                x = torch.from_numpy(np.ascontiguousarray(tiles, dtype=np.float32))
                score = self.inner.model.gate(x).flatten(1).amax(dim=1).numpy()
            self._calls.append((tiles.copy(), out, score))
            return out, exited
        kept_tiles, out, score = self._calls[self._i]
        self._i += 1
        if kept_tiles.shape != tiles.shape or not np.array_equal(kept_tiles, tiles):
            raise RuntimeError("replay saw other tiles than the recorded pass (the tiler's order changed)")
        skip = score < self._tau
        self.path_counts["skip"] += int(skip.sum())
        self.replayed_tiles += len(tiles)
        return np.where(skip[:, None, None, None], tiles, out), skip


def sweep(checkpoint: Path, photos, grid, side: int, log=print) -> dict:
    """{"blurred": {tau: [gain per image]}, "unblurred": {tau: [PSNR per photo]}, "skipped": {tau: fraction}}."""
    from dramnet_edge.data.kernels import FAMILIES, SPACES
    from dramnet_edge.models.builder import load_model
    from dramnet_edge.runtime.session import TorchSession

    net, _ = load_model(checkpoint)
    if not hasattr(net, "gate"):
        raise ValueError(f"{checkpoint}: model has no skip gate (only DRAMNet models have one)")
    session = ReplaySession(TorchSession(net.eval(), tau_skip=None))
    gains = {t: [] for t in grid}
    per_photo = {name: {} for name in photos}
    unblurred = {t: [] for t in grid}
    skipped = {t: [0, 0] for t in grid}
    for k, name in enumerate(photos):
        t0 = time.perf_counter()
        sharp = tuning_photo(name, side)
        pi = SEED_OFFSET + sorted(set(TUNING_PHOTOS) | set(photos)).index(name)
        images = [(None, sharp)]
        for family in FAMILIES:
            for space in SPACES:
                for variant in rpg.VARIANTS:
                    blurred, _ = rpg.degrade(sharp, family, space, variant,
                                             rpg.image_seed(pi, family, space, variant))
                    images.append((rpg.psnr(blurred, sharp), blurred))
        for p_in, image in images:
            session.record()
            rpg.restore(session, image)
            for t in grid:
                session.replay(t)
                before, seen = session.path_counts["skip"], session.replayed_tiles
                out, _ = rpg.restore(session, image)
                p_out = rpg.psnr(out, sharp)
                if p_in is None:
                    unblurred[t].append(p_out)
                else:
                    gains[t].append(p_out - p_in)
                    skipped[t][0] += session.path_counts["skip"] - before
                    skipped[t][1] += session.replayed_tiles - seen
        for t in grid:
            per_photo[name][t] = float(np.mean(gains[t][-(len(images) - 1):]))
        log(f"[{k + 1}/{len(photos)}] {name}: {len(images)} images in {time.perf_counter() - t0:.0f} s; "
            + ", ".join(f"{t:g}: {per_photo[name][t]:+.2f}" for t in grid))
    return {"per_photo": per_photo, "blurred": gains, "unblurred": unblurred, "skipped": skipped}


def choose(result: dict, grid, tolerance: float) -> float:
    means = {t: float(np.mean(result["blurred"][t])) for t in grid}
    best = max(means.values())
    return max(t for t in grid if means[t] >= best - tolerance)


def write_tau_skip(path: Path, tau_skip: float, provenance: dict) -> None:
    """Store ``tau_skip`` (and how it was chosen) in a weight file's metadata; tensors unchanged; atomic."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from dramnet_edge.io_utils import atomic_write

    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata() or {})
        state = {k: f.get_tensor(k) for k in f.keys()}
    meta["tau_skip"] = f"{tau_skip:g}"
    meta["tau_skip_tuning"] = json.dumps(provenance, sort_keys=True)
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata=meta))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[2].replace("\n", " "),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=None,
                    help="a DRAMNet .safetensors weight file (default: the shipped default)")
    ap.add_argument("--photos", default=None, help="comma-separated photos, none of them held out (default: " + ",".join(TUNING_PHOTOS) + ")")
    ap.add_argument("--grid", default=",".join(f"{t:g}" for t in DEFAULT_GRID),
                    help="comma-separated thresholds in [0, 1]; 0 (never skip) is always added")
    ap.add_argument("--tolerance", type=float, default=0.02,
                    help="dB of mean gain the chosen threshold may give up against the best one (default 0.02)")
    ap.add_argument("--max-side", type=int, default=320, help="centre crop of each photo, px (default 320)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--write", action="store_true", help="store the chosen tau_skip in the weight file's metadata")
    ap.add_argument("--json", type=Path, metavar="PATH", help="also write the sweep as JSON")
    return ap


def main(argv: list[str] | None = None) -> int:
    from dramnet_edge.data.families import HELD_OUT_PHOTOS, PHOTO_FILES

    args = build_parser().parse_args(argv)
    try:
        grid = sorted({0.0} | {float(t) for t in args.grid.split(",") if t})
    except ValueError:
        print(f"--grid: {args.grid!r} is not a comma-separated list of numbers", file=sys.stderr)
        return 2
    if not all(0.0 <= t <= 1.0 for t in grid):
        print(f"--grid: every threshold must be in [0, 1], got {args.grid}", file=sys.stderr)
        return 2
    photos = [p for p in (args.photos or ",".join(TUNING_PHOTOS)).split(",") if p]
    accepted = sorted(set(PHOTO_FILES) - set(HELD_OUT_PHOTOS))
    bad = [p for p in photos if p not in accepted]
    if bad or not photos:
        held = [p for p in bad if p in HELD_OUT_PHOTOS]
        why = " (held-out photos never tune anything)" if held else ""
        print(f"--photos: {','.join(bad) or 'empty'} not accepted{why}; choose from {','.join(accepted)}",
              file=sys.stderr)
        return 2
    if args.tolerance < 0 or args.threads < 1 or (args.max_side and args.max_side < 32):
        print("--tolerance must be >= 0, --threads >= 1, --max-side 0 or >= 32", file=sys.stderr)
        return 2
    checkpoint = args.checkpoint or (rpg.default_checkpoints() or [None])[0]
    if checkpoint is None or not Path(checkpoint).is_file() or Path(checkpoint).suffix != ".safetensors":
        print(f"--checkpoint: {checkpoint} is not a .safetensors weight file", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    print(f"checkpoint {checkpoint}; {len(photos)} photos ({', '.join(photos)}) x 16 blurred + unblurred, centre {args.max_side} px; "
          f"thresholds {', '.join(f'{t:g}' for t in grid)}")
    try:
        result = sweep(Path(checkpoint), photos, grid, args.max_side)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    chosen = choose(result, grid, args.tolerance)
    print(f"\n| tau_skip | mean gain, blurred (dB) | vs never skip | blurred tiles skipped | unblurred mean / min (dB) |")
    print("|---|---|---|---|---|")
    base = float(np.mean(result["blurred"][0.0]))
    rows = []
    for t in grid:
        g = float(np.mean(result["blurred"][t]))
        n_skip, n_all = result["skipped"][t]
        u = result["unblurred"][t]
        frac = n_skip / n_all if n_all else 0.0
        rows.append({"tau_skip": t, "mean_gain_db": round(g, 4), "blurred_tiles_skipped": round(frac, 4),
                     "per_photo_gain_db": {n: round(v[t], 4) for n, v in result["per_photo"].items()},
                     "unblurred_mean_db": round(float(np.mean(u)), 2), "unblurred_min_db": round(float(np.min(u)), 2)})
        mark = " **chosen**" if t == chosen else ""
        print(f"| {t:g}{mark} | {g:+.3f} | {g - base:+.3f} | {100 * frac:.1f} % | {np.mean(u):.1f} / {np.min(u):.1f} |")
    print(f"\nchosen tau_skip = {chosen:g} (highest within {args.tolerance:g} dB of the best mean gain); "
          f"{time.perf_counter() - t0:.0f} s")
    provenance = {"photos": photos, "max_side": args.max_side, "tolerance_db": args.tolerance,
                  "grid": grid, "rows": rows, "script": "benchmarks/tune_skip.py"}
    if args.json:
        args.json.write_text(json.dumps({"checkpoint": str(checkpoint), "chosen": chosen, **provenance}, indent=1))
    if args.write:
        write_tau_skip(Path(checkpoint), chosen, provenance)
        print(f"wrote tau_skip={chosen:g} into {checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
