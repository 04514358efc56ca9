"""Where the time of one frame goes on this CPU, per backend: the model's parts, the graphs, the op types, Python.

    python benchmarks/profile_cpu.py                               # shipped default, 1280x720, torch + ORT + OpenVINO
    python benchmarks/profile_cpu.py --backends torch --repeat 5
    python benchmarks/profile_cpu.py --int8 out/m.int8.xml          # also an OpenVINO INT8 export: what ran in INT8
    python benchmarks/profile_cpu.py --json prof.json --markdown prof.md

One 1280x720 frame (scikit-image's motorcycle_left resized; content does not change the work without an early exit)
goes through the same tiled runtime as ``dramnet-edge deblur`` (overlap 32, 8 tiles per batch, every tile on the
full path), once untimed, then ``--repeat`` times; figures are per frame (mean over the repetitions).

* **torch** (eager, the CLI's backend): forward hooks time the model's parts: the gate (stem convs + first
  blur-map block), the ViT encoder (its attention separately), the token bridge + stem pyramid, and per decoder
  block the STM core, the Fourier expert (DFT matmuls), the wavelet expert, the blur-gated mixer and the blur cross-
  attention, the decoder's up/down convs and the head; "decoder glue" is the rest of ``decode`` (reversible
  couplings, adds, concatenations) and "runtime" the rest of the frame (tiling, blending, copies, Python).
* **onnxruntime** (FP32 export of the same weights, made in a temp folder): ONNX Runtime's own profiler; time per
  split graph (gate, encoder, decoder) and per op type inside them.
* **openvino** (FP32 IR, f32 precision hint; and ``--int8 PATH``, an existing OpenVINO INT8 export): OpenVINO's
  per-node performance counters; time per graph and per op type, and for INT8 which node types ran an INT8 kernel
  (the executed kernel's name carries the precision, e.g. ``brgconv_avx512_I8``) and their share of the time.

Prints the CPU, its ISA flags and the thread count with the tables: compare timings only within one run.
"""

from __future__ import annotations

import argparse
import collections
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

BACKENDS = ("torch", "onnxruntime", "openvino")


def _run_frames(session, frame: np.ndarray, repeat: int, on_untimed=None) -> float:
    """One untimed pass, then ``repeat`` timed ones; returns seconds per frame (mean)."""
    from dramnet_edge.runtime.tiling import deblur_image

    deblur_image(session, frame, batch_size=8)
    if on_untimed:
        on_untimed()
    t0 = time.perf_counter()
    for _ in range(repeat):
        deblur_image(session, frame, batch_size=8)
    return (time.perf_counter() - t0) / repeat


# ------------------------------------------------------------------------------------------------ torch


class _Timers:
    def __init__(self):
        self.seconds = collections.defaultdict(float)
        self.calls = collections.defaultdict(int)
        self._t0: dict[int, float] = {}
        self.enabled = True

    def hook(self, module, label: str) -> None:
        def pre(mod, args):
            self._t0[id(mod)] = time.perf_counter()

        def post(mod, args, out):
            if self.enabled:
                self.seconds[label] += time.perf_counter() - self._t0.pop(id(mod))
                self.calls[label] += 1

        module.register_forward_pre_hook(pre)
        module.register_forward_hook(post)

    def wrap(self, obj, method: str, label: str) -> None:
        fn = getattr(obj, method)

        def timed(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                if self.enabled:
                    self.seconds[label] += time.perf_counter() - t0

        setattr(obj, method, timed)

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()


def _instrument(net, probe) -> None:
    """Attach ``probe`` (``_Timers`` or ``_Counter``: ``hook(module, label)``, ``wrap(obj, method, label)``) to the
    model's parts. Labels starting with "_" are totals the parts are derived from (``_derive_parts``)."""
    probe.hook(net.stem.conv, "gate: stem convs")
    probe.hook(net.blur_map.blocks[0], "gate: first blur-map block")
    vit_attn = [m for n, m in net.encoder.named_modules() if n.endswith(".attn")]
    for m in vit_attn:
        probe.hook(m, "encoder: ViT attention")
    probe.hook(net.encoder, "_encoder_total")
    probe.hook(net.bridge, "encoder: token bridge + stem pyramid")
    probe.wrap(net.stem, "pyramid", "encoder: token bridge + stem pyramid")
    for name, module in net.decoder.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if ".blocks." in name and leaf in ("stm", "fourier", "wavelet", "mixer", "attention"):
            label = {"stm": "decoder: STM core", "fourier": "decoder: Fourier expert (DFT matmuls)",
                     "wavelet": "decoder: wavelet expert", "mixer": "decoder: blur-gated mixer",
                     "attention": "decoder: blur cross-attention"}[leaf]
            probe.hook(module, label)
        elif ".levels." in name and leaf in ("up", "down"):
            probe.hook(module, "decoder: up/down convs")
    probe.hook(net.decoder.blur_resize, "decoder: blur-map resize")
    probe.hook(net.head, "decoder: head")
    probe.wrap(net, "gate_features", "_gate_total")
    probe.wrap(net, "encode_levels", "_encode_total")
    probe.wrap(net, "decode", "_decode_total")


#: Where work outside every named part is booked, by the innermost total it ran in.
REST = {"_encoder_total": "encoder: ViT other (MLP, norms, patch embed)",
        "_decode_total": "decoder: glue (reversible couplings, adds, concatenations)",
        "_gate_total": "model: other (input normalisation, checks, path selection)",
        "_encode_total": "model: other (input normalisation, checks, path selection)",
        None: "runtime: tiling, blending, copies, Python"}


def profile_torch(net, frame: np.ndarray, repeat: int) -> dict:
    """Per-part seconds per frame for eager torch (forward hooks; parts do not nest)."""
    import torch

    from dramnet_edge.runtime.session import TorchSession

    timers = _Timers()
    _instrument(net, timers)
    session = TorchSession(net)
    with torch.inference_mode():
        frame_s = _run_frames(session, frame, repeat, on_untimed=timers.reset)
    s = {k: v / repeat for k, v in timers.seconds.items()}
    parts = {k: v for k, v in s.items() if not k.startswith("_")}
    parts[REST["_encoder_total"]] = s["_encoder_total"] - parts.get("encoder: ViT attention", 0)
    decoder_named = sum(v for k, v in parts.items() if k.startswith("decoder:") and k != "decoder: head")
    parts[REST["_decode_total"]] = max(0.0, s["_decode_total"] - decoder_named - parts.get("decoder: head", 0.0))
    model_s = s["_gate_total"] + s["_encode_total"] + s["_decode_total"]
    parts[REST["_gate_total"]] = max(0.0, model_s - sum(parts.values()))
    parts[REST[None]] = frame_s - model_s
    return {"frame_s": frame_s, "model_s": model_s, "parts": parts}


# ------------------------------------------------------------------------------------------------- roofline

class _Counter:
    """FLOPs and bytes per part of one forward pass, by aten op: FLOPs from torch's flop counter formulas
    (convolutions, matmuls, attention; element-wise ops count 0), bytes = every tensor the op reads plus every tensor
    it writes (views move nothing). Eager PyTorch runs op by op, so this is the traffic an op would cause if none of
    its operands stayed in cache: an upper bound on memory traffic, so the arithmetic intensity is a lower bound."""

    def __init__(self):
        self.flops = collections.defaultdict(float)
        self.bytes = collections.defaultdict(float)
        self.stack: list[str] = []

    def hook(self, module, label: str) -> None:
        def pre(mod, args):
            self.stack.append(label)

        def post(mod, args, out):  # returns None: a forward hook's return value would replace the output
            self.stack.pop()

        module.register_forward_pre_hook(pre)
        module.register_forward_hook(post)

    def wrap(self, obj, method: str, label: str) -> None:
        fn = getattr(obj, method)

        def counted(*a, **k):
            self.stack.append(label)
            try:
                return fn(*a, **k)
            finally:
                self.stack.pop()

        setattr(obj, method, counted)

    def label(self) -> str:
        named = [x for x in self.stack if not x.startswith("_")]
        if named:
            return named[-1]
        return REST[self.stack[-1] if self.stack else None]

    def mode(self):
        import torch
        import torch.utils._pytree as pytree
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils.flop_counter import flop_registry

        counter = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                if func._overloadpacket not in flop_registry:  # composite ops (conv2d, linear): count what they run
                    with self:
                        decomposed = func.decompose(*args, **kwargs)
                    if decomposed is not NotImplemented:
                        return decomposed
                out = func(*args, **kwargs)
                schema = func._schema
                is_view = any(r.alias_info is not None for r in schema.returns) and not schema.name.endswith("_")
                label = counter.label()
                if not is_view:
                    tensors = [t for t in pytree.tree_leaves((args, kwargs, out)) if isinstance(t, torch.Tensor)]
                    counter.bytes[label] += sum(t.numel() * t.element_size() for t in tensors)
                packet = func._overloadpacket
                if packet in flop_registry:
                    counter.flops[label] += flop_registry[packet](*args, **kwargs, out_val=out)
                return out

        return Mode()


def memory_bandwidth(min_seconds: float = 0.5, mib: int = 256) -> float:
    """GB/s of a large tensor copy with torch's threads (bytes read + written), best of repeated copies."""
    import torch

    n = mib * (1 << 20) // 4
    src, dst = torch.rand(n), torch.empty(n)
    dst.copy_(src)
    best, spent = float("inf"), 0.0
    while spent < min_seconds:
        t0 = time.perf_counter()
        dst.copy_(src)
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
    return 2 * n * 4 / best / 1e9


def roofline_torch(net, parts_s: dict, tiles: int, batch: int = 8) -> dict:
    """Each part of ``profile_torch`` against its own roofline: FLOPs and bytes of one batch of ``batch`` full-path
    tiles, scaled to the frame's ``tiles``; bound = min(FP32 GEMM peak, intensity x copy bandwidth), both measured
    here; achieved = FLOPs / the part's time in ``parts_s`` (seconds per frame)."""
    import torch

    from dramnet_edge.bench.peak import gemm_peak

    counter = _Counter()
    _instrument(net, counter)
    x = torch.rand(batch, 3, net.tile, net.tile)
    with torch.inference_mode(), counter.mode():
        stem, blur = net.gate_features(x)
        levels = net.encode_levels(x, stem)
        net.decode(x, levels, blur, None)
    scale = tiles / batch
    peak = gemm_peak()["fp32_gflops"]
    bandwidth = memory_bandwidth()
    rows = {}
    for label, seconds in parts_s.items():
        flops, moved = counter.flops.get(label, 0.0) * scale, counter.bytes.get(label, 0.0) * scale
        if not moved:
            continue
        intensity = flops / moved
        bound = min(peak, intensity * bandwidth)
        achieved = flops / seconds / 1e9 if seconds > 0 else 0.0
        rows[label] = {"gflop": flops / 1e9, "gbytes": moved / 1e9, "flop_per_byte": intensity,
                       "bound_gflops": bound, "memory_bound": intensity * bandwidth < peak,
                       "achieved_gflops": achieved, "share_of_bound_pct": 100 * achieved / bound if bound else None,
                       "achieved_gbs": moved / seconds / 1e9 if seconds > 0 else 0.0,
                       "share_of_bandwidth_pct": 100 * moved / seconds / 1e9 / bandwidth if seconds > 0 else None,
                       "ms": 1e3 * seconds}
    return {"fp32_peak_gflops": peak, "copy_bandwidth_gbs": bandwidth, "ridge_flop_per_byte": peak / bandwidth,
            "parts": rows}


def _roofline_table(r: dict) -> list[str]:
    lines = [f"Roofline (eager torch): FP32 GEMM peak {r['fp32_peak_gflops']:.0f} GFLOP/s and copy bandwidth "
             f"{r['copy_bandwidth_gbs']:.1f} GB/s, both measured in this run, so a part below "
             f"{r['ridge_flop_per_byte']:.1f} FLOP/byte is bound by memory. Bytes count every op's inputs and outputs "
             "(no reuse in cache): intensities are lower bounds.", "",
             "| part | ms per frame | GFLOP per frame | GB moved per frame | FLOP/byte | bound | its roofline GFLOP/s | "
             "achieved GFLOP/s | share of its roofline | achieved GB/s (share of copy bandwidth) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for label, v in sorted(r["parts"].items(), key=lambda kv: -kv[1]["ms"]):
        share = "–" if not v["share_of_bound_pct"] else f"{v['share_of_bound_pct']:.0f} %"
        bw = "–" if v.get("share_of_bandwidth_pct") is None else f"{v['achieved_gbs']:.1f} ({v['share_of_bandwidth_pct']:.0f} %)"
        lines.append(f"| {label} | {v['ms']:.0f} | {v['gflop']:.1f} | {v['gbytes']:.2f} | {v['flop_per_byte']:.1f} | "
                     f"{'memory' if v['memory_bound'] else 'compute'} | {v['bound_gflops']:.0f} | "
                     f"{v['achieved_gflops']:.1f} | {share} | {bw} |")
    return lines


# -------------------------------------------------------------------------------------- artifact backends


def _wrap_graphs(session, per_graph: dict) -> None:
    fn = session.run_graph

    def timed(name, inputs):
        t0 = time.perf_counter()
        try:
            return fn(name, inputs)
        finally:
            per_graph[name] += time.perf_counter() - t0

    session.run_graph = timed


def profile_onnxruntime(artifact: Path, frame: np.ndarray, repeat: int, work: Path) -> dict:
    from dramnet_edge.runtime.backends_onnxruntime import OnnxRuntimeSession

    handles = {}

    class Profiled(OnnxRuntimeSession):
        def _options(self, path):
            options = super()._options(path)
            options.enable_profiling = True
            options.profile_file_prefix = str(work / f"ort_{Path(path).stem}")
            return options

        def _load(self, path):
            handle = handles[Path(path).name] = super()._load(path)
            return handle

    session = Profiled(artifact)
    per_graph = collections.defaultdict(float)
    _wrap_graphs(session, per_graph)
    frame_s = _run_frames(session, frame, repeat, on_untimed=per_graph.clear)
    ops = collections.defaultdict(float)
    for name, handle in handles.items():
        events = json.loads(Path(handle.end_profiling()).read_text())
        runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                      key=lambda e: e["ts"])
        untimed = len(runs) // (repeat + 1)  # every frame runs each graph equally often; drop the untimed frame's
        keep_after = runs[untimed - 1]["ts"] + runs[untimed - 1]["dur"] if untimed else 0
        for e in events:
            if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and e["ts"] >= keep_after:
                ops[e["args"].get("op_name", "?")] += e["dur"] / 1e6
    return _artifact_result(frame_s, per_graph, ops, repeat)


def _artifact_result(frame_s: float, per_graph: dict, ops: dict, repeat: int, extra: dict | None = None) -> dict:
    graphs = {k: v / repeat for k, v in per_graph.items()}
    model_s = sum(graphs.values())
    return {"frame_s": frame_s, "model_s": model_s, "graphs": graphs,
            "runtime_s": frame_s - model_s, "op_types": {k: v / repeat for k, v in ops.items()}, **(extra or {})}


def profile_openvino(artifact: Path, frame: np.ndarray, repeat: int, f32: bool = True) -> dict:
    from dramnet_edge.export.onnx2openvino import compile_openvino
    from dramnet_edge.runtime.backends_openvino import OpenVINOSession

    ops = collections.defaultdict(float)
    int8_time = collections.defaultdict(float)
    int8_nodes, counted = set(), {"on": False}

    class Profiled(OpenVINOSession):
        def _load(self, path):
            compiled = compile_openvino(path, f32=self.f32, threads=self.threads, extra={"PERF_COUNT": "YES"})
            return compiled, compiled.create_infer_request()

        def _run(self, handle, inputs):
            out = super()._run(handle, inputs)
            if counted["on"]:
                for info in handle[1].get_profiling_info():
                    seconds = info.real_time.total_seconds()
                    ops[info.node_type] += seconds
                    kernel = str(info.exec_type)
                    if "i8" in kernel.lower() or "u8" in kernel.lower():
                        int8_time[info.node_type] += seconds
                        int8_nodes.add(info.node_name)
            return out

    session = Profiled(artifact, f32=f32)
    per_graph = collections.defaultdict(float)
    _wrap_graphs(session, per_graph)

    def start():
        per_graph.clear()
        counted["on"] = True

    frame_s = _run_frames(session, frame, repeat, on_untimed=start)
    total = sum(ops.values()) or 1.0
    extra = {} if f32 else {"int8_nodes": len(int8_nodes), "int8_time_by_type": {k: v / repeat for k, v in int8_time.items()},
             "int8_share_pct": round(100 * sum(int8_time.values()) / total, 1)}
    return _artifact_result(frame_s, per_graph, ops, repeat, extra)


# ------------------------------------------------------------------------------------------------ report


def _table(title: str, items: dict, frame_s: float, top: int | None = None) -> list[str]:
    rows = sorted(items.items(), key=lambda kv: -kv[1])
    if top:
        rest = sum(v for _, v in rows[top:])
        rows = rows[:top] + ([("(other op types)", rest)] if rest > 0 else [])
    lines = [f"| {title} | ms per frame | share of the frame |", "|---|---|---|"]
    lines += [f"| {k} | {1e3 * v:.0f} | {100 * v / frame_s:.1f} % |" for k, v in rows]
    return lines


def markdown(result: dict) -> str:
    cpu = result["cpu"]
    lines = [f"Frame {result['frame']}, tile {result['tile']}, overlap 32, 8 tiles per batch, {result['tiles']} tiles, "
             f"{result['repeat']} timed repetitions; {result['model']} ({result['weights']}); CPU {cpu['model']} "
             f"({cpu['logical_cpus']} logical CPUs; {' '.join(cpu['isa'])}), {result['threads']} torch thread(s); "
             f"torch {result['versions'].get('torch')}, onnxruntime {result['versions'].get('onnxruntime', '-')}, "
             f"openvino {result['versions'].get('openvino', '-')}.", ""]
    for name, r in result["backends"].items():
        if "error" in r:
            lines += [f"**{name}**: not profiled ({r['error']}).", ""]
            continue
        lines += [f"**{name}**: {1e3 * r['frame_s']:.0f} ms per frame, of which the model "
                  f"{1e3 * r['model_s']:.0f} ms.", ""]
        if "parts" in r:
            lines += _table("part", r["parts"], r["frame_s"]) + [""]
            if "roofline" in r:
                lines += _roofline_table(r["roofline"]) + [""]
        else:
            lines += _table("graph", {**r["graphs"], "runtime: tiling, blending, copies, Python": r["runtime_s"]},
                            r["frame_s"]) + [""]
            lines += _table("op type (inside the graphs)", r["op_types"], r["frame_s"], top=10) + [""]
            if "int8_nodes" in r:
                lines += [f"INT8 kernels: {r['int8_nodes']} nodes, {r['int8_share_pct']} % of the graphs' node time"
                          + (": " + ", ".join(f"{k} {1e3 * v:.0f} ms" for k, v in sorted(
                              r["int8_time_by_type"].items(), key=lambda kv: -kv[1])) if r["int8_time_by_type"] else "")
                          + ".", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--checkpoint", help="weights (default: the shipped embedded default)")
    ap.add_argument("--backends", default=",".join(BACKENDS), help=f"comma-separated subset of {','.join(BACKENDS)}")
    ap.add_argument("--int8", type=Path, metavar="XML", help="an OpenVINO INT8 export to profile as well")
    ap.add_argument("--repeat", type=int, default=3, help="timed frames per backend (default 3)")
    ap.add_argument("--size", default="1280x720", help="frame WxH (default 1280x720)")
    ap.add_argument("--no-roofline", action="store_true",
                    help="skip the torch parts' roofline (FLOPs and bytes per part against the measured FP32 GEMM "
                         "peak and copy bandwidth)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--markdown", type=Path, help="write the tables here")
    args = ap.parse_args(argv)
    import torch

    from dramnet_edge.bench.device import _cpu_model, _versions, cpu_isa
    from dramnet_edge.bench.photos import parse_size, timing_frame
    from dramnet_edge.deploy.export import export_model
    from dramnet_edge.models.builder import load_model
    from dramnet_edge.weights import EMBEDDED_DEFAULT, default_checkpoint

    backends = [b for b in args.backends.split(",") if b]
    bad = [b for b in backends if b not in BACKENDS]
    if bad or args.repeat < 1:
        print(f"profile_cpu: unknown backend(s) {bad} (choose from {', '.join(BACKENDS)}) or --repeat < 1", file=sys.stderr)
        return 2
    try:
        width, height = parse_size(args.size)
    except ValueError as e:
        print(f"profile_cpu: --size: {e}", file=sys.stderr)
        return 2
    ckpt = Path(args.checkpoint) if args.checkpoint else default_checkpoint(EMBEDDED_DEFAULT)
    net, meta = load_model(ckpt)
    net.eval()
    frame = timing_frame(width, height)
    from dramnet_edge.runtime.tiling import count_tiles

    result = {"frame": f"{width}x{height}", "tile": net.tile, "tiles": count_tiles(height, width, net.tile, 32), "repeat": args.repeat,
              "model": meta.get("model"), "weights": ckpt.name, "threads": torch.get_num_threads(),
              "cpu": {"model": _cpu_model(), "isa": cpu_isa(), "logical_cpus": os.cpu_count()},
              "versions": _versions(), "backends": {}}
    work = Path(tempfile.mkdtemp(prefix="profile_cpu_"))
    for backend in backends:
        print(f"[profile] {backend} ...", flush=True)
        try:
            if backend == "torch":
                r = profile_torch(copy.deepcopy(net), frame, args.repeat)  # hooks stay off the exported net
                if not args.no_roofline:
                    print("[profile] torch roofline (FLOPs and bytes per part, GEMM peak, copy bandwidth) ...", flush=True)
                    r["roofline"] = roofline_torch(copy.deepcopy(net), r["parts"], result["tiles"])
                result["backends"]["torch (eager, fp32)"] = r
            elif backend == "onnxruntime":
                out = work / "m.onnx"
                export_model(net, target="onnx", output=out, model_name=meta.get("model"), check=False)
                result["backends"]["onnxruntime (fp32)"] = profile_onnxruntime(out, frame, args.repeat, work)
            else:
                out = work / "m.xml"
                export_model(net, target="openvino", output=out, model_name=meta.get("model"), check=False)
                result["backends"]["openvino (fp32, f32 hint)"] = profile_openvino(out, frame, args.repeat)
        except ImportError as e:
            result["backends"][backend] = {"error": f"not installed: {e.name}"}
    if args.int8:
        print("[profile] openvino int8 ...", flush=True)
        result["backends"][f"openvino int8 ({args.int8.name})"] = profile_openvino(args.int8, frame, args.repeat,
                                                                                  f32=False)
    text = markdown(result)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
