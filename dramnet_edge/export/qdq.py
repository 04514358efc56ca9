"""Reading a Q/DQ ONNX graph: its constants, and what TensorRT would reject in its QuantizeLinear/DequantizeLinear
nodes (``inspect_qdq``). The export layer checks TensorRT conformance with it (``trt_conformance``); the calibration
layer, which writes Q/DQ graphs, uses it too (``calibrate.quantize`` re-exports the names).
"""

from __future__ import annotations

import os

import numpy as np

#: Only the inputs of these are quantized: where INT8 kernels pay (``calibrate.graph`` explains the choice).
QUANTIZED_OP_TYPES = ("Conv", "MatMul", "Gemm")


def constant_arrays(model) -> dict[str, np.ndarray]:
    """Every initializer and ``Constant`` node output of an ONNX model, by tensor name, as numpy arrays."""
    from onnx import numpy_helper

    consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    consts[node.output[0]] = numpy_helper.to_array(attr.t)
    return consts


def inspect_qdq(model) -> dict:
    """What a Q/DQ model holds and what TensorRT would reject in it.

    Returns {"quantize_linear": n, "dequantize_linear": n, "weights": {"per_channel": n, "per_tensor": n},
    "activations": n, "zero_point_dtypes": [...], "quantized_nodes": n, "problems": [one line each]}.
    Problems: a non-zero or non-int8 zero-point, an int32 (bias) or uint8 DequantizeLinear, a non-positive scale,
    per-channel weight scales on another axis than the consumer's output channels (``weight_output_axis``).
    """
    import onnx

    if isinstance(model, (str, os.PathLike)):
        model = onnx.load(str(model))
    consts = constant_arrays(model)
    producer = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for i, t in enumerate(n.input):
            consumers.setdefault(t, []).append((n, i))
    problems, zp_types = [], set()
    per_channel = per_tensor = activations = 0
    nq = ndq = 0
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        if node.op_type == "QuantizeLinear":
            nq += 1
        else:
            ndq += 1
        scale = consts.get(node.input[1])
        zp = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        src = node.input[0]
        src_is_const = src in consts or (producer.get(src) is not None and producer[src].op_type == "QuantizeLinear"
                                         and producer[src].input[0] in consts)
        if zp is None:
            # No zero-point means uint8 zero-point 0 for QuantizeLinear: TensorRT wants int8.
            problems.append(f"{node.op_type} {node.name!r} has no zero-point (defaults to uint8)")
        else:
            zp_types.add(str(zp.dtype))
            if zp.dtype != np.int8:
                problems.append(f"{node.op_type} {node.name!r} zero-point is {zp.dtype}, not int8")
            elif np.any(zp != 0):
                problems.append(f"{node.op_type} {node.name!r} has a non-zero zero-point")
        if scale is not None and np.any(np.asarray(scale) <= 0):
            problems.append(f"{node.op_type} {node.name!r} has a non-positive scale")
        if node.op_type == "DequantizeLinear":
            if src in consts and consts[src].dtype not in (np.int8,):
                problems.append(f"DequantizeLinear {node.name!r} reads a {consts[src].dtype} constant (bias?), "
                                "not int8")
            if not src_is_const and scale is not None and np.asarray(scale).size > 1:
                problems.append(f"DequantizeLinear {node.name!r} quantizes an activation per channel "
                                "(TensorRT: per tensor only)")
            if src_is_const:
                weight = consts.get(src)
                if weight is None and producer.get(src) is not None:
                    weight = consts.get(producer[src].input[0])
                axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
                channels = weight.shape[axis] if weight is not None and weight.ndim > 0 else 1
                size = 1 if scale is None else np.asarray(scale).size
                if size == channels and (size > 1 or (weight is not None and weight.ndim > 1)):
                    per_channel += 1  # one scale per output channel (a 1-channel conv has one)
                else:
                    per_tensor += 1
                if size > 1 and weight is not None:
                    rank = weight.ndim
                    for user, slot in consumers.get(node.output[0], []):
                        want = weight_output_axis(user, slot, rank)
                        if want is not None and axis % rank != want:
                            problems.append(f"DequantizeLinear {node.name!r} scales {user.op_type} {user.name!r}'s "
                                            f"weights per channel on axis {axis}, not the output-channel axis {want} "
                                            "(TensorRT)")
            else:
                activations += 1
    return {
        "quantize_linear": nq,
        "dequantize_linear": ndq,
        "weights": {"per_channel": per_channel, "per_tensor": per_tensor},
        "activations": activations,
        "zero_point_dtypes": sorted(zp_types),
        "quantized_nodes": len(quantized_nodes(model)),
        "problems": problems,
    }


def weight_output_axis(node, slot: int, rank: int) -> int | None:
    """The output-channel axis of the weight ``node`` reads at input ``slot`` (rank ``rank``), where TensorRT wants
    per-channel weight scales: Conv 0 (O, I, kH, kW); ConvTranspose 1 (I, O/g, ...); MatMul the last axis (K, N);
    Gemm 0 with transB=1 (N, K), else 1. None when the slot is not a weight (an activation input, a bias)."""
    if node.op_type == "Conv" and slot == 1:
        return 0
    if node.op_type == "ConvTranspose" and slot == 1:
        return 1
    if node.op_type == "MatMul" and slot == 1:
        return rank - 1
    if node.op_type == "Gemm" and slot == 1:
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 0 if trans_b else 1
    return None


def quantized_nodes(model) -> dict[str, dict]:
    """{node name: {"activation": bool, "weight": bool}} for Conv/MatMul/Gemm nodes fed by a DequantizeLinear."""
    producer = {o: n for n in model.graph.node for o in n.output}
    consts = constant_arrays(model)
    out = {}
    for node in model.graph.node:
        if node.op_type not in QUANTIZED_OP_TYPES:
            continue
        kinds = {"activation": False, "weight": False}
        for t in node.input[:2]:
            p = producer.get(t)
            if p is not None and p.op_type == "DequantizeLinear":
                src = p.input[0]
                is_weight = src in consts or (producer.get(src) is not None and producer[src].op_type == "QuantizeLinear"
                                              and producer[src].input[0] in consts)
                kinds["weight" if is_weight else "activation"] = True
        if kinds["activation"] or kinds["weight"]:
            out[node.name] = kinds
    return out
