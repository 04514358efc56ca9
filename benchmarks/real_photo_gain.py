"""The project's quality benchmark: PSNR gain of DRAMNet checkpoints on held-out real photos, beside a tuned peer.

    python benchmarks/real_photo_gain.py                                  # the shipped default(s)
    python benchmarks/real_photo_gain.py --checkpoint old.safetensors --checkpoint new.safetensors --json q.json
    python benchmarks/real_photo_gain.py --quick                          # 2 photos, clean only (seconds)

Photos: the 12 held-out photographs of ``dramnet_edge.data.families.HELD_OUT_PHOTOS`` (scikit-image's and
matplotlib's sample photos; no training recipe ever sees them, a test checks it), centre-cropped to ``--max-side``
and quantised to 8 bits. Each photo is blurred by every family of ``dramnet_edge.data.kernels`` (Gaussian sigma 1-2.5,
defocus radius 2-4, linear motion 7-15 px at a random angle, camera shake 7-15 px), each applied in linear light and
on sRGB values, each recorded clean (8-bit) and mildly degraded (Gaussian noise sigma 2/255, then JPEG quality 90).
The extent, angle and shake path of a (photo, family, space, variant) are drawn from a generator seeded by those four,
so every run scores the same images. One more row per photo: the **unblurred** photo itself, which a model must
return nearly untouched (PSNR against the photo >= 40 dB).

Peers on the same images: the blurred input, and scikit-image's ``unsharp_mask`` with (radius, amount) chosen per
(family, variant) by grid search on a *separate* set of photos (the training photos, ``TRAIN_PHOTOS``, blurred by the
same protocol with other seeds): a strong peer, not a straw man. Models run each image whole through the tiled
runtime (``deblur_image``, seamless tiles at the model's tile size, output quantised to 8 bits as ``deblur`` writes).

Prints per-family tables (input PSNR, unsharp-mask gain, each model's gain, model - unsharp mask), breakdowns by
space and variant, the unblurred row, and the targets of the model-quality issue as PASS/FAIL lines.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

VARIANTS = {"clean": (0.0, None), "noisy": (2.0 / 255.0, 90)}  # (noise sigma, JPEG quality)
USM_RADII = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
USM_AMOUNTS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
TARGETS = {"mean_gain_db": 2.5, "over_usm_db": 0.8, "unblurred_min_db": 40.0}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 100.0 if mse <= 1e-12 else 10.0 * float(np.log10(1.0 / mse))


def quantise(x: np.ndarray) -> np.ndarray:
    return (np.round(np.clip(x, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def centre_crop(photo: np.ndarray, side: int) -> np.ndarray:
    h, w = photo.shape[:2]
    if not side:
        return photo
    y, x = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return np.ascontiguousarray(photo[y : y + side, x : x + side])


def blurred_copy(sharp: np.ndarray, family: str, space: str, variant: str, seed: tuple) -> tuple[np.ndarray, dict]:
    """The benchmark's degraded version of an (H, W, 3) 8-bit photo and the blur's parameters."""
    from dramnet_edge.data import kernels

    rng = np.random.default_rng(list(seed))
    low, high = kernels.EVAL_RANGES[family]
    psf, params = kernels.family_psf(family, float(rng.uniform(low, high)), rng)
    noise, quality = VARIANTS[variant]
    out = kernels.record(kernels.blur(sharp, psf, space), rng, noise, quality)
    return out, params


def _family_index(family: str) -> int:
    from dramnet_edge.data.kernels import FAMILIES

    return FAMILIES.index(family)


def unsharp(image: np.ndarray, radius: float, amount: float) -> np.ndarray:
    """scikit-image's unsharp mask of an (H, W, 3) image in [0, 1], clipped and quantised (what a saved file holds).

    ``channel_axis=2``, not -1: scikit-image 0.26 slices the *first* axis for a negative channel axis in
    ``unsharp_mask`` (its ``slice_at_axis(c, -1)`` gives ``(c, ...)``), which leaves most of the output uninitialised.
    """
    from skimage.filters import unsharp_mask

    return quantise(unsharp_mask(image, radius=radius, amount=amount, channel_axis=2))


def tune_unsharp(families, spaces, variants, side: int, log=print) -> dict:
    """Best (radius, amount) per (family, variant) on the training photos (never the held-out ones)."""
    from dramnet_edge.data.families import TRAIN_PHOTOS, load_photo

    photos = [quantise(centre_crop(load_photo(n), side)) for n in TRAIN_PHOTOS]
    best = {}
    for family in families:
        for variant in variants:
            scores: dict[tuple[float, float], list[float]] = {}
            for pi, sharp in enumerate(photos):
                for space in spaces:
                    seed = (10_000 + pi, _family_index(family), spaces.index(space), list(VARIANTS).index(variant))
                    blurred, _ = blurred_copy(sharp, family, space, variant, seed)
                    base = psnr(blurred, sharp)
                    for radius in USM_RADII:
                        for amount in USM_AMOUNTS:
                            cand = unsharp(blurred, radius, amount)
                            scores.setdefault((radius, amount), []).append(psnr(cand, sharp) - base)
            key = max(scores, key=lambda k: np.mean(scores[k]))
            best[f"{family}/{variant}"] = {"radius": key[0], "amount": key[1],
                                          "tuning_gain_db": round(float(np.mean(scores[key])), 3)}
            log(f"  unsharp mask for {family:8s} {variant:5s}: radius {key[0]}, amount {key[1]} "
                f"(+{np.mean(scores[key]):.2f} dB on {len(photos)} training photos)")
    return best


def load_models(checkpoints: list[str]):
    from dramnet_edge.models.checkpoint import load_model
    from dramnet_edge.runtime.session import TorchSession
    from dramnet_edge.weights import default_checkpoint

    paths = [Path(c) for c in checkpoints]
    if not paths:
        paths = [p for p in (default_checkpoint("dramnet_tiny"), default_checkpoint("dramnet_lite")) if p is not None]
    if not paths:
        raise ValueError("no --checkpoint given and no shipped weights (dramnet_tiny, dramnet_lite)")
    models = []
    for path in paths:
        if not path.is_file():
            raise ValueError(f"checkpoint not found: {path}")
        net, meta = load_model(path)
        models.append({"label": f"{meta.get('model')}:{path.name}", "model": meta.get("model"), "checkpoint": str(path),
                       "session": TorchSession(net.eval())})
    labels = [m["label"] for m in models]
    if len(set(labels)) != len(labels):  # two files of one name: tell them apart by their folder
        for m in models:
            m["label"] = f"{m['model']}:{Path(m['checkpoint']).parent.name}/{Path(m['checkpoint']).name}"
    return models


def restore(session, image: np.ndarray, tau_skip: float | None) -> np.ndarray:
    from dramnet_edge.runtime.tiling import deblur_image

    session.tau_skip = tau_skip
    out, _ = deblur_image(session, np.ascontiguousarray(image.transpose(2, 0, 1)))
    return quantise(out.transpose(1, 2, 0))


def summarise(rows: list[dict], models: list[dict], key: str | None) -> dict:
    """Mean input PSNR, unsharp-mask gain and each model's gain, grouped by ``key`` (None: everything)."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault("all" if key is None else r[key], []).append(r)
    out = {}
    for name, rs in groups.items():
        entry = {"images": len(rs), "psnr_input": float(np.mean([r["psnr_input"] for r in rs])),
                 "usm_gain_db": float(np.mean([r["usm_gain_db"] for r in rs]))}
        for m in models:
            entry[m["label"]] = {"gain_db": float(np.mean([r["models"][m["label"]]["gain_db"] for r in rs])),
                                 "ssim_output": float(np.mean([r["models"][m["label"]]["ssim_output"] for r in rs]))}
        out[name] = entry
    return out


def check_targets(per_family: dict, overall: dict, unblurred: dict, label: str) -> list[dict]:
    checks = []
    gain, usm = overall["all"][label]["gain_db"], overall["all"]["usm_gain_db"]
    checks.append({"target": f"mean gain >= +{TARGETS['mean_gain_db']} dB", "value": round(gain, 3),
                   "ok": gain >= TARGETS["mean_gain_db"]})
    checks.append({"target": f"mean gain >= unsharp mask + {TARGETS['over_usm_db']} dB",
                   "value": round(gain - usm, 3), "ok": gain - usm >= TARGETS["over_usm_db"]})
    for family, entry in per_family.items():
        g = entry[label]["gain_db"]
        checks.append({"target": f"{family}: gain > 0 and >= unsharp mask ({entry['usm_gain_db']:+.2f})",
                       "value": round(g, 3), "ok": g > 0 and g >= entry["usm_gain_db"]})
    if unblurred:
        low = unblurred[label]["min_psnr"]
        checks.append({"target": f"unblurred photos: min PSNR >= {TARGETS['unblurred_min_db']} dB", "value": round(low, 2),
                       "ok": low >= TARGETS["unblurred_min_db"]})
    return checks


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    import torch

    from dramnet_edge.metrics import ssim

    t = lambda x: torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]  # noqa: E731
    return float(ssim(t(a), t(b)))


def _print_table(title: str, summary: dict, models: list[dict]) -> None:
    print(f"\n{title}")
    head = f"{'':14s} {'n':>4s} {'input dB':>9s} {'USM gain':>9s}"
    for m in models:
        head += f" | {m['label'][:28]:>28s} gain  -USM"
    print(head)
    for name, e in summary.items():
        line = f"{name:14s} {e['images']:4d} {e['psnr_input']:9.2f} {e['usm_gain_db']:+9.2f}"
        for m in models:
            g = e[m["label"]]["gain_db"]
            line += f" | {'':28s} {g:+5.2f} {g - e['usm_gain_db']:+5.2f}"
        print(line)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    from dramnet_edge.data.families import HELD_OUT_PHOTOS
    from dramnet_edge.data.kernels import FAMILIES, SPACES

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--checkpoint", action="append", default=[],
                    help="weights (.safetensors or training .pt), repeatable: models scored side by side; default: "
                         "the shipped dramnet_tiny and dramnet_lite weights")
    ap.add_argument("--photos", default=",".join(HELD_OUT_PHOTOS), help="comma-separated subset of the held-out photos")
    ap.add_argument("--families", default=",".join(FAMILIES), help=f"subset of {','.join(FAMILIES)}")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"subset of {','.join(VARIANTS)}")
    ap.add_argument("--max-side", type=int, default=320, help="centre-crop photos to this side (default 320; 0: whole)")
    ap.add_argument("--tau-skip", type=float, default=None, help="run the models with their skip gate at this threshold")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--quick", action="store_true", help="2 photos, clean variant only (a smoke run)")
    ap.add_argument("--json", type=Path, help="write every row and summary here")
    args = ap.parse_args(argv)

    photos = [p for p in args.photos.split(",") if p]
    families = [f for f in args.families.split(",") if f]
    variants = [v for v in args.variants.split(",") if v]
    if args.quick:
        photos, variants = photos[:2], ["clean"]
    for name, values, accepted in (("--photos", photos, HELD_OUT_PHOTOS), ("--families", families, FAMILIES),
                                   ("--variants", variants, tuple(VARIANTS))):
        bad = [v for v in values if v not in accepted]
        if bad or not values:
            print(f"{name}: {','.join(bad) or 'empty'} not accepted; choose from {','.join(accepted)}", file=sys.stderr)
            return 2
    if args.max_side < 0 or args.threads < 1:
        print("--max-side must be >= 0 and --threads >= 1", file=sys.stderr)
        return 2

    import torch

    torch.set_num_threads(args.threads)
    from dramnet_edge.data.families import load_photo

    try:
        models = load_models(args.checkpoint)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    spaces = list(SPACES)
    print(f"tuning the unsharp mask on the training photos ({len(families)} families x {len(variants)} variants)")
    usm = tune_unsharp(families, spaces, variants, args.max_side)
    rows, unblurred_rows = [], []
    for pi, name in enumerate(photos):
        t_photo = time.perf_counter()
        sharp = quantise(centre_crop(load_photo(name), args.max_side))
        photo_index = HELD_OUT_PHOTOS.index(name)
        for family in families:
            for space in spaces:
                for variant in variants:
                    seed = (photo_index, _family_index(family), spaces.index(space), list(VARIANTS).index(variant))
                    blurred, params = blurred_copy(sharp, family, space, variant, seed)
                    p = usm[f"{family}/{variant}"]
                    peer = unsharp(blurred, p["radius"], p["amount"])
                    row = {"photo": name, "family": family, "space": space, "variant": variant, "blur": params,
                           "psnr_input": psnr(blurred, sharp), "ssim_input": _ssim(blurred, sharp),
                           "psnr_usm": psnr(peer, sharp), "models": {}}
                    row["usm_gain_db"] = row["psnr_usm"] - row["psnr_input"]
                    for m in models:
                        out = restore(m["session"], blurred, args.tau_skip)
                        po = psnr(out, sharp)
                        row["models"][m["label"]] = {"psnr_output": po, "gain_db": po - row["psnr_input"],
                                                     "ssim_output": _ssim(out, sharp)}
                    rows.append(row)
        fixed = usm.get(f"{families[0]}/clean") or next(iter(usm.values()))
        entry = {"photo": name, "psnr_usm": psnr(unsharp(sharp, fixed["radius"], fixed["amount"]), sharp), "models": {}}
        for m in models:
            entry["models"][m["label"]] = {"psnr_output": psnr(restore(m["session"], sharp, args.tau_skip), sharp)}
        unblurred_rows.append(entry)
        gains = "  ".join(f"{m['label']} {np.mean([r['models'][m['label']]['gain_db'] for r in rows if r['photo'] == name]):+.2f}"
                          for m in models)
        usm_gain = np.mean([r["usm_gain_db"] for r in rows if r["photo"] == name])
        print(f"{name:13s} USM {usm_gain:+.2f}  {gains}  unblurred "
              + " ".join(f"{e['psnr_output']:.1f}" for e in entry["models"].values())
              + f" dB  ({time.perf_counter() - t_photo:.0f} s)", flush=True)

    per_family = summarise(rows, models, "family")
    overall = summarise(rows, models, None)
    per_space, per_variant = summarise(rows, models, "space"), summarise(rows, models, "variant")
    unblurred = {m["label"]: {"mean_psnr": float(np.mean([e["models"][m["label"]]["psnr_output"] for e in unblurred_rows])),
                              "min_psnr": float(np.min([e["models"][m["label"]]["psnr_output"] for e in unblurred_rows]))}
                 for m in models}
    for title, summary in (("per blur family", per_family), ("all", overall), ("per space", per_space),
                           ("per variant", per_variant)):
        _print_table(title, summary, models)
    print("\nunblurred photos (PSNR of the output against the photo; USM with the gaussian/clean setting): USM "
          f"{np.mean([e['psnr_usm'] for e in unblurred_rows]):.1f} dB mean; "
          + "; ".join(f"{k}: mean {v['mean_psnr']:.1f}, min {v['min_psnr']:.1f} dB" for k, v in unblurred.items()))
    targets = {}
    for m in models:
        checks = check_targets(per_family, overall, unblurred, m["label"])
        targets[m["label"]] = checks
        print(f"\nTARGETS for {m['label']}: {sum(c['ok'] for c in checks)}/{len(checks)} met")
        for c in checks:
            print(f"  {'PASS' if c['ok'] else 'FAIL'}  {c['target']}: {c['value']:+.2f}")
    seconds = time.perf_counter() - t0
    print(f"\n{len(rows)} blurred images + {len(unblurred_rows)} unblurred, {len(photos)} photos at {args.max_side}px, "
          f"{seconds:.0f} s on {cpu_name()} ({args.threads} thread(s))")
    if args.json:
        payload = {"models": [{k: v for k, v in m.items() if k != "session"} for m in models], "photos": photos,
                   "families": families, "spaces": spaces, "variants": {v: VARIANTS[v] for v in variants},
                   "max_side": args.max_side, "tau_skip": args.tau_skip, "unsharp_mask": usm,
                   "per_family": per_family, "overall": overall, "per_space": per_space, "per_variant": per_variant,
                   "unblurred": unblurred, "unblurred_rows": unblurred_rows, "targets": targets, "rows": rows,
                   "seconds": round(seconds, 1), "cpu": cpu_name(), "threads": args.threads}
        tmp = args.json.with_name(args.json.name + ".tmp")
        tmp.write_text(json.dumps(payload, indent=1) + "\n")
        os.replace(tmp, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
