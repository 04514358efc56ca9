"""INT8 quality and speed: what calibration costs on held-out real photographs, and what OpenVINO INT8 buys.

    python benchmarks/int8_quality.py [--checkpoint W.safetensors] [--libraries nncf:minmax,ort:minmax,...]
                                      [--speed-models dramnet_s] [--no-openvino] [--out runs/int8_quality]

The defaults (the pipeline's library, NNCF MinMax; speed on the benchmarked model only) keep one run under ten
minutes on a 2-core CPU. ``--speed-models dramnet_s`` adds the speed of a larger variant and
``--libraries nncf:minmax,ort:minmax,ort:percentile,ort:entropy`` the comparison of quantizers and range estimators
that chose the default. ``--libraries nncf:minmax,modelopt:minmax --no-openvino`` is the TensorRT quantizer
comparison (NVIDIA ModelOpt needs the ``modelopt`` extra, in its own virtual environment: docs/calibration.md); each
library's row also counts its Q/DQ nodes and lists the Conv/MatMul/Gemm layers it left in float (sensitive, reverted
by the fallback, or left by the library itself), and a side-by-side Markdown table closes the run.

1. The model (``--checkpoint``, else the shipped weights of ``--model`` (default: the embedded default), else random weights, which
   the output flags: quantization error on random weights says nothing about a trained model) is exported to FP32
   ONNX once; one calibration set (the default recipe: synthetic training photos, calibration seed) is shared by
   every library / range-estimator pair, each run through the accuracy-bounded fallback at ``--budget-db``.
2. Reporting photos, never used for calibration: the synthetic engine's held-out val photos (chelsea, rocket,
   coins) and scikit-image photos outside the engine (moon, retina, page — a near-white document —, text), each
   centre-cropped to 2x2 tiles, as is and with the right half blurred by the bench's real PSFs (motion 17 px,
   defocus r 4; ``bench.photos``). Per image: PSNR against the sharp photo (FP32 and INT8) and INT8 against
   FP32; the drop is PSNR_FP32 - PSNR_INT8 vs ground truth. Mean AND worst image are reported.
3. OpenVINO: FP32 IR (f32 inference-precision hint) vs NNCF INT8 IR of the whole-model graph, same batch, same
   threads, runs interleaved in one process (A B A B ...), median throughput; the INT8 IR keeps the same nodes in
   float as the chosen ONNX result. ``--speed-models`` repeats the speed part for other variants (random weights:
   speed does not depend on the values; only the sensitive nodes are kept in float there).

Timings on a shared machine are noisy: compare the ratio measured side by side, not absolute numbers across runs.
The CPU and whether it has INT8 dot-product instructions (VNNI, AMX), which OpenVINO's INT8 kernels need to beat
FP32, are recorded with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REPORT_PHOTOS = ("chelsea", "rocket", "coins", "moon", "retina", "page", "text")
BLURS = ("sharp", "motion17-right", "defocus4-right")


# ----------------------------------------------------------------------------------------------- photos


def report_pairs(tile: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(blurred (N, 3, 2T, 2T), sharp, names): every reporting photo, resized so its short side is 2 tiles and
    centre-cropped, 8-bit, as is ("sharp") and with its right half blurred by the bench's real PSFs in linear light
    (``bench.photos.blur_right_half``: motion 17 px at 30 degrees, defocus disk radius 4)."""
    from skimage.transform import resize

    from dramnet_edge.bench.photos import blur_right_half, defocus_psf, load_photo, motion_psf

    size = 2 * tile
    blurred, sharp, names = [], [], []
    for name in REPORT_PHOTOS:
        img = load_photo(name).transpose(1, 2, 0)
        h, w = img.shape[:2]
        s = size / min(h, w)
        img = resize(img, (max(size, round(h * s)), max(size, round(w * s))), anti_aliasing=True)
        y, x = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
        gt = (np.round(np.clip(img[y : y + size, x : x + size], 0, 1) * 255) / 255).transpose(2, 0, 1)
        gt = np.ascontiguousarray(gt, dtype=np.float32)
        for kind, psf in (("sharp", None), ("motion17-right", motion_psf()), ("defocus4-right", defocus_psf())):
            blurred.append(gt if psf is None else blur_right_half(gt, psf))
            sharp.append(gt)
            names.append(f"{name}/{kind}")
    return np.stack(blurred).astype(np.float32), np.stack(sharp).astype(np.float32), names


def to_tiles(images: np.ndarray, tile: int) -> np.ndarray:
    n, c, h, w = images.shape
    t = images.reshape(n, c, h // tile, tile, w // tile, tile).transpose(0, 2, 4, 1, 3, 5)
    return np.ascontiguousarray(t.reshape(-1, c, tile, tile))


def from_tiles(tiles: np.ndarray, n: int, size: int, tile: int) -> np.ndarray:
    k = size // tile
    t = tiles.reshape(n, k, k, 3, tile, tile).transpose(0, 3, 1, 4, 2, 5)
    return t.reshape(n, 3, size, size)


def image_figures(out: np.ndarray, fp32: np.ndarray, sharp: np.ndarray, names: list[str]) -> dict:
    from dramnet_edge.calibrate.fallback import psnr_db

    p8, p32, vs = psnr_db(out, sharp), psnr_db(fp32, sharp), psnr_db(out, fp32)
    drop = p32 - p8
    worst = int(np.argmax(drop))
    return {
        "psnr_fp32_vs_gt_mean": round(float(p32.mean()), 3), "psnr_int8_vs_gt_mean": round(float(p8.mean()), 3),
        "drop_db_mean": round(float(drop.mean()), 4), "drop_db_worst": round(float(drop[worst]), 4),
        "worst_image": names[worst], "psnr_int8_vs_fp32_mean": round(float(vs.mean()), 2),
        "psnr_int8_vs_fp32_min": round(float(vs.min()), 2), "worst_vs_fp32_image": names[int(np.argmin(vs))],
        "per_image_drop": {n: round(float(d), 3) for n, d in zip(names, drop)},
    }


# ----------------------------------------------------------------------------------------------- speed

#: /proc/cpuinfo flags of the x86 instructions that multiply 8-bit integers into 32-bit sums in one step.
INT8_DOT_PRODUCT_FLAGS = ("avx512_vnni", "avx_vnni", "avx_vnni_int8", "amx_int8", "amx_tile")


def cpu_info() -> dict:
    """CPU model, logical CPUs and which INT8 dot-product extensions it has (Linux: /proc/cpuinfo)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    return {"model": model, "logical_cpus": os.cpu_count(),
            "int8_dot_product": [f for f in INT8_DOT_PRODUCT_FLAGS if f in flags],
            "avx512f": "avx512f" in flags, "avx2": "avx2" in flags}


def interleaved_throughput(xml_a: Path, xml_b: Path, x: np.ndarray, threads: int, rounds: int) -> dict:
    """Median tiles/s of two IRs run alternately on the same batch (f32 hint, ``threads`` threads)."""
    from dramnet_edge.export.onnx2openvino import compile_openvino

    ca, cb = compile_openvino(xml_a, f32=True, threads=threads), compile_openvino(xml_b, f32=True, threads=threads)
    ra, rb = ca.create_infer_request(), cb.create_infer_request()
    for r in (ra, rb):  # warm-up
        r.infer({0: x})
    ta, tb = [], []
    for _ in range(rounds):
        t0 = time.perf_counter(); ra.infer({0: x}); ta.append(time.perf_counter() - t0)
        t0 = time.perf_counter(); rb.infer({0: x}); tb.append(time.perf_counter() - t0)
    a, b = float(np.median(ta)), float(np.median(tb))
    return {"fp32_tiles_per_s": round(len(x) / a, 2), "int8_tiles_per_s": round(len(x) / b, 2),
            "ratio": round(a / b, 3), "rounds": rounds, "batch": len(x), "threads": threads}


def openvino_pair(model_onnx: Path, folder: Path, calib: list[dict], exclude: list[str], batch: int) -> tuple[Path, Path]:
    from dramnet_edge.calibrate.openvino_int8 import quantize_openvino
    from dramnet_edge.export.onnx2openvino import onnx_to_openvino

    xml32, xml8 = folder / "ov.fp32.xml", folder / "ov.int8.xml"
    onnx_to_openvino(model_onnx, xml32, precision="fp32", batch=batch)
    quantize_openvino(model_onnx, xml8, calib, exclude=exclude, batch=batch)
    return xml32, xml8


def speed_only(name: str, tile: int, folder: Path, threads: int, batch: int, rounds: int, log) -> dict:
    """OpenVINO INT8/FP32 throughput of a random-weight variant's whole-model graph (sensitive nodes in float)."""
    import torch

    from dramnet_edge.calibrate.graph import analyse_graph
    from dramnet_edge.calibrate.quantize import batches, load_onnx
    from dramnet_edge.export.fold import example_inputs, fold_model, split_graphs
    from dramnet_edge.export.torch2onnx import export_onnx
    from dramnet_edge.models import create_model

    torch.manual_seed(0)
    folded = fold_model(create_model(name, tile=tile).eval(), "dft")
    graph = split_graphs(folded, None)["model"]
    onnx_path = folder / f"{name}.onnx"
    t0 = time.perf_counter()
    export_onnx(graph, example_inputs(graph, folded, 2), onnx_path, input_names=graph.input_names,
                output_names=graph.output_names, dynamic_batch=True)
    log(f"  {name}: FP32 ONNX in {time.perf_counter() - t0:.0f} s")
    x = np.random.default_rng(0).random((16, 3, tile, tile), dtype=np.float32)
    lay = analyse_graph(load_onnx(onnx_path))
    xml32, xml8 = openvino_pair(onnx_path, folder, batches({"x": x}, None, 4), lay.sensitive_nodes(), batch)
    return interleaved_throughput(xml32, xml8, x[:batch], threads, rounds)


# ----------------------------------------------------------------------------------------------- Q/DQ placement


def placement_figures(path: Path, layers, exclusions: list[str]) -> dict:
    """Q/DQ node counts of a Q/DQ ONNX and which Conv/MatMul/Gemm layers stayed float: kept by the pipeline
    (sensitive kinds, fallback reverts: ``exclusions``) or left by the library although allowed (``by_library``,
    e.g. ModelOpt's small-channel convolutions); plus which other op types read a DequantizeLinear output."""
    from collections import Counter

    from dramnet_edge.calibrate.quantize import inspect_qdq, load_onnx, quantized_nodes

    model = load_onnx(path)
    qdq = inspect_qdq(model)
    quantized = set(quantized_nodes(model))
    excluded = set(exclusions)
    left = [n for n in layers.quantizable if n not in quantized]
    producer = {o: n for n in model.graph.node for o in n.output}
    readers = Counter(n.op_type for n in model.graph.node
                      if n.op_type not in ("QuantizeLinear", "DequantizeLinear", "Conv", "MatMul", "Gemm")
                      and any(producer.get(i) is not None and producer[i].op_type == "DequantizeLinear"
                              for i in n.input))
    return {
        "quantize_linear": qdq["quantize_linear"], "dequantize_linear": qdq["dequantize_linear"],
        "activation_dq": qdq["activations"], "weight_dq": qdq["weights"]["per_channel"] + qdq["weights"]["per_tensor"],
        "quantized_layers": len(quantized), "quantizable_layers": len(layers.quantizable),
        "float_sensitive": sum(1 for n in left if n in layers.sensitive),
        "float_reverted": sum(1 for n in left if n in excluded and n not in layers.sensitive),
        "float_by_library": [layers.label_of.get(n, n) for n in left if n not in excluded],
        "other_ops_reading_dq": dict(readers.most_common()),
        "problems": qdq["problems"][:5],
    }


def comparison_table(results: dict) -> str:
    """The libraries side by side (Markdown): photo drop vs FP32 (mean, worst), INT8 vs FP32, Q/DQ counts, float
    layers, for the fully quantized graph (sensitive nodes only in float) and after the fallback."""
    rows = ["| library | graph | photo drop mean / worst (dB) | INT8 vs FP32 mean / min (dB) | Q / DQ nodes | "
            "Conv/MatMul/Gemm INT8 | float: sensitive / reverted / by library | other ops reading DQ |",
            "|---|---|---|---|---|---|---|---|"]
    for spec, e in results["libraries"].items():
        for key, label in (("all_quantized", "all quantized"), ("after_fallback", "after fallback")):
            ph, pl = e[f"photos_{key}"], e["placement"][key]
            other = ", ".join(f"{k} {v}" for k, v in pl["other_ops_reading_dq"].items()) or "-"
            rows.append(
                f"| {spec} | {label} | {ph['drop_db_mean']:+.3f} / {ph['drop_db_worst']:+.3f} ({ph['worst_image']}) | "
                f"{ph['psnr_int8_vs_fp32_mean']:.1f} / {ph['psnr_int8_vs_fp32_min']:.1f} | "
                f"{pl['quantize_linear']} / {pl['dequantize_linear']} | {pl['quantized_layers']} of "
                f"{pl['quantizable_layers']} | {pl['float_sensitive']} / {pl['float_reverted']} / "
                f"{len(pl['float_by_library'])} | {other} |")
    return "\n".join(rows)


# ----------------------------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=Path, default=None)
    from dramnet_edge.weights import EMBEDDED_DEFAULT

    ap.add_argument("--model", default=EMBEDDED_DEFAULT)
    ap.add_argument("--libraries", default="nncf:minmax",
                    help="library:method pairs, comma-separated (ort:minmax, ort:percentile, ort:entropy, ...)")
    ap.add_argument("--budget-db", type=float, default=0.1)
    ap.add_argument("--worst-budget-db", type=float, default=None)
    ap.add_argument("--max-evals", type=int, default=48)
    ap.add_argument("--recipe", type=Path, default=None,
                    help="calibration recipe YAML (default: the package's default, calibrate/default-synthetic.yaml)")
    ap.add_argument("--speed-models", default="",
                    help="extra variants for the speed part, comma-separated (e.g. dramnet_s: ~4 more minutes)")
    ap.add_argument("--speed-tile", type=int, default=224)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "int8_quality")
    ap.add_argument("--reuse-fp32", action="store_true", help="reuse OUT/fp32 from an earlier run of the same model")
    ap.add_argument("--no-openvino", action="store_true", help="skip the OpenVINO quality and speed part")
    args = ap.parse_args(argv)

    from dramnet_edge.calibrate.graph import weight_aliases
    from dramnet_edge.calibrate.pipeline import (GRAPHS, _max_blur, calibrate_onnx_graphs, export_fp32_graphs,
                                                 openvino_int8_graphs, plan_quantization, write_report)
    from dramnet_edge.calibrate.quantize import QuantSettings, batches
    from dramnet_edge.calibrate.recipe import CalibrationRecipe, load_recipe
    from dramnet_edge.calibrate.runner import OnnxGraph
    from dramnet_edge.calibrate.tiles import build_calibration_set
    from dramnet_edge.export.formats import get_format
    from dramnet_edge.models import create_model
    from dramnet_edge.models.builder import load_model
    from dramnet_edge.weights import default_checkpoint

    def log(msg):
        print(msg, flush=True)

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    source = args.checkpoint or default_checkpoint(args.model)
    if source is not None:
        net, meta = load_model(source)
        weights = f"{Path(source).name} (step {meta.get('step', '?')}, val PSNR {meta.get('val_psnr', '?')})"
    else:
        net = create_model(args.model, tile=112).eval()
        weights = ("RANDOM INITIALISATION: quantization error on random weights is NOT representative (and DRAMNet's "
                   "zero-initialised head makes an untrained model return its input, so INT8 shows no error at all)")
    tile = int(net.tile)
    cpu = cpu_info()
    log(f"model {args.model}, tile {tile}, weights: {weights}")
    log(f"CPU: {cpu['model']}, {cpu['logical_cpus']} logical CPUs, INT8 dot-product instructions: "
        f"{', '.join(cpu['int8_dot_product']) or 'none (no VNNI / AMX)'}")
    results = {"model": args.model, "tile": tile, "weights": weights, "cpu": cpu, "libraries": {},
               "note": "timings on a shared 2-core machine are noisy"}

    t0 = time.perf_counter()
    fp32_dir = out / "fp32"
    if args.reuse_fp32 and (fp32_dir / "m.onnx").is_file():
        from dramnet_edge.export.fold import fold_model

        fp32_paths, folded = get_format("onnx").artifact_paths(fp32_dir / "m.onnx"), fold_model(net, "dft")
        log(f"reusing the FP32 graphs in {fp32_dir}")
    else:
        fp32_paths, folded = export_fp32_graphs(net, fp32_dir, log=log)
    aliases = weight_aliases(folded)
    log(f"FP32 ONNX graphs in {time.perf_counter() - t0:.0f} s")
    encoder = OnnxGraph(fp32_paths["encoder"], threads=args.threads)
    recipe = load_recipe(args.recipe) if args.recipe else CalibrationRecipe()
    calibration = build_calibration_set(tile, lambda t: _max_blur(encoder.run_named({"x": t})["blur"]), recipe, log=log)
    results["calibration_recipe"] = {"file": str(args.recipe) if args.recipe else "default", **recipe.to_dict()}

    blurred, sharp, names = report_pairs(tile)
    size = blurred.shape[-1]
    tiles = to_tiles(blurred, tile)
    fp32_img = from_tiles(OnnxGraph(fp32_paths["model"], threads=args.threads).run({"x": tiles})[0], len(names),
                          size, tile)
    results["photos"] = {"images": len(names), "size": size, "photos": list(REPORT_PHOTOS), "blurs": list(BLURS)}

    plans = {}
    for spec in [s for s in args.libraries.split(",") if s]:
        lib, method = spec.split(":")
        folder = out / f"{lib}_{method}"
        paths = get_format("onnx").artifact_paths(folder / "m.int8.onnx")
        t0 = time.perf_counter()
        log(f"\n== {lib} {method}")
        plan = plan_quantization(fp32_paths, tile=tile, settings=QuantSettings(lib, method), budget_db=args.budget_db,
                                 worst_budget_db=args.worst_budget_db, max_evals=args.max_evals, aliases=aliases,
                                 calibration=calibration, threads=args.threads, log=log)
        plans[spec] = plan
        report = calibrate_onnx_graphs(fp32_paths, paths, tile=tile, plan=plan, threads=args.threads, log=log)
        seconds = time.perf_counter() - t0
        report.update(model=args.model, tile=tile, tau=None, source=f"benchmarks/int8_quality.py ({weights})")
        write_report(paths["model"], report)
        int8_img = from_tiles(OnnxGraph(paths["model"], threads=args.threads).run({"x": tiles})[0], len(names),
                              size, tile)
        # the fully quantized model (before the fallback) on the photos, for the library comparison
        lay = plan.layers["model"]
        with tempfile.TemporaryDirectory() as tmp:
            from dramnet_edge.calibrate.quantize import quantize_onnx

            allq = Path(tmp) / "all.onnx"
            calib_b = batches({"x": calibration.calib.blurred}, None)
            quantize_onnx(fp32_paths["model"], allq, calib_b, settings=QuantSettings(lib, method),
                          exclude=lay.sensitive_nodes())
            all_img = from_tiles(OnnxGraph(allq, threads=args.threads).run({"x": tiles})[0], len(names), size, tile)
            placement = {"all_quantized": placement_figures(allq, lay, lay.sensitive_nodes()),
                         "after_fallback": placement_figures(paths["model"], lay, plan.exclusions("model"))}
        entry = {
            "seconds": round(seconds, 1),
            "reverted_groups": report["fallback"]["reverted"],
            "fallback_level": report["fallback"]["level"],
            "holdout_tiles": report["final"]["model"],
            "photos_after_fallback": image_figures(int8_img, fp32_img, sharp, names),
            "photos_all_quantized": image_figures(all_img, fp32_img, sharp, names),
            "quantized_layers": {g: report["graphs"][g]["quantized_layers"] for g in GRAPHS},
            "placement": placement,
        }
        results["libraries"][spec] = entry
        p, a = entry["photos_after_fallback"], entry["photos_all_quantized"]
        log(f"   photos, all quantized: drop {a['drop_db_mean']:+.3f} mean / {a['drop_db_worst']:+.3f} worst "
            f"({a['worst_image']}); INT8 vs FP32 {a['psnr_int8_vs_fp32_mean']:.1f} dB mean, "
            f"{a['psnr_int8_vs_fp32_min']:.1f} min")
        log(f"   photos, after fallback ({len(entry['reverted_groups'])} groups FP32): drop {p['drop_db_mean']:+.3f} "
            f"mean / {p['drop_db_worst']:+.3f} worst ({p['worst_image']}); INT8 vs FP32 "
            f"{p['psnr_int8_vs_fp32_mean']:.1f} dB mean, {p['psnr_int8_vs_fp32_min']:.1f} min "
            f"({p['worst_vs_fp32_image']}); {seconds:.0f} s")
        (out / "results.json").write_text(json.dumps(results, indent=2))

    if results["libraries"]:
        table = comparison_table(results)
        (out / "libraries.md").write_text(table + "\n")
        log("\n" + table)

    # OpenVINO: NNCF INT8 IR from the first library's plan (its fallback continued with OpenVINO in the loop)
    first = next(iter(results["libraries"]), None)
    if first is not None and not args.no_openvino:
        from dramnet_edge.export.onnx2openvino import compile_openvino, onnx_to_openvino

        log("\n== OpenVINO (NNCF INT8 IR vs FP32 IR, f32 hint)")
        ov_dir = out / "openvino"
        xml8 = get_format("openvino").artifact_paths(ov_dir / "m.int8.xml")
        ov = openvino_int8_graphs(fp32_paths, xml8, plans[first], batch=args.batch, threads=args.threads, log=log)
        xml32 = ov_dir / "m.fp32.xml"
        onnx_to_openvino(fp32_paths["model"], xml32, precision="fp32", batch=args.batch)

        def ov_run(xml):
            c = compile_openvino(xml, f32=True, threads=args.threads)
            r = c.create_infer_request()
            outs = []
            for s in range(0, len(tiles), args.batch):
                part = tiles[s : s + args.batch]
                m = len(part)
                if m < args.batch:
                    part = np.concatenate([part, np.repeat(part[-1:], args.batch - m, 0)])
                outs.append(np.array(r.infer({0: part})[c.outputs[0]])[:m])
            return from_tiles(np.concatenate(outs), len(names), size, tile)

        ov32, ov8 = ov_run(xml32), ov_run(xml8["model"])
        results["openvino"] = {
            "reverted_groups": ov["reverted"],
            "openvino_fallback": ov["openvino_fallback"],
            "holdout_tiles": ov["final"]["model"],
            "quality_int8_vs_ov_fp32": image_figures(ov8, ov32, sharp, names),
            "speed": {args.model: interleaved_throughput(xml32, xml8["model"], tiles[: args.batch], args.threads,
                                                         args.rounds)},
            "plan_from": first,
        }
        q, sp = results["openvino"]["quality_int8_vs_ov_fp32"], results["openvino"]["speed"][args.model]
        log(f"   photos ({len(ov['reverted'])} groups FP32): drop {q['drop_db_mean']:+.3f} mean / "
            f"{q['drop_db_worst']:+.3f} worst ({q['worst_image']}); INT8 vs FP32 {q['psnr_int8_vs_fp32_mean']:.1f} dB")
        log(f"   {args.model} tile {tile}, batch {args.batch}, {args.threads} threads: FP32 {sp['fp32_tiles_per_s']} "
            f"tiles/s, INT8 {sp['int8_tiles_per_s']} tiles/s, ratio {sp['ratio']}")
        for name in [s for s in args.speed_models.split(",") if s]:
            with tempfile.TemporaryDirectory() as tmp:
                sp = speed_only(name, args.speed_tile, Path(tmp), args.threads, args.batch, args.rounds, log)
            results["openvino"]["speed"][f"{name} (random weights, tile {args.speed_tile})"] = sp
            log(f"   {name} tile {args.speed_tile}: FP32 {sp['fp32_tiles_per_s']} tiles/s, INT8 "
                f"{sp['int8_tiles_per_s']} tiles/s, ratio {sp['ratio']}")
        (out / "results.json").write_text(json.dumps(results, indent=2))
    log(f"\nresults: {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
