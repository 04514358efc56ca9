"""Peak memory of the reversible decoder's forward+backward, memory-saving path vs plain autograd.

Each measurement runs in a fresh subprocess so peaks do not mix:
  baseline    decoder + inputs built, one forward under torch.no_grad() (weights, inputs, transient work)
  plain       forward + backward with ordinary autograd (every block's activations kept)
  reversible  the decoder's memory-saving path: a custom autograd.Function per column keeps the column's
              outputs; backward rebuilds its inputs with the inverse and recomputes it
  span        one Function over all columns (only the last column's outputs kept), for comparison
  checkpoint  torch.utils.checkpoint per column (inputs kept, no inverse), for comparison
CPU: peak RSS from resource.getrusage(RUSAGE_SELF).ru_maxrss. --cuda: torch.cuda.max_memory_allocated.
"activation" = peak - baseline: what training adds on top of running the decoder once.

    python benchmarks/reversible_memory.py             # batch 4, 224x224, widths 24,48,96,192, 2 and 4 columns
    python benchmarks/reversible_memory.py --columns 2 --batch 2 --cuda
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

# Runnable from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODES = ("baseline", "plain", "reversible", "span", "checkpoint")


def _worker(cfg: dict) -> dict:
    import torch

    from dramnet_edge.models.dram_blocks import ReversibleDecoder, _reversible_function

    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(0)
    device = torch.device("cuda" if cfg["cuda"] else "cpu")
    widths = tuple(cfg["widths"])
    b, s = cfg["batch"], cfg["size"]
    decoder = ReversibleDecoder(widths, cfg["columns"], cfg["blocks_per_level"],
                                memory_saving=cfg["mode"] == "reversible").to(device).train()
    levels = [torch.randn(b, w, s >> i, s >> i, device=device, requires_grad=True) for i, w in enumerate(widths)]
    blur = torch.rand(b, 1, s // 14, s // 14, device=device)
    weights = [torch.randn_like(x) for x in levels]
    if cfg["cuda"]:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    if cfg["mode"] == "baseline":
        with torch.no_grad():
            decoder(levels, blur)
    else:
        if cfg["mode"] == "span":
            fn = _reversible_function(device.type)
            params = [p for c in decoder.columns for p in c.parameters()]
            blur_levels = decoder.blur_levels(blur, levels)
            out = fn.apply(tuple(decoder.columns), blur_levels, None, len(levels), *levels, *params)
        elif cfg["mode"] == "checkpoint":
            from torch.utils.checkpoint import checkpoint

            blur_levels = decoder.blur_levels(blur, levels)
            out = levels
            for column in decoder.columns:
                out = checkpoint(column, out, blur_levels, None, use_reentrant=False)
        else:
            out = decoder(levels, blur)
        sum((o * w).sum() for o, w in zip(out, weights)).backward()
    if cfg["cuda"]:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"peak_mib": peak, "seconds": time.perf_counter() - start}


def _measure(cfg: dict) -> dict:
    # A fixed mmap threshold makes glibc map every large tensor on its own and unmap it on free; with the
    # default (dynamic) threshold freed tensors stay in the heap and fragmentation inflates the peak RSS.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    cmd = [sys.executable, __file__, "--worker", json.dumps(cfg)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f"worker {cfg} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--size", type=int, default=224, help="finest level size (the tile), a multiple of 16")
    p.add_argument("--widths", default="24,48,96,192")
    p.add_argument("--columns", type=int, nargs="+", default=[2, 4])
    p.add_argument("--blocks-per-level", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--modes", nargs="+", default=list(MODES[1:]), choices=MODES[1:])
    p.add_argument("--cuda", action="store_true", help="measure torch.cuda.max_memory_allocated on the GPU")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker))))
        return
    if args.cuda:
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--cuda given but torch sees no CUDA device")
    widths = [int(w) for w in args.widths.split(",")]
    base = dict(batch=args.batch, size=args.size, widths=widths, blocks_per_level=args.blocks_per_level,
                threads=args.threads, cuda=args.cuda)
    unit = "CUDA max_memory_allocated" if args.cuda else "peak RSS"
    print(f"decoder widths {tuple(widths)}, batch {args.batch}, {args.size}x{args.size}, "
          f"{args.blocks_per_level} block(s)/level; {unit} in MiB")
    print(f"{'columns':>7}  {'path':<11} {'peak MiB':>9} {'activation MiB':>15} {'saving %':>9} {'seconds':>8}")
    for columns in args.columns:
        baseline = _measure({**base, "columns": columns, "mode": "baseline"})
        print(f"{columns:>7}  {'baseline':<11} {baseline['peak_mib']:>9.0f} {'-':>15} {'-':>9} "
              f"{baseline['seconds']:>8.2f}", flush=True)
        plain_act = None
        for mode in args.modes:
            r = _measure({**base, "columns": columns, "mode": mode})
            act = r["peak_mib"] - baseline["peak_mib"]
            if mode == "plain":
                plain_act = act
            saving = "-" if plain_act is None or mode == "plain" else f"{100 * (1 - act / plain_act):.0f}"
            print(f"{columns:>7}  {mode:<11} {r['peak_mib']:>9.0f} {act:>15.0f} {saving:>9} {r['seconds']:>8.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
