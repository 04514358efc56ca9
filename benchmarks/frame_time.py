"""Time of one 1280x720 frame through what `dramnet-edge deblur` runs, for several models side by side in one run.

    python benchmarks/frame_time.py                                  # the shipped dramnet_tiny and dramnet_lite
    python benchmarks/frame_time.py --checkpoint a.safetensors --checkpoint b.safetensors --repeat 7

Per model: its weights are loaded once as `deblur` loads them, then each repetition reads a 1280x720 PNG, restores it
(torch backend, the CLI's defaults: overlap 32, 8 tiles per batch, torch's default threads) and writes the PNG, as
`deblur` does for one input. Models are interleaved within each repetition (and the order rotated), so machine load
hits them alike; the table gives the median and the range. The frame is a real photo (scikit-image's
motorcycle_left, a training photo: the timing does not depend on content without an early exit) resized to 1280x720.
Prints the CPU model and its vector ISA flags: compare timings only within one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

def cpu_description() -> dict:
    """CPU model name, logical CPUs and the vector ISA flags that matter for inference speed."""
    import os

    from dramnet_edge.bench.device import _cpu_model, cpu_isa

    return {"cpu": _cpu_model(), "logical_cpus": os.cpu_count(), "isa": cpu_isa()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", action="append", default=[], help="weight file (repeatable); default: every "
                    "shipped default (dramnet_tiny, dramnet_lite)")
    ap.add_argument("--repeat", type=int, default=5, help="repetitions per model (default 5)")
    ap.add_argument("--size", default="1280x720", help="frame WxH (default 1280x720)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        print(f"--repeat must be >= 1, got {args.repeat}", file=sys.stderr)
        return 2
    from dramnet_edge.bench.photos import parse_size, timing_frame

    try:
        w, h = parse_size(args.size)
    except ValueError as e:
        print(f"--size: {e}", file=sys.stderr)
        return 2

    import torch

    from dramnet_edge.data.io import read_image, write_image
    from dramnet_edge.models.builder import load_model
    from dramnet_edge.runtime.session import open_session
    from dramnet_edge.runtime.tiling import deblur_image
    from dramnet_edge.weights import default_checkpoint

    paths = [Path(c) for c in args.checkpoint] or [p for p in (default_checkpoint("dramnet_tiny"),
                                                              default_checkpoint("dramnet_lite")) if p is not None]
    if not paths:
        print("no --checkpoint given and no shipped weights found", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="frame_time_"))
    src = work / "frame.png"
    write_image(src, torch.from_numpy(timing_frame(w, h)))
    models = []
    for path in paths:
        t0 = time.perf_counter()
        net, meta = load_model(path)
        load_s = time.perf_counter() - t0
        models.append({"checkpoint": str(path), "model": meta.get("model"), "tile": net.tile,
                       "params_m": round(sum(p.numel() for p in net.parameters()) / 1e6, 3),
                       "load_s": round(load_s, 2), "session": open_session("torch", model=net.eval()), "times": []})
    out = work / "out.png"
    for rep in range(args.repeat + 1):  # the first repetition warms up and is not counted
        order = models[rep % len(models):] + models[: rep % len(models)]
        for m in order:
            t0 = time.perf_counter()
            img = read_image(src)
            restored, stats = deblur_image(m["session"], img.image.numpy(), overlap=32, batch_size=8)
            write_image(out, img.with_image(torch.from_numpy(restored)))
            if rep:
                m["times"].append(time.perf_counter() - t0)
            m["tiles"] = stats.tiles
    cpu = cpu_description()
    print(f"{w}x{h} frame, torch {torch.__version__}, {torch.get_num_threads()} threads; CPU: {cpu['cpu']}, "
          f"{cpu['logical_cpus']} logical CPUs, ISA {' '.join(cpu['isa']) or '-'}")
    print(f"{'model':14s} {'tile':>4s} {'params':>7s} {'tiles':>5s} {'median s':>9s}  range")
    rows = []
    for m in models:
        med = statistics.median(m["times"])
        print(f"{m['model']:14s} {m['tile']:4d} {m['params_m']:6.2f}M {m['tiles']:5d} {med:9.2f}  "
              f"{min(m['times']):.2f}-{max(m['times']):.2f}   ({m['checkpoint']})")
        rows.append({k: v for k, v in m.items() if k != "session"} | {"median_s": round(med, 3)})
    if len(rows) > 1:
        base = rows[0]["median_s"]
        for r in rows[1:]:
            print(f"{r['model']} / {rows[0]['model']}: {r['median_s'] / base:.2f}x the frame time")
    if args.json:
        args.json.write_text(json.dumps({"frame": [w, h], "threads": torch.get_num_threads(), "torch": torch.__version__,
                                         **cpu, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
