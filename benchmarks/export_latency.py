"""Artifact sizes and CPU latency per backend: torch, onnxruntime FP32/FP16, OpenVINO FP32/FP16 weights.

    python benchmarks/export_latency.py --models dramnet_tiny [dramnet_s] [--threads 1] [--out runs/export_bench]

For each model: one ONNX FP32 export (dynamic batch, DFT fold, parity measured by the exporter), then from that
ONNX the typed FP16 ONNX and the OpenVINO IRs, plus a whole-model ONNX with the native FFT (ONNX DFT op) for the
native-vs-DFT comparison. Latency: median of ``--repeat`` runs of one 224 tile (batch 1, no early exit) and of a
1280x720 frame tiled with overlap 32 in batches of 8, as process CPU time (robust on a shared machine with one
intra-op thread) and wall time. Weights: the shipped ones when present, else random init
(latency does not depend on the values). Prints a Markdown table and writes ``OUT/results.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dramnet_edge.deploy.export import export_model  # noqa: E402
from dramnet_edge.export.exporter import artifact_size  # noqa: E402
from dramnet_edge.export.fold import fold_model, split_graphs, example_inputs  # noqa: E402
from dramnet_edge.export.formats import get_format  # noqa: E402
from dramnet_edge.export.onnx2openvino import onnx_to_openvino  # noqa: E402
from dramnet_edge.runtime import parity as runtime_parity  # noqa: E402
from dramnet_edge.weights import load_export_model  # noqa: E402
from dramnet_edge.export.onnx_fp16 import convert_file_to_fp16  # noqa: E402
from dramnet_edge.export.sidecar import artifact_file_hashes, parity_photos  # noqa: E402
from dramnet_edge.export.torch2onnx import export_onnx, ort_session  # noqa: E402
from dramnet_edge.runtime.backends_onnxruntime import OnnxRuntimeSession  # noqa: E402
from dramnet_edge.runtime.backends_openvino import OpenVINOSession  # noqa: E402
from dramnet_edge.runtime.session import TorchSession  # noqa: E402
from dramnet_edge.runtime.tiling import deblur_image  # noqa: E402


def median_time(fn, repeat: int, warmup: int = 1) -> float:
    return median_times(fn, repeat, warmup)[0]


def median_times(fn, repeat: int, warmup: int = 1) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds of this process). With one intra-op thread the CPU time is the
    compute time even on a machine shared with other jobs, where wall time also counts the waits for a core."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return float(np.median(wall)), float(np.median(cpu))


def derived_set(src_sidecar: Path, dest: Path, target: str, transform, **changes) -> Path:
    """Write every graph of an export through ``transform(src, dst)`` into ``dest`` with an edited sidecar."""
    sidecar = json.loads(src_sidecar.read_text())
    fmt = get_format(target)
    paths = fmt.artifact_paths(dest / f"m{fmt.suffix}")
    for graph, name in sidecar["graphs"].items():
        transform(src_sidecar.parent / name, paths[graph])
    sidecar.update(changes, target=target, backend=fmt.backend, graphs={g: p.name for g, p in paths.items()},
                   size_bytes={g: artifact_size(p) for g, p in paths.items()},
                   files=artifact_file_hashes(dest, [p.name for p in paths.values()]))
    fmt.sidecar_path(paths["model"]).write_text(json.dumps(sidecar, indent=2))
    return fmt.sidecar_path(paths["model"])


def bench_model(name: str, tile: int, frame_hw: tuple[int, int], out: Path, threads: int, repeat: int) -> dict:
    net, name, _ = load_export_model(name, None, tile, warn=lambda m: print(m, file=sys.stderr))
    work = out / name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    t0 = time.perf_counter()
    fp32 = export_model(net, target="onnx", output=work / "onnx32" / "m.onnx", dynamic_batch=True, model_name=name,
                        log=lambda m: print(m, file=sys.stderr))
    export_s = time.perf_counter() - t0
    side32 = work / "onnx32" / "m.onnx.json"
    side16 = derived_set(side32, work / "onnx16", "onnx", lambda s, d: convert_file_to_fp16(s, d), precision="fp16")
    ov32 = derived_set(side32, work / "ov32", "openvino", lambda s, d: onnx_to_openvino(s, d, precision="fp32"))
    ov16 = derived_set(side32, work / "ov16", "openvino", lambda s, d: onnx_to_openvino(s, d, precision="fp16"),
                       precision="fp16")

    # Native FFT (ONNX DFT op) vs the DFT fold, whole-model graph, onnxruntime.
    folded_native = fold_model(net, "native")
    whole = split_graphs(folded_native)["model"]
    export_onnx(whole, example_inputs(whole, folded_native, 1), work / "native.onnx", input_names=("x",),
                output_names=("image",))
    tile_in = parity_photos(tile)[:1]
    native = ort_session(work / "native.onnx", threads)
    dft = ort_session(work / "onnx32" / "m.onnx", threads)
    fft_ms = {
        "onnxruntime native DFT op": 1000 * median_times(lambda: native.run(None, {"x": tile_in}), repeat)[1],
        "onnxruntime DFT matmuls": 1000 * median_times(lambda: dft.run(None, {"x": tile_in}), repeat)[1],
    }

    photos = parity_photos(tile)
    refs = runtime_parity.parity_references(net, photos, None)
    sessions = {
        "torch (eager, FP32)": (TorchSession(net), None, None),
        "onnxruntime FP32": (OnnxRuntimeSession(side32, threads=threads), side32, "fp32"),
        "onnxruntime FP16": (OnnxRuntimeSession(side16, threads=threads), side16, "fp16"),
        "openvino FP32": (OpenVINOSession(ov32, threads=threads), ov32, "fp32"),
        "openvino FP16 weights": (OpenVINOSession(ov16, threads=threads), ov16, "fp16"),
    }
    rng = np.random.default_rng(0)
    frame = np.clip(photos[0].mean() + 0.2 * rng.standard_normal((3, *frame_hw)), 0, 1).astype(np.float32)
    frame[:, : tile, : tile] = photos[0]
    rows = []
    for label, (session, side, precision) in sessions.items():
        row = {"backend": label}
        if side is not None:
            sc = json.loads(Path(side).read_text())
            row["size_mb"] = round(sum(sc["size_bytes"][g] for g in ("encoder", "decoder_full", "decoder_light")) / 1e6, 2)
            row["model_graph_mb"] = round(sc["size_bytes"]["model"] / 1e6, 2)
            parity = runtime_parity.measure_parity(session, refs, photos, None, precision)
            row["parity_db_min"] = round(min(parity[g]["psnr_db_min"] for g in ("model", "full", "light")), 1)
            row["max_abs_diff"] = float(max(parity[g]["max_abs_diff"] for g in ("model", "full", "light")))
        wall, cpu = median_times(lambda: session.infer(tile_in, None), repeat)
        row["tile_ms"], row["tile_cpu_ms"] = round(1000 * wall, 1), round(1000 * cpu, 1)
        wall, cpu = median_times(lambda: deblur_image(session, frame, overlap=32, batch_size=8), max(1, repeat // 4))
        row["frame_s"], row["frame_cpu_s"] = round(wall, 2), round(cpu, 2)
        rows.append(row)
        print(f"  {name} {label}: {row}", file=sys.stderr)
    return {"model": name, "tile": tile, "frame": list(frame_hw), "threads": threads, "export_s": round(export_s, 1),
            "fp32_parity_ok": fp32["parity"]["ok"], "fft_whole_model_tile_ms": {k: round(v, 1) for k, v in fft_ms.items()},
            "rows": rows}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["dramnet_tiny"])
    ap.add_argument("--tile", type=int, default=224)
    ap.add_argument("--frame", default="1280x720", help="WxH of the tiled frame")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads for every backend")
    ap.add_argument("--repeat", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path("runs/export_bench"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    w, h = (int(v) for v in args.frame.lower().split("x"))
    results = [bench_model(m, args.tile, (h, w), args.out, args.threads, args.repeat) for m in args.models]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    for r in results:
        print(f"\n### {r['model']} — tile {r['tile']}, frame {r['frame'][1]}x{r['frame'][0]}, {r['threads']} thread(s), "
              f"ONNX export {r['export_s']} s")
        print("\n| backend | split graphs MB | whole graph MB | worst PSNR vs torch (dB) | max abs diff "
              "| 1 tile CPU ms (wall) | frame CPU s (wall) |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for row in r["rows"]:
            print(f"| {row['backend']} | {row.get('size_mb', '-')} | {row.get('model_graph_mb', '-')} | "
                  f"{row.get('parity_db_min', 'ref')} | {row.get('max_abs_diff', 0):.2e} | "
                  f"{row['tile_cpu_ms']} ({row['tile_ms']}) | {row['frame_cpu_s']} ({row['frame_s']}) |")
        print("\nFFT form, whole-model graph on onnxruntime, 1 tile, CPU ms: "
              + ", ".join(f"{k} {v} ms" for k, v in r["fft_whole_model_tile_ms"].items()))


if __name__ == "__main__":
    main()
