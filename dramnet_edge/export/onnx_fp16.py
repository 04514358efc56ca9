"""FP32 ONNX -> typed FP16 ONNX with FP32 islands where FP16 is unsafe.

Every float tensor becomes FP16 except the inputs and outputs of the ops in ``fp32_ops`` (LayerNormalization,
Softmax, the reductions and power/sqrt that make variances and norms, and the comparisons that take the early-exit
decision), which run in FP32 between Casts.
The graph keeps FP32 inputs and outputs, so a runtime feeds and reads the same arrays as for the FP32 model.
The result is what a strongly typed TensorRT network (>= 10.12) builds as written, and what ONNX Runtime runs
(its CPU provider inserts FP32 kernels where it has no FP16 one, keeping the FP16 rounding of every tensor).

The DFT matmuls of the fold (initialisers named ``*.dft_row`` / ``*.dft_col``) stay FP16 by default: they are
ortho-scaled (entries <= 1/sqrt(H*W) * 1) so spectra stay at the image's scale; ``keep_dft_fp32=True`` makes
them islands too, for comparison.
"""

from __future__ import annotations

import os

import numpy as np

FP32_OPS = frozenset({
    "LayerNormalization", "Softmax", "LogSoftmax", "ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL2",
    "ReduceLogSumExp", "Pow", "Sqrt", "Reciprocal", "InstanceNormalization", "GroupNormalization",
    "BatchNormalization", "DFT",
    # The early-exit test max(blur) < tau: compare against the exact FP32 tau, not its FP16 rounding.
    "Less", "LessOrEqual", "Greater", "GreaterOrEqual",
})

# Inputs that must keep their own type whatever the node's precision (index lists per op type).
_TYPE_FIXED_INPUTS = {"Resize": (1, 2), "Upsample": (1,)}


def convert_to_fp16(model, *, fp32_ops=FP32_OPS, keep_dft_fp32: bool = False):
    """Return a typed FP16 copy of an FP32 ``onnx.ModelProto`` (inputs/outputs stay FP32). See module docstring."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    graph = model.graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                raise ValueError(f"convert_to_fp16 does not handle subgraphs ({node.op_type} node {node.name!r})")

    FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16
    elem = {}  # tensor name -> element type as exported
    for vi in list(graph.value_info) + list(graph.input) + list(graph.output):
        elem[vi.name] = vi.type.tensor_type.elem_type
    inits = {init.name: init for init in graph.initializer}
    for name, init in inits.items():
        elem[name] = init.data_type

    current = dict(elem)  # element type after conversion, as we go
    half_inits: dict[str, str] = {}
    casts: dict[tuple[str, int], str] = {}
    new_nodes = []
    new_inits = []
    used = set()

    def unique(base: str) -> str:
        name = base
        i = 0
        while name in elem or name in used:
            i += 1
            name = f"{base}_{i}"
        used.add(name)
        return name

    def as_type(name: str, to: int) -> str:
        """``name`` converted to element type ``to`` (an FP16 copy of an initialiser, or a cached Cast)."""
        if current.get(name) == to or not name:
            return name
        if name in inits and to == HALF:
            if name not in half_inits:
                arr = numpy_helper.to_array(inits[name]).astype(np.float16)
                if np.isinf(arr).any() and not np.isinf(numpy_helper.to_array(inits[name])).any():
                    raise ValueError(f"initialiser {name} overflows FP16")
                half = numpy_helper.from_array(arr, unique(name + "_fp16"))
                new_inits.append(half)
                half_inits[name] = half.name
                current[half.name] = HALF
            return half_inits[name]
        key = (name, to)
        if key not in casts:
            out = unique(f"{name}_{'fp16' if to == HALF else 'fp32'}")
            new_nodes.append(helper.make_node("Cast", [name], [out], to=to, name=unique(f"cast_{out}")))
            casts[key] = out
            current[out] = to
        return casts[key]

    def is_dft_matmul(node) -> bool:
        return node.op_type == "MatMul" and any(i.endswith(("dft_row", "dft_col")) for i in node.input)

    graph_outputs = {o.name for o in graph.output}
    for node in graph.node:
        keep32 = node.op_type in fp32_ops or (keep_dft_fp32 and is_dft_matmul(node))
        want = FLOAT if keep32 else HALF
        fixed = _TYPE_FIXED_INPUTS.get(node.op_type, ())
        for i, name in enumerate(node.input):
            if i in fixed or not name:
                continue
            if elem.get(name) == FLOAT:
                node.input[i] = as_type(name, want)
        if not keep32:
            if node.op_type == "Cast":
                for attr in node.attribute:
                    if attr.name == "to" and attr.i == FLOAT:
                        attr.i = HALF
            elif node.op_type in ("Constant", "ConstantOfShape"):
                for attr in node.attribute:
                    if attr.t.data_type == FLOAT:
                        half = numpy_helper.to_array(attr.t).astype(np.float16)
                        attr.t.CopyFrom(numpy_helper.from_array(half, attr.t.name))
        for o in node.output:
            if elem.get(o) == FLOAT and not keep32:
                current[o] = HALF
            elif o in elem:
                current[o] = elem[o]
        new_nodes.append(node)
        # A graph output produced in FP16: rename the internal tensor, Cast back to the public FP32 name.
        for j, o in enumerate(node.output):
            if o in graph_outputs and current.get(o) == HALF:
                internal = unique(o + "_fp16")
                node.output[j] = internal
                current[internal] = HALF
                new_nodes.append(helper.make_node("Cast", [internal], [o], to=FLOAT, name=unique(f"cast_{o}")))
                current[o] = FLOAT

    # Nodes were appended in order, Casts right before their consumer: still topological.
    del graph.node[:]
    graph.node.extend(new_nodes)
    graph.initializer.extend(new_inits)
    still_used = {i for n in graph.node for i in n.input}
    keep = [init for init in graph.initializer if init.name in still_used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    del graph.value_info[:]
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model, full_check=True)
    return model


def convert_file_to_fp16(src: str | os.PathLike, dst: str | os.PathLike, **kwargs):
    """Read an FP32 ONNX file, write its typed FP16 form to ``dst`` atomically; returns the ModelProto."""
    import onnx

    from ..io_utils import atomic_write

    model = convert_to_fp16(onnx.load(str(src)), **kwargs)
    atomic_write(dst, lambda tmp: onnx.save(model, tmp))
    return model


def precision_summary(model) -> dict[str, int]:
    """How many nodes compute in FP16 vs FP32 (by their first float input's type) - for the sidecar/report."""
    import onnx
    from onnx import TensorProto

    model = onnx.shape_inference.infer_shapes(model)
    types = {vi.name: vi.type.tensor_type.elem_type for vi in list(model.graph.value_info) + list(model.graph.input)}
    types.update({i.name: i.data_type for i in model.graph.initializer})
    counts = {"fp16": 0, "fp32": 0}
    for node in model.graph.node:
        if node.op_type == "Cast":
            continue
        t = next((types[i] for i in node.input if types.get(i) in (TensorProto.FLOAT, TensorProto.FLOAT16)), None)
        if t == TensorProto.FLOAT16:
            counts["fp16"] += 1
        elif t == TensorProto.FLOAT:
            counts["fp32"] += 1
    return counts
