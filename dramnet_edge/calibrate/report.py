"""A calibration report's files: the JSON form (the report dict itself) and the Markdown form beside the artifact
(``write_report``, ``report_paths``), and the summary of it that goes into the sidecar (``_sidecar_summary``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .fallback import within_budget


def written_met(report: dict) -> bool:
    """Whether the *written* graphs are within budget on the held-out tiles (``report["final"]["model"]``, by the
    fallback's own test, ``fallback.within_budget``). The fallback decides on its estimate (``report["fallback"]
    ["met"]``: groups reverted inside the already-quantized graph); the written graphs are quantized afresh with those
    groups excluded, which moves the ranges of the layers around them, so the two can differ by a few hundredths of a
    dB either way. What a user gets is the written graphs: this is the verdict every summary reports."""
    final = report["final"]["model"]
    return within_budget(final["drop_db_mean"], final["drop_db_worst"], final["nonfinite_outputs"],
                         report["budget_db"], report.get("worst_budget_db"))


def verdict(report: dict) -> str:
    """'met' / 'NOT met' on the written graphs, naming the fallback's estimate where it said otherwise."""
    met, estimate = written_met(report), bool(report["fallback"]["met"])
    text = "met" if met else "NOT met"
    if met != estimate:
        est = report["fallback"].get("estimate") or {}
        shown = f", {est['drop_db_mean']:+.3f} dB mean," if "drop_db_mean" in est else ""
        text += f" on the written graphs (the fallback's estimate{shown} said {'met' if estimate else 'not met'})"
    return text


def _drop_row(label: str, d: dict) -> str:
    return (f"| {label} | {d['drop_db_mean']:+.3f} | {d['drop_db_worst']:+.3f} | {d.get('worst_tile', '')} | "
            f"{d['psnr_vs_fp32_db_mean']:.1f} | {d['psnr_vs_fp32_db_min']:.1f} |")


def report_markdown(report: dict) -> str:
    """A human-readable summary: settings, calibration strata, what stayed FP32 and why, sensitivity, result."""
    s = report["settings"]
    cal = report["calibration"]
    fb = report["fallback"]
    final = report["final"]
    lines = [
        f"# INT8 calibration report: {report.get('model') or 'model'}"
        + (f" (tile {report['tile']})" if report.get("tile") else ""),
        "",
        f"- library: **{s['library']}**, activation ranges: **{s['method']}**; weights {s['weights']}; "
        f"activations {s['activations']}; quantized op types {', '.join(s['op_types'])}; bias {s['bias']}",
        f"- budget: mean PSNR drop <= **{report['budget_db']} dB** on {cal['holdout_tiles']} held-out tiles "
        f"(reference: {fb['initial']['reference']})"
        + (f", worst tile <= {report['worst_budget_db']} dB" if report.get("worst_budget_db") is not None else ""),
        f"- result: budget **{verdict(report)}**; {len(fb['reverted'])} layer group(s) reverted "
        f"to FP32; {fb['evaluations']} evaluations ({fb['seconds']:.0f} s)",
        "",
        "## Calibration set",
        "",
        f"- source: {cal['source']}",
        f"- {cal['candidates']} candidate tiles scored by the model's own blur map (max per tile): "
        + ", ".join(f"{k} {v}" for k, v in cal["candidate_strata"].items()),
        f"- thresholds: sharp/mild {cal['thresholds']['sharp_mild']:.4f} ({cal['thresholds']['rules'][0]}), "
        f"mild/heavy {cal['thresholds']['mild_heavy']:.4f} ({cal['thresholds']['rules'][1]})",
        "",
        "| stratum | calibration tiles | held-out tiles |",
        "|---|---|---|",
    ]
    for k in cal["calibration_strata"]:
        lines.append(f"| {k} | {cal['calibration_strata'][k]} | {cal['holdout_strata'].get(k, 0)} |")
    for note in cal.get("notes", []):
        lines.append(f"\nNote: {note}")
    lines += ["", "## Drop vs FP32 (held-out tiles)", "",
              "| graph | drop mean (dB) | drop worst (dB) | worst tile | INT8 vs FP32 mean (dB) | min (dB) |",
              "|---|---|---|---|---|---|",
              _drop_row("all quantized (before fallback)", fb["initial"]),
              _drop_row("whole model (written)", final["model"]),
              _drop_row("split: encoder -> full decoder", final["split_full"]),
              _drop_row("split: encoder -> light decoder", final["split_light"])]
    extra = [f"blur score max |INT8 - FP32| {final['blur_score_max_abs_diff']}"]
    if "exit_agreement" in final:
        extra.append(f"early-exit agreement at tau {report.get('tau')}: {final['exit_agreement']:.1%}")
    lines += ["", "; ".join(extra)]
    parity = report.get("parity_photos")
    if parity and not parity.get("skipped"):
        lines += ["", f"Parity photos ({', '.join(parity.get('photos', []))}): worst "
                  f"{min(parity[g]['psnr_db_min'] for g in ('model', 'full', 'light')):.1f} dB vs "
                  f"{parity.get('reference', 'FP32')}."]
    lines += ["", "## Kept in FP32 by default (sensitive)", ""]
    for g, nodes in report["sensitive_kept_fp32"].items():
        kinds: dict[str, int] = {}
        for k in nodes.values():
            kinds[k] = kinds.get(k, 0) + 1
        lines.append(f"- {g}: " + (", ".join(f"{k} x{v}" for k, v in kinds.items()) or "none"))
    lines += ["", f"## Sensitivity per layer group ({fb['granularity']}; gain = drop saved by reverting the group "
              "alone)", "", "| group | layers | drop if reverted (dB) | gain (dB) | worst-tile gain (dB) |",
              "|---|---|---|---|---|"]
    for row in sorted(fb["sensitivity"], key=lambda r: -r["gain_db"]):
        lines.append(f"| {row['group']} | {row['layers']} | {row['drop_db_mean']:+.4f} | {row['gain_db']:+.4f} | "
                     f"{row['gain_worst_db']:+.4f} |")
    lines += ["", "## Reverted to FP32", ""]
    if fb["history"]:
        lines += ["| step | reverted | drop mean (dB) | drop worst (dB) |", "|---|---|---|---|"]
        for h in fb["history"]:
            lines.append(f"| {h['step']} | {', '.join(h['reverted'])} | {h['drop_db_mean']:+.4f} | "
                         f"{h['drop_db_worst']:+.4f} |")
    else:
        lines.append("none: the fully quantized model was within budget")
    lines += ["", "## Graphs", "", "| graph | file | quantized layers | kept FP32 (sensitive) | kept FP32 (reverted) | "
              "Q/DQ problems |", "|---|---|---|---|---|---|"]
    for g, r in report["graphs"].items():
        sens = sum(r["kept_fp32_sensitive"].values())
        lines.append(f"| {g} | {r['file']} | {r['quantized_layers']} / {r['quantizable_layers']} | {sens} | "
                     f"{r['kept_fp32_reverted']} | {len(r['qdq']['problems']) or 'none'} |")
    t = report.get("timings", {})
    if t:
        lines += ["", "Timings (s): " + ", ".join(f"{k[:-2]} {v}" for k, v in t.items())]
    return "\n".join(lines) + "\n"


def report_paths(output: str | os.PathLike) -> tuple[Path, Path]:
    """``m.int8.onnx`` -> (``m.int8.onnx.report.json``, ``m.int8.onnx.report.md``): named after the whole artifact
    name, so INT8 exports of one stem to different targets keep their own reports."""
    from ..export.formats import report_paths as artifact_report_paths

    return artifact_report_paths(output)


def _sidecar_summary(report: dict) -> dict:
    fb = report["fallback"]
    return {
        "library": report["settings"]["library"], "method": report["settings"]["method"],
        "scheme": "int8 symmetric, per-channel weights, zero-point 0 (Q/DQ)",
        "budget_db": report["budget_db"], "met": written_met(report), "fallback_estimate_met": bool(fb["met"]),
        "reverted_groups": fb["reverted"],
        "drop_db_mean": report["final"]["model"]["drop_db_mean"],
        "drop_db_worst": report["final"]["model"]["drop_db_worst"],
        "calibration_strata": report["calibration"]["calibration_strata"],
    }


def write_report(output: str | os.PathLike, report: dict) -> tuple[Path, Path]:
    """Write ``m.int8.report.json`` and ``m.int8.report.md`` beside ``output``."""
    from ..io_utils import atomic_write

    json_path, md_path = report_paths(output)
    text = json.dumps(report, indent=2, default=_json_default) + "\n"
    atomic_write(json_path, lambda tmp: Path(tmp).write_text(text))
    md = report_markdown(report)
    atomic_write(md_path, lambda tmp: Path(tmp).write_text(md))
    return json_path, md_path


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.bool_):
        return bool(o)
    raise TypeError(type(o).__name__)
