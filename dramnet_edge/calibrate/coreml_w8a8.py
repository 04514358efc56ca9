"""CoreML W8A8 (8-bit weights and activations) through coremltools' torch-side quantizer, calibrated on Linux.

``coremltools.optimize.torch.quantization.LinearQuantizer`` inserts observers and fake-quantize modules by FX graph
mode (``prepare_qat_fx``); the calibration tiles are run through the prepared module with observers on and no
training (milestones [0, 0, never, 0]: observe and simulate from the first step, never freeze by step count);
``finalize`` turns it into a reference quantized module (quantize / dequantize around each quantized layer), which is
converted to an ML program for iOS 17 (int8 activation quantize ops need it). Weights: int8 symmetric per channel;
activations: 8-bit symmetric (zero-point 0 for non-negative tensors, coremltools' scheme).

Tracing. FX's symbolic tracer cannot run Python that reads tensor shapes. DRAMNet's own input checks skip themselves
while a graph is captured (``models.capture.capturing_graph``), but shape arithmetic is part of the model (the
attention's ``b, c, h, w = x.shape``, static resize sizes, the folded DFT modules' size check). So the module is
traced here with its example inputs (``trace_static``): every op also runs on the example tensors, shape queries
return the real sizes, control flow takes the branch the example takes, and the result is a flat ``GraphModule``
with the standard leaf modules (Conv2d, Linear, LayerNorm, ...) kept, which is what LinearQuantizer's patterns
match. Its shapes are static — as CoreML's inputs are anyway — so calibration batches must have the example's shape.

Kept in float, like the ONNX path (docs/architecture.md, deployment pipeline step 3): the DFT path (each Fourier expert is one leaf that
LinearQuantizer is told not to trace: its DFT matmuls and spectral convolutions), softmax attention (no quantizer
on matmul and softmax ops; the qkv / projection layers around them are quantized), the blur-map head and the last
convolution (``sensitive_modules``).

Measured here (coremltools 9.0, torch 2.13): the quantized reference module does not survive ``torch.export``
("quantized nyi in meta tensors"), so conversion goes through ``torch.jit.trace``, which converts a W8A8 module to
``quantize`` / ``dequantize`` / ``constexpr_affine_dequantize`` ops; dynamic shape arithmetic in a traced graph broke
coremltools' ``int`` op under numpy 2.4, which the static trace avoids. Prediction needs macOS: on Linux the W8A8
arithmetic is measured on the finalized torch module (``export_coreml_w8a8`` reports it as a simulation).
"""

from __future__ import annotations

import operator
import os
import time
import traceback
from pathlib import Path
from typing import Callable

import numpy as np
from ..errors import MissingExtraError, UserError
from ..export.names import BLUR, DECODER_FULL, DECODER_LIGHT, ENCODER, GATE, MODEL
from ..runtime.batching import cut_batches, run_batched

SENSITIVE_KINDS = ("dft", "blur_map_head", "last_conv")


# ----------------------------------------------------------------------------------------------- tracing


def _tracer_classes():
    import torch
    import torch.fx as fx
    from torch.fx.node import map_aggregate

    class StaticProxy(fx.Proxy):
        """A proxy that knows its example value's shape: ``x.shape``, ``x.size()``, ``x.dim()`` and ``len(x)`` are
        plain Python values (the graph is specialised to the example shapes)."""

        def _value(self):
            return self.tracer.values[self.node]

        @property
        def shape(self):
            return self._value().shape

        def size(self, dim=None):
            return self._value().size() if dim is None else self._value().size(dim)

        def dim(self):
            return self._value().dim()

        def __len__(self):
            return len(self._value())

    class StaticTracer(fx.Tracer):
        """FX tracer that runs every recorded op on the example inputs as it goes (see the module docstring)."""

        def __init__(self, example_inputs, leaves=()):
            super().__init__()
            self.examples = list(example_inputs)
            self.leaves = set(leaves)
            self.values: dict = {}
            self._eager = False  # True while an op runs on real tensors: no recording then

        def proxy(self, node):
            return StaticProxy(node, self)

        def is_leaf_module(self, m, qualified_name):
            return qualified_name in self.leaves or super().is_leaf_module(m, qualified_name)

        def getattr(self, attr, attr_val, parameter_proxy_cache):
            return attr_val if self._eager else super().getattr(attr, attr_val, parameter_proxy_cache)

        def call_module(self, m, forward, args, kwargs):
            return forward(*args, **kwargs) if self._eager else super().call_module(m, forward, args, kwargs)

        def _real(self, a):
            return map_aggregate(a, lambda v: self.values[v.node] if isinstance(v, fx.Proxy) else v)

        def _run(self, kind, target, args, kwargs):
            if kind == "placeholder":
                return self.examples.pop(0)
            if kind == "get_attr":
                value = self.root
                for part in target.split("."):
                    value = getattr(value, part)
                return value
            args, kwargs = self._real(args), self._real(kwargs)
            if kind == "call_function":
                return target(*args, **kwargs)
            if kind == "call_method":
                return getattr(args[0], target)(*args[1:], **kwargs)
            return self.root.get_submodule(target)(*args, **kwargs)

        def create_proxy(self, kind, target, args, kwargs, name=None, type_expr=None, proxy_factory_fn=None):
            proxy = super().create_proxy(kind, target, args, kwargs, name, type_expr, proxy_factory_fn)
            if kind != "output":
                self._eager = True
                try:
                    with torch.no_grad():
                        self.values[proxy.node] = self._run(kind, target, args, kwargs)
                finally:
                    self._eager = False
            return proxy

        def to_bool(self, obj):
            return bool(self.values[obj.node])

        def iter(self, obj):
            return iter([obj[i] for i in range(len(self.values[obj.node]))])

    return StaticTracer


def trace_static(module, example_inputs, leaves=()):
    """``module`` as a flat ``torch.fx.GraphModule`` specialised to the shapes of ``example_inputs`` (a tuple of
    tensors, one per positional input). Ops whose results only fed Python control flow or shape arithmetic are
    dropped; everything else is kept as recorded.

    leaves: qualified names of submodules kept as single calls (a quantizer can then be told to leave them alone);
    each is itself replaced by its static trace at the inputs it was called with, so a later ``torch.jit.trace``
    records no shape arithmetic anywhere.
    """
    import torch.fx as fx

    tracer = _tracer_classes()(tuple(example_inputs), leaves)
    graph = tracer.trace(module)
    traced = fx.GraphModule(tracer.root, graph, type(module).__name__)
    calls: dict[str, list] = {}
    for node in graph.nodes:
        if node.op == "call_module" and node.target in tracer.leaves:
            calls.setdefault(node.target, []).append(node)
    for name, nodes in calls.items():
        if len(nodes) == 1 and not nodes[0].kwargs:  # a leaf called once: its example inputs are known
            args = fx.node.map_arg(nodes[0].args, lambda n: tracer.values[n])
            traced.set_submodule(name, trace_static(traced.get_submodule(name), args))
    traced.graph.eliminate_dead_code()
    traced.recompile()
    return traced


def sensitive_modules(module) -> dict[str, str]:
    """{qualified module name: kind} of what W8A8 keeps in float (``SENSITIVE_KINDS``), found by type: every
    ``FourierExpert`` (dft), the first BME block's ``head`` (blur_map_head: the map the early exit reads), and the
    output ``head`` convolution of the DRAMNet (last_conv)."""
    from ..models.blur_map import BlurMapCascade
    from ..models.dram_block import FourierExpert

    out: dict[str, str] = {}
    for name, m in module.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(m, FourierExpert):
            out[name] = "dft"
        elif isinstance(m, BlurMapCascade):
            out[f"{prefix}blocks.0.head"] = "blur_map_head"
        elif isinstance(getattr(m, "blur_map", None), BlurMapCascade) and hasattr(m, "head"):
            out[f"{prefix}head"] = "last_conv"
    return out


# ----------------------------------------------------------------------------------------------- quantization


def _blocking_site(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "dramnet_edge" in f.filename]
    if not frames:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    f = frames[-1]
    return f"{Path(f.filename).name}:{f.lineno} `{(f.line or '').strip()}`"


def _check_shapes(example_inputs, calibration) -> None:
    shapes = [tuple(x.shape) for x in example_inputs]
    for i, inputs in enumerate(calibration):
        got = [tuple(x.shape) for x in inputs]
        if got != shapes:
            raise UserError(f"calibration batch {i} has input shapes {got}; the W8A8 graph is traced for {shapes} "
                             "(static shapes: pad the last batch)")


#: Activation range observer. coremltools' default is ``moving_average_min_max`` (torch's MovingAverageMinMaxObserver,
#: averaging_constant 0.01: the first batch sets the range and later ones move it by 1 %, so with one-tile batches
#: the first tile dominates); ``min_max`` takes the range over every calibration tile, as the ONNX path's MinMax.
ACTIVATION_OBSERVER = "min_max"


def prepare_w8a8(module, example_inputs, calibration: list[tuple], *, keep_float: bool = True,
                 activation_observer: str = ACTIVATION_OBSERVER):
    """(finalized reference-quantized ``GraphModule``, {module name: kind} kept float) for ``module``.

    example_inputs: tuple of tensors; calibration: tuples of positional inputs with the same shapes, run through the
    observers. keep_float: leave ``sensitive_modules`` and matmul / softmax ops in float (the default; False
    quantizes everything LinearQuantizer can, for comparisons). activation_observer: coremltools' ObserverType name
    (``ACTIVATION_OBSERVER`` by default). ValueError when the module cannot be traced.
    """
    try:
        from coremltools.optimize.torch.quantization import (LinearQuantizer, LinearQuantizerConfig,
                                                             ModuleLinearQuantizerConfig)
    except ImportError:
        raise MissingExtraError('CoreML W8A8 needs coremltools: pip install "dramnet-edge[coreml]"') from None
    import torch

    example_inputs = tuple(example_inputs)
    _check_shapes(example_inputs, calibration)
    sensitive = sensitive_modules(module) if keep_float else {}
    leaves = [n for n, k in sensitive.items() if k == "dft"]
    try:
        traced = trace_static(module.eval(), example_inputs, leaves)
    except Exception as e:  # noqa: BLE001 - torch.fx raises TraceError and friends
        raise UserError(f"CoreML W8A8: tracing for LinearQuantizer stopped at {_blocking_site(e)}: "
                         f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    present = {n for n, _ in traced.named_modules()}
    kept = {n: k for n, k in sensitive.items() if n in present}
    module_cfg = ModuleLinearQuantizerConfig(
        quantization_scheme="symmetric", weight_dtype=torch.qint8, weight_per_channel=True,
        activation_dtype=torch.quint8, activation_observer=activation_observer, milestones=[0, 0, 10 ** 9, 0])
    config = LinearQuantizerConfig(
        global_config=module_cfg,
        # every module under a kept one is named: the QAT module swap applies per-type configs to the children of a
        # non-traced module otherwise (the Fourier experts' spectral convolutions)
        module_name_configs={n: None for n, _ in traced.named_modules() if any(
            n == k or n.startswith(k + ".") for k in kept)},
        # softmax attention: logits, softmax and weighted sum stay float (the qkv / projection layers are quantized)
        module_type_configs=({operator.matmul: None, torch.matmul: None, torch.softmax: None}
                             if keep_float else {}),
        non_traceable_module_names=sorted(n for n, k in kept.items() if k == "dft"),
    )
    quantizer = LinearQuantizer(traced, config)
    prepared = quantizer.prepare(example_inputs=example_inputs, inplace=False)
    quantizer.step()  # step 0: observers and fake quantization on
    with torch.no_grad():
        for inputs in calibration:
            prepared(*inputs)
    return quantizer.finalize(inplace=False), kept


def convert_coreml_w8a8(module, example_inputs, calibration: list[tuple], path: str | os.PathLike, *,
                        input_names, output_names, keep_float: bool = True) -> tuple[dict, object]:
    """Calibrate, finalize and convert ``module`` to a W8A8 .mlpackage at ``path`` (iOS 17 ML program).

    Returns (info, finalized torch module): info = {"coremltools", "minimum_deployment_target": "iOS17",
    "activation_quantize_ops", "weight_dequantize_ops", "kept_float": {module: kind}}. The finalized module runs the
    same W8A8 arithmetic in torch (reference quantized ops), which is what can be measured off macOS.
    """
    import coremltools as ct
    import torch

    from ..export.torch2coreml import _save_package

    finalized, kept = prepare_w8a8(module, example_inputs, calibration, keep_float=keep_float)
    with torch.no_grad():
        traced = torch.jit.trace(finalized.eval(), tuple(example_inputs), check_trace=False)
    # as in torch2coreml: coremltools 9.0's fuse_elementwise_to_batchnorm mis-types the wavelet expert's blur gain
    pipeline = ct.PassPipeline.DEFAULT
    pipeline.remove_passes(["common::fuse_elementwise_to_batchnorm"])
    mlmodel = ct.convert(
        traced, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
        inputs=[ct.TensorType(name=n, shape=tuple(x.shape)) for n, x in zip(input_names, example_inputs)],
        outputs=[ct.TensorType(name=n) for n in output_names], pass_pipeline=pipeline,
    )
    ops = _op_types(mlmodel)
    mlmodel.short_description = "DRAMNet deblurring, W8A8 (dramnet-edge)"
    _save_package(mlmodel, Path(path))
    info = {"coremltools": ct.__version__, "minimum_deployment_target": "iOS17",
            "activation_quantize_ops": int(ops.get("quantize", 0)),
            "weight_dequantize_ops": int(ops.get("constexpr_affine_dequantize", 0)
                                         + ops.get("constexpr_blockwise_shift_scale", 0)),
            "kept_float": kept}
    return info, finalized


def _op_types(mlmodel) -> dict[str, int]:
    counts: dict[str, int] = {}
    spec = mlmodel.get_spec()
    for fn in spec.mlProgram.functions.values():
        for block in fn.block_specializations.values():
            for op in block.operations:
                counts[op.type] = counts.get(op.type, 0) + 1
    return counts


def calibration_inputs(tiles: np.ndarray, batch: int = 1) -> list[tuple]:
    """(N, 3, T, T) tiles -> list of 1-tuples of float tensors, ``batch`` tiles each (the last padded by
    repeating its last tile, so every batch has the traced shape)."""
    return [tuple(t) for t in _batched([tiles], batch)]


def _batched(arrays: list[np.ndarray], batch: int) -> list[list]:
    """Cut equally long (N, ...) arrays into lists of ``batch``-item float tensors, padding the last batch."""
    import torch

    return [[torch.from_numpy(p) for p in part.values()]
            for part, _ in cut_batches(dict(enumerate(arrays)), batch, static=True)]


def _run_batched(module, arrays: list[np.ndarray], batch: int) -> list[np.ndarray]:
    """Outputs of ``module`` over (N, ...) inputs in static batches (padding dropped), as numpy arrays."""
    import torch

    def run(part: dict) -> list[np.ndarray]:
        res = module(*(torch.from_numpy(p) for p in part.values()))
        return [r.float().numpy() for r in (res if isinstance(res, (tuple, list)) else (res,))]

    with torch.no_grad():
        return run_batched(run, dict(enumerate(arrays)), batch, static=True)


# ----------------------------------------------------------------------------------------------- export --int8


def export_coreml_w8a8(folded, graphs: dict, paths: dict[str, Path], *, batch: int = 1, tau: float | None = None,
                       calib_data=None, recipe=None, budget_db: float = 0.1,
                       report_path: str | os.PathLike | None = None,
                       log: Callable[[str], None] | None = None) -> dict:
    """The W8A8 packages of one ``export --target coreml --precision int8``; returns the sidecar fields.

    folded / graphs: the folded model and its split graphs (``export.fold``); paths: .mlpackage path per graph.
    Calibration tiles: the blur-stratified set of ``tiles.build_calibration_set`` (``calib_data`` or the embedded
    synthetic set, ``recipe``), scored by the model's own blur map; the decoders are calibrated on the FP32
    encoder's outputs. Quality: the finalized torch modules (the same W8A8 arithmetic; CoreML's own kernels need
    macOS) on the held-out tiles against the FP32 graphs — the whole model and the split pipeline the runtime uses —
    reported with ``budget_db`` (no fallback here: ``met`` says whether the drop is within it).
    """
    import torch

    from .fallback import drop_stats
    from .onnx_graphs import _max_blur, check_budget
    from .recipe import CalibrationRecipe
    from .tiles import build_calibration_set

    log = log or (lambda msg: None)
    budget_db = check_budget(budget_db)
    recipe = recipe or CalibrationRecipe()
    t_start = time.perf_counter()
    encoder = graphs[ENCODER]
    blur = list(encoder.output_names).index(BLUR)

    def encode(x: np.ndarray) -> list[np.ndarray]:
        return _run_batched(encoder, [x], 8)

    calibration = build_calibration_set(int(folded.tile), lambda t: _max_blur(encode(t)[blur]), recipe,
                                        calib_data=calib_data, tau=tau, log=log)
    s = calibration.summary()
    log(f"calibration set: {s['calibration_tiles']} tiles {s['calibration_strata']}, held out {s['holdout_tiles']} "
        f"{s['holdout_strata']}")
    calib_x, hold_x = calibration.calib.blurred, calibration.holdout.blurred
    enc_calib, enc_hold = encode(calib_x), encode(hold_x)

    def feeds(graph: str, x: np.ndarray, enc: list[np.ndarray]) -> list[np.ndarray]:
        return [x] if graph in (MODEL, ENCODER, GATE) else [x, *enc]

    info, finalized = {}, {}
    for name, graph in graphs.items():
        t0 = time.perf_counter()
        batches = [tuple(b) for b in _batched(feeds(name, calib_x, enc_calib), batch)]
        info[name], finalized[name] = convert_coreml_w8a8(
            graph, batches[0], batches, paths[name], input_names=graph.input_names, output_names=graph.output_names)
        log(f"  {name}: {paths[name].name} W8A8, {info[name]['activation_quantize_ops']} activation quantize ops "
            f"({time.perf_counter() - t0:.1f} s)")

    # the W8A8 arithmetic in torch against the FP32 graphs, on the held-out tiles
    sharp, names = calibration.holdout.sharp, calibration.holdout.names
    fp32_model = _run_batched(graphs[MODEL], [hold_x], batch)[0]
    final = {"model": drop_stats(_run_batched(finalized[MODEL], [hold_x], batch)[0], fp32_model, sharp)
             .to_dict(names)}
    enc_q = _run_batched(finalized[ENCODER], [hold_x], batch)
    for path, graph in (("split_full", DECODER_FULL), ("split_light", DECODER_LIGHT)):
        ref = _run_batched(graphs[graph], feeds(graph, hold_x, enc_hold), batch)[0]
        out = _run_batched(finalized[graph], feeds(graph, hold_x, enc_q), batch)[0]
        final[path] = drop_stats(out, ref, sharp).to_dict(names)
    blur32, blur_q = _max_blur(enc_hold[blur]), _max_blur(enc_q[blur])
    final["blur_score_max_abs_diff"] = round(float(np.abs(blur32 - blur_q).max()), 5)
    if tau is not None:
        final["exit_agreement"] = round(float(((blur32 < tau) == (blur_q < tau)).mean()), 4)
    met = bool(final["model"]["drop_db_mean"] <= budget_db)
    log(f"W8A8 in torch (simulated; CoreML prediction needs macOS), held out: drop "
        f"{final['model']['drop_db_mean']:+.3f} dB mean, {final['model']['drop_db_worst']:+.3f} dB worst; "
        f"budget {budget_db} dB {'met' if met else 'NOT met (no fallback for CoreML)'}")
    kept = info[MODEL]["kept_float"]
    report = {
        "settings": {"library": "coremltools", "method": "LinearQuantizer (FX) observers, calibration only",
                     "activation_observer": ACTIVATION_OBSERVER,
                     "weights": "int8 symmetric per-channel", "activations": "8-bit, coremltools symmetric scheme",
                     "kept_float": kept, "float_ops": ["matmul", "softmax"]},
        "budget_db": budget_db,
        "calibration": {**s, "recipe": recipe.to_dict()},
        "final": final,
        "measured_on": "finalized torch modules (reference quantized ops); CoreML prediction needs macOS",
        "graphs": info,
        "timings": {"total_s": round(time.perf_counter() - t_start, 1)},
        "model": getattr(folded, "create_args", {}).get("name", type(folded).__name__),
        "tile": int(folded.tile), "tau": tau, "source": "export --target coreml --precision int8",
        "artifact": {g: Path(p).name for g, p in paths.items()},
    }
    extra = {
        "quantization": {
            "library": "coremltools", "method": "LinearQuantizer",
            "scheme": "W8A8: int8 symmetric per-channel weights, 8-bit activations",
            "budget_db": budget_db, "met": met, "reverted_groups": [],
            "kept_float": sorted(set(kept.values())),
            "drop_db_mean": final["model"]["drop_db_mean"], "drop_db_worst": final["model"]["drop_db_worst"],
            "measured_on": "torch simulation (CoreML prediction needs macOS)",
            "calibration_strata": s["calibration_strata"],
        },
        "coreml_w8a8": {g: {k: v for k, v in i.items() if k != "kept_float"} for g, i in info.items()},
    }
    if report_path is not None:
        json_path = _write_json_report(report_path, report)
        extra["report"] = json_path.name
    return extra


def _write_json_report(output: str | os.PathLike, report: dict) -> Path:
    import json

    from ..io_utils import atomic_write
    from .report import _json_default, report_paths

    json_path, _ = report_paths(output)
    text = json.dumps(report, indent=2, default=_json_default) + "\n"
    atomic_write(json_path, lambda tmp: Path(tmp).write_text(text))
    return json_path
