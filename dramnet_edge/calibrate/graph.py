"""What to quantize in an exported DRAMNet ONNX graph, found from the graph itself.

The dynamo exporter and onnxsim give nodes names like ``node_conv2d_17`` that change with every model change, so
nothing here keys on node names. Two things are read instead:

* **layer groups** (the unit the accuracy-bounded fallback reverts): the module path of a node's weight initializer
  (``net.decoder.columns.0.levels.3.blocks.0.fourier.spectral.0.weight`` -> group
  ``decoder.columns.0.levels.3.blocks.0.fourier``). Initializers the exporter renamed (the ViT's transposed Linear
  weights become ``val_12``) are resolved through ``weight_aliases`` (value hashes of the torch parameters) when the
  torch model is at hand, else through the nearest earlier node with an unambiguous module path. Group names are
  the same in every split graph, so one reverted set applies to all four consistently.
* **sensitive nodes**, kept FP32 by default (docs/architecture.md, deployment pipeline step 3), by structure with a name check as backup:
  the DFT path (a MatMul with a constant fixed-transform operand: a full row or column of equal values, which no
  learned weight has, or an initializer named ``dft``; and the spectral convolutions between a forward and an
  inverse DFT — measured: quantizing them alone cost 0.19 + 0.09 dB on one block, the spectrum's DC term sets the
  per-tensor scale), softmax attention (each Softmax, the MatMul that produces its
  logits, the MatMul that consumes its weights), the blur-map head (a 1-output-channel Conv fed by an AveragePool
  and feeding a Sigmoid, or an initializer under ``blur_map`` named ``head``), and the last convolution (the Conv(s)
  that reach the ``image`` output through Add / Where / Clip only).

Only Conv, MatMul and Gemm inputs are quantized (``QUANTIZED_OP_TYPES``): that is where INT8 kernels pay on
TensorRT, OpenVINO and ONNX Runtime, and element-wise ops stay in float between them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import numpy as np

from ..export.qdq import QUANTIZED_OP_TYPES, constant_arrays  # noqa: F401  (re-exported: their old home)
from ..export.names import IMAGE

SENSITIVE_KINDS = ("dft", "softmax_attention", "blur_map_head", "last_conv")

# Ops a value passes through unchanged in kind (scale, reshape, select) when walking from an attention Softmax
# to its MatMuls, or from the ``image`` output back to the head convolution.
_PASS_THROUGH = {"Mul", "Div", "Add", "Sub", "Where", "Cast", "Transpose", "Reshape", "Identity", "Clip",
                 "Squeeze", "Unsqueeze"}
_OUTPUT_PATH = {"Add", "Where", "Clip", "Identity", "Cast"}
# Ops allowed on the path from a forward DFT to an inverse one (the spectral part of a Fourier expert); a
# residual Add, a LayerNormalization or an attention op on the way means the path left the expert.
_SPECTRAL_OPS = {"Conv", "Relu", "Concat", "Slice", "Split", "Reshape", "Transpose", "Identity",
                 "Gather", "Squeeze", "Unsqueeze"}

# Module path -> group: first match wins. A decoder block is split by expert (stm, fourier, wavelet, mixer,
# attention); an encoder block, a BME block, a bridge projection and the stem are one group each.
_GROUP_RULES = (
    re.compile(r"^(decoder\.columns\.\d+\.levels\.\d+\.blocks\.\d+\.[A-Za-z_]+)"),
    re.compile(r"^(decoder\.columns\.\d+\.levels\.\d+\.[A-Za-z_]+)"),
    re.compile(r"^(encoder\.blocks\.\d+)"),
    re.compile(r"^(blur_map\.(?:blocks|downs)\.\d+)"),
    re.compile(r"^(encoder\.[A-Za-z_]+)"),
)


def module_group(path: str) -> str:
    """The fallback group of a module path (``net.`` prefix and parameter name already removed)."""
    for rule in _GROUP_RULES:
        m = rule.match(path)
        if m:
            return m.group(1)
    return path.split(".")[0]


def coarser_group(group: str) -> str:
    """One level up, for when there are more groups than the evaluation budget: a decoder expert -> its block,
    a decoder block or up/down -> its level, an encoder block -> the ViT, a BME block -> the BME."""
    parts = group.split(".")
    if parts[0] == "decoder" and len(parts) > 5:
        if len(parts) > 7 and parts[5] == "blocks":
            return ".".join(parts[:7])
        return ".".join(parts[:5])
    if parts[0] in ("encoder", "blur_map") and len(parts) > 1:
        return parts[0]
    return group


def _module_path(param_name: str) -> str:
    name = param_name[4:] if param_name.startswith("net.") else param_name
    return name.rsplit(".", 1)[0] if "." in name else name


def _digest(array: np.ndarray) -> str:
    a = np.ascontiguousarray(array, dtype=np.float32)
    return hashlib.sha1(a.tobytes() + str(a.shape).encode()).hexdigest()


def weight_aliases(module) -> dict[str, str]:
    """{value digest: parameter name} for every parameter and buffer of a torch module (2-D ones also transposed),
    skipping values that occur more than once (zeros and ones at init). Resolves exporter-renamed initializers."""
    counts: dict[str, list[str]] = {}
    for name, tensor in list(module.state_dict().items()):
        arr = tensor.detach().float().cpu().numpy()
        variants = [arr] + ([arr.T] if arr.ndim == 2 else [])
        for v in variants:
            counts.setdefault(_digest(v), []).append(name)
    return {d: names[0] for d, names in counts.items() if len(set(names)) == 1}


@dataclass
class GraphLayers:
    """The quantization map of one ONNX graph.

    quantizable: names of the Conv/MatMul/Gemm nodes in graph order. group_of: node name -> layer group.
    label_of: node name -> readable layer label (module path, or group/node for unnamed weights).
    sensitive: node name -> kind (one of ``SENSITIVE_KINDS``), a subset of quantizable.
    """

    quantizable: list[str]
    group_of: dict[str, str]
    label_of: dict[str, str]
    sensitive: dict[str, str] = field(default_factory=dict)

    def group(self, node: str, level: int = 0) -> str:
        """The node's group, coarsened ``level`` times (``coarser_group``)."""
        g = self.group_of[node]
        for _ in range(level):
            g = coarser_group(g)
        return g

    def groups(self, level: int = 0, include_sensitive: bool = False) -> list[str]:
        """Layer groups at a coarsening level, in graph order (of their first node)."""
        seen: dict[str, None] = {}
        for n in self.quantizable:
            if include_sensitive or n not in self.sensitive:
                seen.setdefault(self.group(n, level), None)
        return list(seen)

    def nodes_in(self, groups, level: int = 0) -> list[str]:
        """Non-sensitive quantizable nodes whose group (at ``level``) is one of ``groups``."""
        wanted = set(groups)
        return [n for n in self.quantizable if n not in self.sensitive and self.group(n, level) in wanted]

    def sensitive_nodes(self, kinds=SENSITIVE_KINDS) -> list[str]:
        return [n for n, k in self.sensitive.items() if k in kinds]


def _is_fixed_transform(array: np.ndarray) -> bool:
    """A DFT/DCT-like constant: 2-D, at least 4x4, with a whole row or column of one equal non-zero value
    (the DC term). Learned weights never have one; the fold step's DFT matrices always do."""
    if array.ndim != 2 or min(array.shape) < 4:
        return False
    a = np.asarray(array, dtype=np.float64)
    for m in (a, a.T):
        first = m[:, :1]
        rows_equal = np.all(np.abs(m - first) <= 1e-6 * np.maximum(1.0, np.abs(first)), axis=1) & (np.abs(first[:, 0]) > 1e-8)
        if rows_equal.any():
            return True
    return False


class _GraphIndex:
    """Look-ups over one ONNX graph the finders share: constants, producers, consumers, parameter names."""

    def __init__(self, model, aliases: dict[str, str] | None):
        graph = model.graph
        self.graph = graph
        self.consts = constant_arrays(model)
        self.init_names = {i.name for i in graph.initializer}
        self.producer = {o: n for n in graph.node for o in n.output}
        self.consumers: dict[str, list] = {}
        for n in graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.by_name = {n.name: n for n in graph.node}
        self.aliases = aliases or {}
        self._resolved: dict[str, str] = {}
        self.own = self._own_paths()

    def param_name(self, tensor: str) -> str | None:
        """A dotted parameter name for an initializer, resolved through aliases; None when unknown."""
        if tensor in self._resolved:
            return self._resolved[tensor] or None
        name = None
        if tensor in self.consts and self.aliases:
            name = self.aliases.get(_digest(self.consts[tensor]))
        if name is None and tensor in self.init_names and "." in tensor:
            name = tensor
        self._resolved[tensor] = name or ""
        return name

    def _own_paths(self) -> dict[str, str]:
        """A node's own module path: from its weight (Conv/Gemm input 1, a MatMul's constant operand) or, for
        LayerNormalization, its scale; only from initializers no other node reads (the exporter shares identical
        constants such as Haar and DFT matrices between blocks, so their names point at the first block only)."""
        own: dict[str, str] = {}
        for node in self.graph.node:
            if node.op_type in ("Conv", "Gemm"):
                candidates = node.input[1:2]
            elif node.op_type in ("MatMul", "LayerNormalization"):
                candidates = node.input[:2] if node.op_type == "MatMul" else node.input[1:2]
            else:
                continue
            for tensor in candidates:
                if tensor in self.consts and len(self.consumers.get(tensor, [])) == 1:
                    pn = self.param_name(tensor)
                    if pn is not None:
                        own[node.name] = _module_path(pn)
                        break
        return own

    def _search(self, start, upstream: bool, hops: int = 12) -> tuple[int, str | None]:
        """(distance, module path) of the nearest node with a path, walking only up (producers) or only down."""
        seen, frontier = {start.name}, [start]
        for distance in range(1, hops + 1):
            nxt = []
            for n in frontier:
                if upstream:
                    linked = [self.producer.get(t) for t in n.input if t not in self.consts]
                else:
                    linked = [c for t in n.output for c in self.consumers.get(t, [])]
                for m in linked:
                    if m is not None and m.name not in seen:
                        seen.add(m.name)
                        nxt.append(m)
            for m in nxt:
                if m.name in self.own:
                    return distance, self.own[m.name]
            frontier = nxt
        return hops + 1, None

    def nearest_path(self, node) -> str:
        """The module path of the nearest node along the data flow, without sideways steps (a residual Add's
        other input belongs to an earlier block); a tie goes upstream."""
        d_up, up = self._search(node, True)
        d_down, down = self._search(node, False)
        if up is None and down is None:
            return "graph"
        return up if (up is not None and d_up <= d_down) or down is None else down


def _layer_groups(g: _GraphIndex) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """(quantizable nodes in graph order, node -> group, node -> label)."""
    quantizable, group_of, label_of = [], {}, {}
    for node in g.graph.node:
        if node.op_type in QUANTIZED_OP_TYPES:
            path = g.own.get(node.name)
            quantizable.append(node.name)
            if path is None:
                near = g.nearest_path(node)
                group_of[node.name] = module_group(near)
                label_of[node.name] = f"{near}/{node.name}"
            else:
                group_of[node.name] = module_group(path)
                label_of[node.name] = path
    return quantizable, group_of, label_of


# The sensitive-node finders, one per pattern: finder(graph index, what the earlier finders found) -> {node: kind}.


def _find_dft_matmuls(g: _GraphIndex, found: dict[str, str]) -> dict[str, str]:
    """MatMuls with a constant fixed-transform operand (or an initializer named ``dft``)."""
    return {node.name: "dft" for node in g.graph.node if node.op_type == "MatMul" and any(
        t in g.consts and (_is_fixed_transform(g.consts[t]) or "dft" in t.lower()) for t in node.input)}


def _find_spectral_layers(g: _GraphIndex, found: dict[str, str], depth: int = 10) -> dict[str, str]:
    """The spectral layers between a forward and an inverse DFT (the Fourier expert's 1x1 convs on [re, im]): a
    spectrum's DC term dwarfs the rest, so one per-tensor INT8 scale wipes out the high frequencies."""
    dft_nodes = {n for n, k in found.items() if k == "dft"}

    def spectral_paths(node) -> set[str]:
        paths: set[str] = set()

        def walk(n, path, d):
            for t in n.output:
                for c in g.consumers.get(t, []):
                    if c.name in dft_nodes:
                        paths.update(path)
                    elif d < depth and c.op_type in _SPECTRAL_OPS:
                        walk(c, path + [c.name], d + 1)

        walk(node, [], 0)
        return paths

    out: dict[str, str] = {}
    for name in list(dft_nodes):
        for n in spectral_paths(g.by_name[name]):
            if g.by_name[n].op_type in QUANTIZED_OP_TYPES:
                out.setdefault(n, "dft")
    return out


def _find_softmax_attention(g: _GraphIndex, found: dict[str, str]) -> dict[str, str]:
    """Softmax attention: the logits MatMul upstream of each Softmax, the weights MatMul(s) downstream."""

    def walk_up(tensor: str, hops: int = 4):
        for _ in range(hops):
            p = g.producer.get(tensor)
            if p is None:
                return None
            if p.op_type == "MatMul":
                return p
            if p.op_type not in _PASS_THROUGH:
                return None
            tensor = next((i for i in p.input if i not in g.consts), p.input[0])
        return None

    def walk_down(tensor: str, hops: int = 3):
        matmuls, frontier = [], [tensor]
        for _ in range(hops):
            nxt = []
            for t in frontier:
                for c in g.consumers.get(t, []):
                    if c.op_type == "MatMul":
                        matmuls.append(c)
                    elif c.op_type in _PASS_THROUGH:
                        nxt.extend(c.output)
            frontier = nxt
        return matmuls

    out: dict[str, str] = {}
    for node in g.graph.node:
        if node.op_type == "Softmax":
            up = walk_up(node.input[0])
            if up is not None:
                out.setdefault(up.name, "softmax_attention")
            for c in walk_down(node.output[0]):
                out.setdefault(c.name, "softmax_attention")
    return out


def _find_blur_map_head(g: _GraphIndex, found: dict[str, str]) -> dict[str, str]:
    """The blur-map head: a 1-output-channel Conv fed by an AveragePool and feeding a Sigmoid, or a Conv whose
    weight is under ``blur_map`` named ``head``."""
    out: dict[str, str] = {}
    for node in g.graph.node:
        if node.op_type != "Conv":
            continue
        w = g.consts.get(node.input[1]) if len(node.input) > 1 else None
        pn = g.param_name(node.input[1]) if len(node.input) > 1 else None
        by_name = pn is not None and "blur_map" in pn and ".head." in f".{_module_path(pn)}."
        p = g.producer.get(node.input[0])
        by_structure = (
            w is not None and w.shape[0] == 1 and p is not None and p.op_type == "AveragePool"
            and any(c.op_type == "Sigmoid" for c in g.consumers.get(node.output[0], []))
        )
        if by_name or by_structure:
            out[node.name] = "blur_map_head"
    return out


def _find_last_conv(g: _GraphIndex, found: dict[str, str]) -> dict[str, str]:
    """The last convolution(s): those that reach the image output through Add / Where / Clip only."""
    out: dict[str, str] = {}
    for image in [o.name for o in g.graph.output if o.name == IMAGE]:
        frontier, seen = [image], set()
        while frontier:
            t = frontier.pop()
            if t in seen:
                continue
            seen.add(t)
            p = g.producer.get(t)
            if p is None:
                continue
            if p.op_type == "Conv":
                out[p.name] = "last_conv"
            elif p.op_type in _OUTPUT_PATH:
                frontier.extend(i for i in p.input if i not in g.consts)
    return out


# (finder, whether its kind replaces one an earlier finder gave the same node), in the order they run.
_FINDERS = (
    (_find_dft_matmuls, True),
    (_find_spectral_layers, False),
    (_find_softmax_attention, False),
    (_find_blur_map_head, True),
    (_find_last_conv, True),
)


def analyse_graph(model, aliases: dict[str, str] | None = None) -> GraphLayers:
    """Layer groups and sensitive nodes of an ONNX ModelProto (see module docstring)."""
    g = _GraphIndex(model, aliases)
    quantizable, group_of, label_of = _layer_groups(g)
    sensitive: dict[str, str] = {}
    for finder, replaces in _FINDERS:
        for node, kind in finder(g, sensitive).items():
            if replaces:
                sensitive[node] = kind
            else:
                sensitive.setdefault(node, kind)
    qset = set(quantizable)
    return GraphLayers(quantizable, group_of, label_of, {n: k for n, k in sensitive.items() if n in qset})
