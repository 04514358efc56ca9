"""Early exit: speedup against PSNR loss over tau, on real photos whose left half is sharp, every policy in one run.

    python benchmarks/early_exit.py                                   # shipped weights, else random init (said)
    python benchmarks/early_exit.py --checkpoint runs/quick/model.safetensors --repeat 5
    python benchmarks/early_exit.py --out out/ee --taus none,0.3,0.05:,0.1:,0.1:0.3

Images: the bundled examples/blurred/hopper_left_sharp.png (right half defocused, target in examples/sharp/) and
scikit-image photos held out of the synthetic training split, their right half blurred by a real PSF (motion streak
/ defocus disk, linear light, 8-bit) and their left half the untouched original (``dramnet_edge.bench.photos``).
Policies: no exit (the reference), the paper's light exit (``T``: tiles whose max blur score is below T take the
light decoder), our skip exit (``S:``: tiles whose max gate score is below S are returned as they came, without the
ViT or the decoder) and both (``S:T``). Every (model, policy) run is in one process, interleaved image by image and
rotated each repetition (``dramnet_edge.bench.bench.run_bench``), so machine load hits all alike; speedup = median
over repetitions of the no-exit pass time over the policy's (range in brackets), in wall time and in process CPU
time (with one thread the latter leaves out the time other processes held the core: steadier on a shared machine).
Keep --threads 1 (the default) on a shared machine: spinning OpenMP threads on contended cores distort everything.

Quality: PSNR against the sharp targets (and its change against no exit: the "PSNR loss"), and PSNR against the
same model's no-exit output (what the exit changed, whatever the model's quality). Because the targets are known,
the gate itself is graded: a tile is *sharp* when its Eq. 1 target (the Laplacian difference the blur map is trained
to predict) stays below --sharp-level in every 14x14 cell; per skip threshold the table gives how many skipped tiles
were sharp (precision) and how many sharp tiles were skipped (recall). The *oracle* rows run the same session with
the exit decisions taken from that ground truth (the real gate still runs, so its cost is counted): not deployable,
but it shows what the mechanism buys when the blur map is right, whatever the weights at hand.

Weights whose output head is all zero (random init, and any checkpoint that never trained the head) return their
input exactly, so every PSNR loss would be 0 by construction. Then a *random-head* copy is benchmarked too (head and
decoder residual scales drawn at random, seed fixed): still no deblurring, but an output that differs from the input
wherever the model runs, so what an exit drops shows up in the PSNR columns; the oracle runs on that copy.

Writes OUT/result.json (the bench result plus gate quality), OUT/table.md and OUT/early_exit.png (speedup against
PSNR loss, and speedup against tau). Measured on 2 shared CPU cores: 121 s at the default settings with random-init
weights (policies no tile can take are not timed), 192 s with a checkpoint under which every policy exits tiles.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_TAUS = "none,0.3,0.5,0.8,1.0,0.05:,0.1:,0.2:,0.1:0.3,0.2:0.6,0.2:0.8"
#: Oracle: the paper's light exit and our skip exit on the same (truly sharp) tiles, and a stricter skip.
ORACLE_TAUS = "none,0.05,0.02:,0.05:"
RANDOM_HEAD_TAUS = "none,0.5,0.1:,0.1:0.3"
DEFAULT_EXAMPLES = "hopper_left_sharp"
DEFAULT_PHOTOS = "rocket,chelsea"
#: The tile the quick recipe trains the embedded default at (train/quickstart.yaml); used for random init.
RANDOM_INIT_TILE = 112
TARGET_SPEEDUP, TARGET_LOSS_DB = 1.5, 0.05


# ------------------------------------------------------------------------------------------- the models

def load_net(checkpoint: str | None, tile: int | None):
    """(model in eval mode, label, weights description). checkpoint None: the shipped default's weights, else a
    randomly initialised dramnet_tiny at ``tile`` (default ``RANDOM_INIT_TILE``)."""
    from dramnet_edge.models.builder import retile
    from dramnet_edge.models import create_model
    from dramnet_edge.models.builder import load_model
    from dramnet_edge.weights import default_checkpoint

    from dramnet_edge.weights import EMBEDDED_DEFAULT

    path = Path(checkpoint) if checkpoint else default_checkpoint(EMBEDDED_DEFAULT)
    if path is not None:
        net, meta = load_model(path)
        label = f"{meta['model']} ({path.name})"
        weights = "shipped default" if checkpoint is None else str(path)
    else:
        import torch

        torch.manual_seed(0)  # the same random model every run
        net = create_model("dramnet_tiny", tile=tile or RANDOM_INIT_TILE)
        label, weights = "dramnet_tiny (random init, seed 0)", "random init"
    if tile and net.tile != tile:
        net = retile(net, tile)
    return net.eval(), label, weights


def type_name(model) -> str:
    """The registered name a model was built under (``create_model`` records it), else its class name."""
    return getattr(model, "create_args", {}).get("name", type(model).__name__)


def head_is_zero(net) -> bool:
    return bool((net.head.weight == 0).all() and (net.head.bias == 0).all())


def random_head_copy(net, seed: int = 0, head_std: float = 0.002):
    """A copy whose output head and decoder residual scales are drawn at random (see the module docstring).
    ``head_std`` keeps the change to the input of the order of a restoration's (a few hundredths), not noise."""
    import torch

    twin = copy.deepcopy(net).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in twin.named_parameters():
            if name.endswith(("beta", "gamma")) and name.startswith("decoder"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        twin.head.weight.copy_(torch.randn(twin.head.weight.shape, generator=g) * head_std)
        twin.head.bias.zero_()
    return twin


# --------------------------------------------------------------------------------- ground truth, oracle

def _key(tile) -> str:
    import numpy as np

    return hashlib.blake2b(np.ascontiguousarray(tile, dtype=np.float32).tobytes(), digest_size=16).hexdigest()


def _tile_boxes(image, tile: int, overlap: int):
    from dramnet_edge.runtime.tiling import tile_starts

    return [(y, x) for y in tile_starts(image.shape[1], tile, overlap) for x in tile_starts(image.shape[2], tile, overlap)]


def tile_truth(images, tile: int, overlap: int) -> dict:
    """{tile bytes hash: (1, 1, T/14, T/14) Eq. 1 target} for every tile the tiler will cut from every image."""
    import torch

    from dramnet_edge.models.dram_blocks import laplacian_blur_target

    truth = {}
    for img in images:
        if min(img.image.shape[1:]) < tile:
            raise ValueError(f"{img.name} is smaller than a tile ({tile}); the oracle needs unpadded tiles")
        for y, x in _tile_boxes(img.image, tile, overlap):
            b = img.image[:, y : y + tile, x : x + tile]
            s = img.target[:, y : y + tile, x : x + tile]
            truth[_key(b)] = laplacian_blur_target(torch.from_numpy(b)[None], torch.from_numpy(s)[None])
    return truth


class OracleGate(__import__("torch").nn.Module):
    """The wrapped DRAMNet, with its exit *decisions* taken from the ground-truth Eq. 1 target of each tile (looked
    up by the tile's bytes) instead of the predicted blur map. The real gate still runs (same cost) and the decoder
    still gets the predicted map, so a tile that is not skipped is restored exactly as without the oracle."""

    def __init__(self, net, truth: dict):
        super().__init__()
        self.net = net
        self.truth = truth
        self.tile = net.tile
        self._batch_truth = None

    def gate_features(self, x):
        import torch

        self._batch_truth = torch.cat([self.truth[_key(t.cpu().numpy())] for t in x]).to(x.device)
        return self.net.gate_features(x)

    def exit_paths(self, blur, tau, tau_skip):
        assert self._batch_truth is not None and len(self._batch_truth) == len(blur)
        return self.net.exit_paths(self._batch_truth, tau, tau_skip)

    def encode(self, x):
        return self.net.encode(x)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.net, name)


def exits(policy, scores) -> int:
    """How many tiles leave the full path under ``policy``, from their max gate scores."""
    return sum(1 for v in scores if (policy.tau_skip is not None and v < policy.tau_skip)
               or (policy.tau is not None and v < policy.tau))


def gate_quality(net, images, truth: dict, tile: int, overlap: int, sharp_level: float, skips: list[float]) -> dict:
    """Per skip threshold: precision / recall of 'skipped by the model's gate' against 'sharp' (Eq. 1 target max
    below sharp_level), and the mean max gate score of sharp and of blurred tiles; "scores": every tile's max gate
    score (the exits a threshold will take, known before timing anything)."""
    import numpy as np
    import torch

    device = next(net.parameters()).device
    scores, sharp = [], []
    for img in images:
        tiles = np.stack([img.image[:, y : y + tile, x : x + tile] for y, x in _tile_boxes(img.image, tile, overlap)])
        with torch.no_grad():
            scores.append(net.gate(torch.from_numpy(tiles).to(device)).flatten(1).amax(1).cpu().numpy())
        sharp.append(np.array([float(truth[_key(t)].max()) < sharp_level for t in tiles]))
    scores, sharp = np.concatenate(scores), np.concatenate(sharp)
    out = {"tiles": int(len(scores)), "sharp_tiles": int(sharp.sum()),
           "score_sharp_mean": float(scores[sharp].mean()) if sharp.any() else None,
           "score_blurred_mean": float(scores[~sharp].mean()) if (~sharp).any() else None,
           "score_blurred_min": float(scores[~sharp].min()) if (~sharp).any() else None,
           "score_min": float(scores.min()), "scores": [round(float(v), 5) for v in scores], "per_skip": {}}
    for s in skips:
        skipped = scores < s
        hit = int((skipped & sharp).sum())
        out["per_skip"][s] = {"skipped": int(skipped.sum()),
                              "precision": hit / int(skipped.sum()) if skipped.any() else None,
                              "recall": hit / int(sharp.sum()) if sharp.any() else None}
    return out


# ----------------------------------------------------------------------------------------------- images

def _centre_crop(image, max_side: int | None):
    if max_side is None:
        return image
    _, h, w = image.shape
    y, x = max(0, (h - max_side) // 2), max(0, (w - max_side) // 2)
    return image[:, y : y + max_side, x : x + max_side].copy()


def load_bench_images(examples: str, photos: str, max_side: int | None = None):
    """BenchImages: bundled examples (examples/blurred/NAME.png with examples/sharp/NAME.png) and left-half-sharp
    scikit-image photos; ``max_side`` centre-crops them (the sharp/blurred boundary stays in the middle)."""
    from dramnet_edge.bench.bench import BenchImage
    from dramnet_edge.bench.photos import half_sharp_set
    from dramnet_edge.data.io import read_image

    images = []
    for name in (n.strip() for n in examples.split(",") if n.strip()):
        blurred, sharp = ROOT / "examples" / "blurred" / f"{name}.png", ROOT / "examples" / "sharp" / f"{name}.png"
        if not blurred.is_file() or not sharp.is_file():
            raise SystemExit(f"--examples {name}: {blurred} or {sharp} not found")
        images.append(BenchImage(name, _centre_crop(read_image(blurred).image.numpy(), max_side),
                                 _centre_crop(read_image(sharp).image.numpy(), max_side)))
    names = tuple(n.strip() for n in photos.split(",") if n.strip())
    images += [BenchImage(name, blurred, sharp)
               for name, blurred, sharp in (half_sharp_set(names, max_side) if names else [])]
    if not images:
        raise SystemExit("no images: give --examples and/or --photos")
    return images


# ------------------------------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", help="weight file (default: the shipped default model's weights, else random init)")
    ap.add_argument("--tile", type=int, default=None,
                    help=f"tile size (default: the weights'; random init: {RANDOM_INIT_TILE}, the quick recipe's)")
    ap.add_argument("--examples", default=DEFAULT_EXAMPLES, help="bundled example names (examples/blurred/NAME.png)")
    ap.add_argument("--photos", default=DEFAULT_PHOTOS, help="held-out scikit-image photos, comma-separated")
    ap.add_argument("--max-side", type=int, default=None, help="centre-crop every image to at most this side")
    ap.add_argument("--taus", default=DEFAULT_TAUS, help="exit policies: none | T | S:T | S: (comma-separated)")
    ap.add_argument("--oracle-taus", default=ORACLE_TAUS, help="policies for the oracle gate ('' = no oracle)")
    ap.add_argument("--random-head", choices=("auto", "on", "off"), default="auto",
                    help="also bench a random-head copy (auto: when the weights' head is all zero)")
    ap.add_argument("--random-head-taus", default=RANDOM_HEAD_TAUS, help="policies for the random-head copy")
    ap.add_argument("--sharp-level", type=float, default=0.05,
                    help="a tile is sharp when its scaled Eq. 1 target is below this in every 14x14 cell")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--overlap", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="out/early_exit", help="folder for result.json, table.md, early_exit.png")
    args = ap.parse_args(argv)

    import torch

    from dramnet_edge.bench.bench import Target, parse_tau_list, run_bench
    from dramnet_edge.runtime.session import TorchSession

    torch.set_num_threads(args.threads)
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    net, label, weights = load_net(args.checkpoint, args.tile)
    images = load_bench_images(args.examples, args.photos, args.max_side)
    log(f"{label}, tile {net.tile}; {len(images)} images: "
        + ", ".join(f"{i.name} {i.image.shape[2]}x{i.image.shape[1]}" for i in images))

    def target(model, name, w):
        return Target(artifact=name, backend="torch", precision="fp32", model=type_name(model), tile=model.tile,
                      weights=w, session=TorchSession(model, args.device), net=model)

    plan = [(target(net, label, weights), parse_tau_list(args.taus))]
    zero_head = head_is_zero(net)
    twin = None
    if args.random_head == "on" or (args.random_head == "auto" and zero_head):
        twin = random_head_copy(net)
        plan.append((target(twin, f"{label} + random head", weights + " + random head"),
                     parse_tau_list(args.random_head_taus)))
    truth = tile_truth(images, net.tile, args.overlap)
    if args.oracle_taus:
        base = twin if twin is not None else net
        name = ("oracle gate" + (" + random head" if twin is not None else "") + " (ground-truth Eq. 1; not deployable)")
        plan.append((target(OracleGate(base, truth), name, weights), parse_tau_list(args.oracle_taus)))
    skips = sorted({p.tau_skip for _, ps in plan[:1] for p in ps if p.tau_skip is not None})
    quality = gate_quality(net, images, truth, net.tile, args.overlap, args.sharp_level, skips)
    # The model's gate decides before anything is timed: a policy under which no tile exits would only time the
    # baseline again (an untrained gate scores every tile alike). Keep one such run, as a control that measures the
    # timing noise, and list the others as not run.
    not_run = []
    for i, (t, ps) in enumerate(plan):
        if t.artifact.startswith("oracle"):
            continue
        idle = [p for p in ps if not p.is_baseline and exits(p, quality["scores"]) == 0]
        drop = idle[1:] if i == 0 else idle
        plan[i] = (t, [p for p in ps if p not in drop])
        not_run += [(t.artifact, p.description) for p in drop]
    # A random-head copy left with its baseline alone adds nothing the oracle's baseline (same net) does not show.
    plan = [(t, ps) for i, (t, ps) in enumerate(plan) if i == 0 or len(ps) > 1 or t.artifact.startswith("oracle")]
    if not_run:
        log(f"not run (no tile scores below the threshold; lowest score {quality['score_min']:.3f}): "
            + "; ".join(f"{a}: {d}" for a, d in not_run))

    allowed = {id(t): set(ps) for t, ps in plan}
    policies = list(dict.fromkeys(p for _, ps in plan for p in ps))
    result = run_bench([t for t, _ in plan], images, policies, warmup=args.warmup, repeat=args.repeat,
                       overlap=args.overlap, batch_size=args.batch_size, device=args.device, power=True, log=log,
                       only=lambda t, p: p in allowed[id(t)])
    result["settings"].update(threads=args.threads, sharp_level=args.sharp_level, tile=net.tile,
                              head_is_zero=zero_head, model=label, weights=weights)
    result["gate_quality"] = quality
    result["not_run"] = [{"net": a, "policy": d, "reason": "no tile's gate score is below the threshold"}
                         for a, d in not_run]
    table = format_table(result)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out / "table.md").write_text(table + "\n")
    plot_path = plot_early_exit(result, out / "early_exit.png")
    log(f"wrote {out / 'result.json'}, {out / 'table.md'}, {plot_path} ({result['settings']['seconds']:.0f} s timed)")
    return 0


# ------------------------------------------------------------------------------------------------ report

def _kind(r: dict) -> str:
    if r["artifact"].startswith("oracle"):
        return "oracle"
    return "random head" if r["artifact"].endswith("random head") else "model"


def _family(r: dict) -> str:
    if r["baseline"]:
        return "none"
    if r["tau_skip"] is not None and r["tau"] is not None:
        return "skip+light"
    return "skip" if r["tau_skip"] is not None else "light"


def _gate_free(r: dict) -> bool:
    """A threshold of 1 or more sends every tile down that path whatever the gate says: a cheaper network, not an
    early exit (blur scores are sigmoid outputs, < 1)."""
    return any(r[k] is not None and r[k] >= 1.0 for k in ("tau", "tau_skip"))


def _meets(r: dict) -> bool:
    return (not r["baseline"] and not _gate_free(r) and r["speedup"] is not None and r["speedup"] >= TARGET_SPEEDUP
            and r["delta_psnr"] is not None and r["delta_psnr"] >= -TARGET_LOSS_DB)


def format_table(result: dict) -> str:
    runs = [r for r in result["runs"] if not r.get("skipped")]
    dev, st = result["device"], result["settings"]
    q = result.get("gate_quality") or {}
    lines = [
        f"# Early exit on left-half-sharp photos ({', '.join(st['images'])})",
        "",
        f"Model {st['model']} (weights: {st['weights']}), tile {st['tile']}, overlap {st['overlap']}, batch "
        f"{st['batch_size']}. Device: {dev['cpu_model']}, {dev['cpu_cores']} logical cores, torch "
        f"{dev['versions'].get('torch')}, {dev['torch_threads']} thread(s), load average {dev['load_average']} "
        f"(1/5/15 min) at the end; {st['repeat']} interleaved repetitions, {st['seconds']:.0f} s. Input (blurred) "
        f"PSNR {_f(result.get('input_psnr'), '.3f')} dB.",
    ]
    if q:
        lines.append(f"Tiles per pass: {q['tiles']}, of which {q['sharp_tiles']} sharp (Eq. 1 target < "
                     f"{st.get('sharp_level')} in every cell: the most a perfect gate could skip). Mean max gate "
                     f"score: sharp tiles {_f(q['score_sharp_mean'], '.3f')}, blurred tiles "
                     f"{_f(q['score_blurred_mean'], '.3f')} (lowest blurred {_f(q.get('score_blurred_min'), '.3f')}).")
    lines += ["", "| net / gate | policy | exit % (skip/light) | skipped tiles sharp (precision / recall) | ms/img p50 "
              "| speedup, wall (min-max) | speedup, CPU time | PSNR vs GT dB | ΔPSNR vs no exit | PSNR vs no-exit output |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    per_skip = q.get("per_skip") or {}
    for r in runs:
        kind = _kind(r)
        pq = per_skip.get(r["tau_skip"]) if kind == "model" and r["tau_skip"] is not None else None
        if kind == "oracle" and r["tau_skip"] is not None:
            prec = "by construction"
        elif pq:
            prec = f"{_pct(pq['precision'])} / {_pct(pq['recall'])}"
        else:
            prec = "–"
        vs_ref = "identical" if r["baseline"] else (
            "identical" if r["psnr_vs_no_exit"] is not None and r["psnr_vs_no_exit"] >= 100 else
            f"{_f(r['psnr_vs_no_exit'], '.2f')} dB")
        lines.append(
            f"| {kind} | {r['policy_description']} | {100 * r['exit_fraction']:.0f} ({100 * r['skip_fraction']:.0f}/"
            f"{100 * r['light_fraction']:.0f}) | {prec} | {r['latency_ms_p50']:.0f} | {r['speedup']:.2f}x "
            f"({r['speedup_min']:.2f}-{r['speedup_max']:.2f}) | {_f(r.get('speedup_cpu'), '.2f')}x | {r['psnr']:.3f} | {r['delta_psnr']:+.3f} | {vs_ref} |")
    for item in result.get("not_run") or []:
        lines.append(f"| {'random head' if item['net'].endswith('random head') else 'model'} | {item['policy']} | "
                     f"not run: {item['reason']} (lowest {q.get('score_min', 0):.3f}) | | | | | | | |")
    lines.append("")
    lines += verdict(result, runs)
    return "\n".join(lines)


def verdict(result: dict, runs: list[dict]) -> list[str]:
    """What the figures say about the target (>= TARGET_SPEEDUP at <= TARGET_LOSS_DB), and what they cannot say."""
    st = result["settings"]
    out = []
    target = f">= {TARGET_SPEEDUP}x at <= {TARGET_LOSS_DB} dB PSNR loss"
    model = [r for r in runs if _kind(r) == "model"]
    base = next((r for r in model if r["baseline"]), None)
    inp = result.get("input_psnr")
    deblurs = base is not None and inp is not None and base["psnr"] > inp + TARGET_LOSS_DB
    idle = [r for r in runs if not r["baseline"] and r["exit_fraction"] == 0]
    if idle:
        wall = [r["speedup"] for r in idle]
        cpu = [r["speedup_cpu"] for r in idle if r.get("speedup_cpu") is not None]
        out.append(f"Runs in which no tile exited do the baseline's work: their speedups (wall {min(wall):.2f}x-"
                   f"{max(wall):.2f}x" + (f", CPU time {min(cpu):.2f}x-{max(cpu):.2f}x" if cpu else "")
                   + ") are this machine's timing noise during the run.")
    for kind in ("oracle", "random head"):
        rows = [r for r in runs if _kind(r) == kind and not r["baseline"]]
        if not rows:
            continue
        best = max(rows, key=lambda r: r["speedup"])
        ok = [r for r in rows if _meets(r)]
        out.append(f"{kind}: best {best['speedup']:.2f}x wall ({_f(best.get('speedup_cpu'), '.2f')}x CPU time) at "
                   f"{best['delta_psnr']:+.3f} dB vs GT, "
                   f"{_f(best['psnr_vs_no_exit'], '.2f')} dB vs the no-exit output ({best['policy_description']}); "
                   f"target {target} vs GT {'met by ' + ', '.join(r['policy_description'] for r in ok) if ok else 'not met'}.")
        if kind == "oracle":
            out.append("The oracle skips only tiles whose input already equals the target, so no weights can lose "
                       "PSNR against the targets there (blended overlaps only mix the target in); a gain means these "
                       "weights degrade sharp tiles. Its speedup is what the skip exit buys with a blur map that is "
                       "right, on these photos at this tile size.")
    ok = [r for r in model if _meets(r)]
    if st.get("head_is_zero"):
        out.append("CAVEAT: the weights' output head is all zero, so the model returns its input and no exit can "
                   "change a pixel (every ΔPSNR is 0 by construction); read the model rows for cost only, the "
                   "random-head and oracle rows for what exits drop.")
    elif not deblurs:
        out.append(f"CAVEAT: without exit the model scores {_f(base and base['psnr'], '.3f')} dB against the blurred "
                   f"input's {_f(inp, '.3f')} dB: these weights do not deblur, so skipping a tile cannot cost PSNR "
                   "against the targets; the 'vs no-exit output' column and the gate's precision are what grade the "
                   "exit here.")
    if st.get("weights") == "random init":
        out.append("CAVEAT: random-init weights: the gate's scores are untrained, so which tiles the model exits is "
                   "arbitrary; only the cost of each path and the oracle rows are meaningful.")
    for r in (r for r in model if _gate_free(r) and r["speedup"] is not None):
        out.append(f"{r['policy_description']} sends every tile down one path without asking the gate: "
                   f"{r['speedup']:.2f}x at {r['delta_psnr']:+.3f} dB vs no exit is what that path itself costs with "
                   "these weights (not counted as an early exit below).")
    if deblurs and not st.get("head_is_zero"):
        if ok:
            best = max(ok, key=lambda r: r["speedup"])
            out.append(f"Target {target} MET with the model's own gate by " + ", ".join(
                r["policy_description"] for r in ok) + f"; best {best['policy_description']}: {best['speedup']:.2f}x at "
                f"{best['delta_psnr']:+.3f} dB.")
        else:
            out.append(f"Target {target} NOT met with the model's own gate.")
    else:
        out.append(f"Target {target} with the model's own gate: NOT ASSESSABLE with these weights (see the caveats).")
    return out


def plot_early_exit(result: dict, path: Path) -> Path:
    """Left: speedup against PSNR loss vs no exit (GT), one curve per net/gate and exit family, points labelled
    with their thresholds; the target region shaded. Right: speedup against the threshold."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    runs = [r for r in result["runs"] if not r.get("skipped") and r.get("speedup") is not None]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.8), dpi=120)
    markers = {"light": "s", "skip": "o", "skip+light": "^"}
    for kind in ("model", "random head", "oracle"):
        for family in ("light", "skip", "skip+light"):
            rs = [r for r in runs if _kind(r) == kind and _family(r) == family]
            if not rs:
                continue
            rs.sort(key=lambda r: (r["tau_skip"] or 0, r["tau"] or 0))
            loss = [-(r["delta_psnr"] or 0.0) for r in rs]
            speed = [r["speedup"] for r in rs]
            line, = ax.plot(loss, speed, marker=markers[family], ls="-", label=f"{kind}: {family}")
            for x, y, r in zip(loss, speed, rs):
                ax.annotate(r["policy"], (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
            taus = [r["tau_skip"] if family != "light" else r["tau"] for r in rs]
            bx.plot(taus, speed, marker=markers[family], ls="-", color=line.get_color(), label=f"{kind}: {family}")
    (x_lo, _), (_, y_hi) = ax.get_xlim(), ax.get_ylim()
    y_hi = max(y_hi, TARGET_SPEEDUP + 0.1) + 0.05  # headroom for the labels
    ax.fill_between([min(x_lo, -TARGET_LOSS_DB), TARGET_LOSS_DB], TARGET_SPEEDUP, y_hi, color="green", alpha=0.08,
                    label=f"target: >= {TARGET_SPEEDUP}x at <= {TARGET_LOSS_DB} dB loss")
    ax.set_ylim(top=y_hi)
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("PSNR loss vs no exit, against the sharp targets (dB; < 0 = gain)")
    ax.set_ylabel("speedup vs no exit (x, interleaved)")
    ax.set_title("Speed against quality")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    bx.axhline(1.0, color="grey", lw=0.8, ls=":")
    bx.set_xlabel("threshold (skip: S of S:, S:T; light: T)")
    bx.set_ylabel("speedup vs no exit (x)")
    bx.set_title("Speedup over tau")
    bx.grid(alpha=0.3)
    st = result["settings"]
    fig.suptitle(f"Early exit, {st['model']} (tile {st['tile']}), {result['device']['cpu_model']}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _f(v, fmt):
    return "–" if v is None else format(v, fmt)


def _pct(v):
    return "–" if v is None else f"{100 * v:.0f} %"


if __name__ == "__main__":
    sys.exit(main())
