"""Markdown for bench, validate and quickstart results (the same tables the terminal shows)."""

from __future__ import annotations


def _f(value, fmt: str = ".2f", none: str = "–") -> str:
    if value is None:
        return none
    try:
        return format(value, fmt)
    except (TypeError, ValueError):
        return str(value)


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def device_line(device: dict) -> str:
    isa = device.get("cpu_isa")
    parts = [f"{device.get('cpu_model')} ({device.get('cpu_cores')} logical cores"
             + (f"; {' '.join(isa)}" if isa else "") + ")", f"{device.get('ram_gb')} GB RAM",
             str(device.get("os"))]
    if device.get("cuda"):
        parts.insert(0, f"GPU {device['cuda']['name']} (CUDA {device['cuda'].get('cuda')})")
    j = device.get("jetson")
    if j:
        mode = (j.get("nvpmodel") or {}).get("mode_name", "unknown")
        clocks = j.get("clocks") or {}
        pinned = {True: "clocks pinned", False: "clocks NOT pinned"}.get(clocks.get("pinned"), "clocks not recorded")
        gpu = clocks.get("gpu")
        if gpu:
            pinned += f", GPU {gpu['cur_mhz']:.0f} MHz"
        parts.insert(0, f"{j.get('model') or 'Jetson'} (L4T {j.get('l4t_release')}, nvpmodel {mode}, {pinned})")
    v = device.get("versions", {})
    parts.append(", ".join(f"{k} {v[k]}" for k in ("torch", "onnxruntime", "openvino", "tensorrt") if k in v))
    if device.get("load_average"):
        parts.append(f"load average {device['load_average'][0]:.1f} at the end of the run "
                     f"(threads {device.get('torch_threads')})")
    return "; ".join(parts)


def bench_markdown(result: dict, title: str = "Benchmark") -> str:
    s = result.get("settings", {})
    lines = [f"## {title}", "", f"Device: {device_line(result['device'])}.", "",
             f"{len(s.get('images', []))} image(s), tile overlap {s.get('overlap')}, batch {s.get('batch_size')}, "
             f"{s.get('warmup')} untimed + {s.get('repeat')} timed pass(es), runs interleaved image by image in "
             "one process (speedup = median over repetitions of the pass-time ratio to the same artifact's no-exit "
             "run).", ""]
    power = result.get("power") or {}
    if power.get("samples"):
        temps = power.get("temp_max_c") or {}
        hottest = max(temps.items(), key=lambda kv: kv[1]) if temps else None
        lines.append(f"Power: {power['mean_w']:.2f} W mean, {power['peak_w']:.2f} W peak ({power['source']}, "
                     f"{power['rail']}, {power['samples']} samples)"
                     + (f"; hottest zone {hottest[0]} {hottest[1]:.1f} C." if hottest else "."))
    else:
        lines.append(f"Power: not measured ({power.get('reason')}).")
    lines.append("")
    headers = ["artifact", "backend", "prec.", "exit policy", "exit % (skip/light)", "ms/img p50", "p90",
               "ms/tile p50", "img/s", "tiles/s", "peak RSS MB (Δ)", "PSNR dB", "ΔPSNR", "speedup"]
    rows = []
    for r in result["runs"]:
        if r.get("skipped"):
            rows.append([r["artifact"], r["backend"], r["precision"], r.get("policy_description", r["policy"]),
                         f"skipped: {r['skipped']}"] + [""] * (len(headers) - 5))
            continue
        exit_txt = (f"{100 * r['exit_fraction']:.0f} ({100 * r['skip_fraction']:.0f}/"
                    f"{100 * r['light_fraction']:.0f})")
        mem = f"{_f(r.get('peak_rss_mb'), '.0f')} ({_f(r.get('rss_delta_mb'), '.0f')})"
        if r.get("cuda_peak_mb") is not None:
            mem += f"; CUDA {r['cuda_peak_mb']:.0f}"
        if r.get("trt_activation_mb") is not None:  # TensorRT's own memory, which torch's counter misses
            mem += f"; TRT act {r['trt_activation_mb']:.0f} + engines {r['trt_engine_file_mb']:.0f}"
        if r.get("device_used_delta_mb") is not None:
            mem += f"; device +{r['device_used_delta_mb']:.0f}"
        rows.append([r["artifact"], r["backend"], r["precision"], r["policy_description"], exit_txt,
                     _f(r["latency_ms_p50"], ".0f"), _f(r["latency_ms_p90"], ".0f"), _f(r["tile_latency_ms_p50"], ".1f"),
                     _f(r["images_per_s"], ".2f"), _f(r["tiles_per_s"], ".1f"), mem, _f(r["psnr"]),
                     _f(r.get("delta_psnr"), "+.3f"),
                     "–" if r.get("speedup") is None else f"{r['speedup']:.2f}x"])
    lines.append(table(headers, rows))
    lines += efficiency_lines(result)
    idle = [r for r in result["runs"] if not r.get("skipped") and not r["baseline"] and r["exit_fraction"] == 0
            and r.get("speedup") is not None]
    if idle:
        lo, hi = min(r["speedup"] for r in idle), max(r["speedup"] for r in idle)
        lines += ["", f"Runs with no exits do the baseline's work: their 'speedups' ({lo:.2f}x-{hi:.2f}x) are the "
                      "timing noise of this machine during this benchmark."]
    weights = {r.get("weights") for r in result["runs"]}
    if "random init" in weights:
        lines += ["", "**Caveat: a randomly initialised model was benchmarked. Its speed is representative; its "
                      "blur scores, exit decisions and PSNR are not.**"]
    return "\n".join(lines) + "\n"


def efficiency_lines(result: dict) -> list[str]:
    """The efficiency table: no-exit runs against this CPU's GEMM peak measured in the same run at their threads."""
    peaks = result.get("peaks")
    rows = [r for r in result["runs"] if r.get("gmac_per_s") is not None]
    if not peaks or not rows:
        return []
    measured = "; ".join(f"at {n} thread(s) FP32 {_f(p['fp32_gflops'], '.0f')} GFLOP/s, BF16 "
                         f"{_f(p.get('bf16_gflops'), '.0f')}, INT8 {_f(p.get('int8_gops'), '.0f')} GOP/s"
                         for n, p in sorted(peaks.items(), key=lambda kv: int(kv[0])))
    lines = ["", f"Efficiency against this CPU's matrix-multiply peak, measured in the same run ({next(iter(peaks.values()))['n']}² "
                 f"GEMM, best of repeated runs): {measured}. Achieved = MACs of a full tile x tiles/s of the whole "
                 "pipeline (tiling, blending and I/O included), 2 FLOPs per MAC; no-exit runs only; each run against "
                 "the peak at its thread count (artifacts without --threads: the logical CPUs).", ""]
    body = [[r["artifact"], r["backend"], r["precision"], str(r.get("peak_threads", "")), _f(r["gmacs_per_tile"], ".3f"),
             _f(r["gmac_per_s"], ".1f"), f"{_f(r['share_of_peak_pct'], '.1f')} % of {r['peak_name']}",
             f"{_f(r['share_of_fp32_peak_pct'], '.1f')} %"] for r in rows]
    lines.append(table(["artifact", "backend", "prec.", "threads", "GMACs/tile", "GMAC/s", "share of its peak",
                        "share of FP32 peak"], body))
    notes = {note for p in peaks.values() for note in (p.get("notes") or {}).values()}
    for note in sorted(notes):
        lines += ["", f"Note: {note}."]
    return lines


def validate_markdown(result: dict, title: str = "Validation") -> str:
    lines = [f"## {title}", "", f"{result['images']} pair(s) from `{result['data']}` (split {result['split']}), "
             f"whole images by tiled inference, exit policy {result['policy']}. Input (blurred) vs ground truth: "
             f"{result['input']['psnr']:.2f} dB PSNR, SSIM {result['input']['ssim']:.4f}.", "",
             f"Device: {device_line(result['device'])}.", ""]
    headers = ["artifact", "backend", "prec.", "PSNR vs GT (worst)", "SSIM vs GT", "PSNR vs FP32 (worst)",
               "SSIM vs FP32", "exit %", "reference"]
    rows = []
    for r in result["artifacts"]:
        if r.get("skipped"):
            rows.append([r["artifact"], r["backend"], r["precision"], f"skipped: {r['skipped']}", "", "", "", "", ""])
            continue
        rows.append([r["artifact"], r["backend"], r["precision"], f"{r['psnr']:.2f} ({r['psnr_min']:.2f})",
                     f"{r['ssim']:.4f}",
                     "–" if r["psnr_ref"] is None else f"{r['psnr_ref']:.2f} ({r['psnr_ref_min']:.2f})",
                     _f(r["ssim_ref"], ".4f"), f"{100 * r['exit_fraction']:.0f}", r.get("reference_note", "")])
    lines.append(table(headers, rows))
    lines += ["", "PSNR vs FP32 is capped at 100 dB (identical outputs)."]
    return "\n".join(lines) + "\n"


def quickstart_markdown(summary: dict, bench_md: str | None = None, validate_md: str | None = None) -> str:
    ok = all(s["status"] in ("ok", "pending", "skipped") for s in summary["steps"])
    lines = ["# dramnet-edge quickstart report", "",
             f"Output folder: `{summary['out']}`. Total wall time {summary['seconds']:.0f} s "
             f"({summary['seconds'] / 60:.1f} min){' (--fast)' if summary.get('fast') else ''}. "
             f"Result: {'all steps ran' if ok else 'SOME STEPS FAILED'}.", "",
             f"Device: {device_line(summary['device'])}.", "", "## Steps", ""]
    rows = [[s["name"], s["status"], f"{s['seconds']:.1f}", s.get("detail", "")] for s in summary["steps"]]
    lines.append(table(["step", "status", "seconds", "detail"], rows))
    train = summary.get("train") or {}
    if train:
        lines += ["", f"Training: val PSNR {_f(train.get('val_psnr'))} dB vs input {_f(train.get('val_psnr_input'))} dB "
                      f"after {train.get('steps')} steps."]
    if validate_md:
        lines += ["", validate_md]
    if bench_md:
        lines += ["", bench_md]
    plots = summary.get("plots") or []
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"
