"""Time of one 1280x720 frame through what `dramnet-edge deblur` runs, for several models side by side in one run.

    python benchmarks/frame_time.py                                  # the shipped dramnet_tiny and dramnet_lite
    python benchmarks/frame_time.py --checkpoint a.safetensors --checkpoint b.safetensors --repeat 7
    python benchmarks/frame_time.py --checkpoint W --backends torch,onnxruntime,openvino   # one model, every backend

Per model: its weights are loaded once as `deblur` loads them, then each repetition reads a 1280x720 PNG, restores it
(torch backend, the CLI's defaults: overlap 32, 8 tiles per batch, torch's default threads) and writes the PNG, as
`deblur` does for one input. Models are interleaved within each repetition (and the order rotated), so machine load
hits them alike; the table gives the median and the range. The frame is a real photo (scikit-image's
motorcycle_left, a training photo: the timing does not depend on content without an early exit) resized to 1280x720.
Prints the CPU model and its vector ISA flags: compare timings only within one run.

``--backends``: the same frame through other CPU backends too, interleaved with torch in the same repetitions: each
model is exported once (FP32, DFT form, dynamic batch, as ``dramnet-edge export --target onnx|openvino`` writes it,
into a temporary folder) and run as ``dramnet-edge deblur --backend B --artifact A`` runs it (each runtime's default
threads). This is the measurement that picks ``deblur``'s default backend (docs/performance.md).
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


def _artifact_session(net, name: str, checkpoint: Path, backend: str, work: Path):
    """(session, seconds to export and load) for ``net`` exported FP32 for ``backend`` into ``work``."""
    from dramnet_edge.deploy.export import export_model
    from dramnet_edge.runtime.session import open_artifact_session

    target = {"onnxruntime": "onnx", "openvino": "openvino"}[backend]
    suffix = {"onnx": ".onnx", "openvino": ".xml"}[target]
    t0 = time.perf_counter()
    out = work / f"{Path(checkpoint).stem}-{target}{suffix}"
    export_model(net, target=target, output=out, precision="fp32", fft="dft", dynamic_batch=True, model_name=name,
                 checkpoint=checkpoint, check=False, log=lambda msg: None)
    session, _ = open_artifact_session(backend, out)
    return session, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", action="append", default=[], help="weight file (repeatable); default: every "
                    "shipped default (dramnet_tiny, dramnet_lite)")
    ap.add_argument("--repeat", type=int, default=5, help="repetitions per model (default 5)")
    ap.add_argument("--size", default="1280x720", help="frame WxH (default 1280x720)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--backends", default="torch", help="comma-separated CPU backends to time: torch, onnxruntime, "
                    "openvino (default torch)")
    args = ap.parse_args(argv)
    backends = [b for b in args.backends.split(",") if b]
    known = ("torch", "onnxruntime", "openvino")
    if not backends or any(b not in known for b in backends):
        print(f"--backends: choose from {', '.join(known)}, got {args.backends!r}", file=sys.stderr)
        return 2
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
        row = {"checkpoint": str(path), "model": meta.get("model"), "tile": net.tile,
               "params_m": round(sum(p.numel() for p in net.parameters()) / 1e6, 3)}
        for backend in backends:
            if backend == "torch":
                session, setup_s = open_session("torch", model=net.eval()), load_s
            else:
                session, setup_s = _artifact_session(net.eval(), meta.get("model"), path, backend, work)
            models.append(row | {"backend": backend, "load_s": round(setup_s, 2), "session": session, "times": []})
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
    print(f"{'model':14s} {'backend':12s} {'tile':>4s} {'params':>7s} {'tiles':>5s} {'median s':>9s}  range")
    rows = []
    for m in models:
        med = statistics.median(m["times"])
        print(f"{m['model']:14s} {m['backend']:12s} {m['tile']:4d} {m['params_m']:6.2f}M {m['tiles']:5d} {med:9.2f}  "
              f"{min(m['times']):.2f}-{max(m['times']):.2f}   ({m['checkpoint']})")
        rows.append({k: v for k, v in m.items() if k != "session"} | {"median_s": round(med, 3)})
    if len(rows) > 1:
        base = rows[0]["median_s"]
        for r in rows[1:]:
            print(f"{r['model']} ({r['backend']}) / {rows[0]['model']} ({rows[0]['backend']}): "
                  f"{r['median_s'] / base:.2f}x the frame time")
        fastest = min(rows, key=lambda r: r["median_s"])
        print(f"fastest: {fastest['model']} on {fastest['backend']} ({fastest['median_s']:.2f} s)")
    if args.json:
        args.json.write_text(json.dumps({"frame": [w, h], "threads": torch.get_num_threads(), "torch": torch.__version__,
                                         **cpu, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
