"""PNG plots of a bench result (matplotlib, Agg backend: no display needed).

``tradeoff.png``: per artifact, speedup (x) against PSNR change versus the same artifact without exit (y), one point
per exit policy, labelled with it — the early exit's trade-off curve. Without targets the y axis is the PSNR of each
output against the no-exit output instead.
``latency.png``: p50 latency per image (bars, p90 as whiskers) for every run, grouped by artifact/backend.
"""

from __future__ import annotations

import os
from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _runs(result: dict) -> list[dict]:
    return [r for r in result["runs"] if not r.get("skipped")]


def _save(plt, fig, path: str | os.PathLike) -> Path:
    """Lay out, write (creating the folder) and close a figure."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_tradeoff(result: dict, path: str | os.PathLike) -> Path:
    plt = _pyplot()
    runs = _runs(result)
    with_targets = any(r.get("psnr") is not None for r in runs)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for artifact in dict.fromkeys(r["artifact"] for r in runs):
        rs = sorted((r for r in runs if r["artifact"] == artifact and r.get("speedup") is not None),
                    key=lambda r: r["speedup"])
        if not rs:
            continue
        if with_targets:
            ys = [r.get("delta_psnr") or 0.0 for r in rs]
        else:
            ys = [100.0 if r["baseline"] else (r.get("psnr_vs_no_exit") or 100.0) for r in rs]
        xs = [r["speedup"] for r in rs]
        ax.plot(xs, ys, "o-", label=f"{artifact} ({rs[0]['backend']}, {rs[0]['precision']})")
        for x, y, r in zip(xs, ys, rs):
            ax.annotate(r["policy_description"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.axvline(1.0, color="grey", lw=0.8, ls=":")
    if with_targets:
        ax.axhline(0.0, color="grey", lw=0.8, ls=":")
        ax.set_ylabel("PSNR change vs no exit (dB)")
    else:
        ax.set_ylabel("PSNR vs no-exit output (dB, 100 = identical)")
    ax.set_xlabel("speedup vs no exit (x, measured interleaved)")
    ax.set_title("Early exit: speed against quality")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _save(plt, fig, path)


def plot_latency(result: dict, path: str | os.PathLike) -> Path:
    plt = _pyplot()
    runs = _runs(result)
    labels = [f"{r['backend']} {r['precision']}\n{r['policy_description']}" for r in runs]
    p50 = [r["latency_ms_p50"] for r in runs]
    p90 = [r["latency_ms_p90"] for r in runs]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(runs) + 2), 4.5), dpi=120)
    artifacts = list(dict.fromkeys(r["artifact"] for r in runs))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colour = [colours[artifacts.index(r["artifact"]) % len(colours)] for r in runs]
    xs = range(len(runs))
    ax.bar(xs, p50, color=colour, yerr=[[0] * len(runs), [b - a for a, b in zip(p50, p90)]], capsize=3)
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("latency per image (ms): p50, whisker to p90")
    ax.set_title("Latency per backend and exit policy")
    ax.grid(axis="y", alpha=0.3)
    return _save(plt, fig, path)


def write_plots(result: dict, folder: str | os.PathLike) -> list[Path]:
    """Both plots into ``folder``; returns their paths (none when no run completed)."""
    if not _runs(result):
        return []
    folder = Path(folder)
    return [plot_tradeoff(result, folder / "tradeoff.png"), plot_latency(result, folder / "latency.png")]
