"""The TensorRT 10.3 conformance check on small hand-made graphs (fast). The real DRAMNet graphs of the tensorrt
target are checked where they are exported: test_export_onnx.py (FP32 split graphs) and test_calibrate_int8.py
(the calibrated Q/DQ graphs), and by ``export --target tensorrt`` itself.

Source of the rules: onnx/onnx-tensorrt docs/operators.md at release/10.1-GA (opset 9 to 20; DFT "N"; Resize
nearest / linear; axes of Pad, Squeeze, Unsqueeze, Reduce* as initializers) and docs/Changelog.md (10.2 and 10.3 add
no operator; 10.3 allows tensor axes for Slice; STFT in 10.5, window ops in 10.4).
"""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from dramnet_edge.export.onnx2engine import qdq_to_fp16
from dramnet_edge.export.trt_conformance import (SUPPORTED_OPS, check_tensorrt_conformance, format_report,
                                                 require_tensorrt_conformance)
from test_tensorrt_build_logic import _qdq_model


def _graph(nodes, inits=(), opset=18, shape=(1, 3, 8, 8), out_shape=None):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=9)


def test_the_operator_table_is_tensorrt_10_3s():
    assert {"Conv", "MatMul", "LayerNormalization", "Resize", "QuantizeLinear", "DequantizeLinear", "Softmax",
            "Einsum", "GroupNormalization", "Gelu"} <= SUPPORTED_OPS
    assert not {"DFT", "STFT", "HannWindow", "SplitToSequence", "MatMulInteger", "QLinearConv"} & SUPPORTED_OPS


def test_a_clean_qdq_graph_conforms_also_after_the_strongly_typed_fp16_conversion():
    for model in (_qdq_model(), qdq_to_fp16(_qdq_model())):
        report = check_tensorrt_conformance(model)
        assert report["problems"] == [] and report["qdq"]["weights"]["per_channel"] == 1
    assert check_tensorrt_conformance(qdq_to_fp16(_qdq_model()))["opset"] == 19
    assert "ok" in format_report({"model": check_tensorrt_conformance(_qdq_model())})


def test_dft_and_ops_outside_the_table_are_reported():
    model = _graph([helper.make_node("Hardmax", ["x"], ["h"], name="hm"),
                    helper.make_node("DFT", ["h"], ["y"], name="dft")], out_shape=None)
    problems = check_tensorrt_conformance(model)["problems"]
    assert any("DFT" in p and "export with --fft dft" in p for p in problems)
    assert any("DFT node 'dft': DFT is not in TensorRT 10.3's ONNX operator table" in p for p in problems)
    assert not any("Hardmax" in p for p in problems)  # Hardmax is in the table (since 9.2)


def test_cubic_resize_antialias_and_opset_are_reported():
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    model = _graph([helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up", mode="cubic", antialias=1,
                                     coordinate_transformation_mode="tf_crop_and_resize")],
                   inits=[scales], opset=21)
    problems = check_tensorrt_conformance(model)["problems"]
    assert any("mode 'cubic'" in p for p in problems)
    assert any("antialiasing" in p for p in problems)
    assert any("tf_crop_and_resize" in p for p in problems)
    assert any("opset 21 > 20" in p for p in problems)
    linear = _graph([helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up", mode="linear",
                                      coordinate_transformation_mode="half_pixel")], inits=[scales])
    assert check_tensorrt_conformance(linear)["problems"] == []


def test_axes_must_be_constants():
    shape = helper.make_node("Shape", ["x"], ["s"], name="shape", start=0, end=1)
    axes = helper.make_node("Cast", ["s"], ["axes"], name="cast", to=TensorProto.INT64)
    model = _graph([shape, axes, helper.make_node("ReduceMean", ["x", "axes"], ["y"], name="mean")])
    assert any("ReduceMean node 'mean': input 1 (axes) must be a constant" in p
               for p in check_tensorrt_conformance(model)["problems"])
    const = numpy_helper.from_array(np.array([1], np.int64), "axes")
    model = _graph([helper.make_node("ReduceMean", ["x", "axes"], ["y"], name="mean")], inits=[const])
    assert check_tensorrt_conformance(model)["problems"] == []


def test_qdq_rules_are_part_of_the_check():
    bad = _qdq_model()
    for init in bad.graph.initializer:
        if init.name == "x_zp":
            init.CopyFrom(numpy_helper.from_array(np.int8(3), "x_zp"))
    with pytest.raises(ValueError, match="would fail on TensorRT 10.3: .*non-zero zero-point"):
        require_tensorrt_conformance(bad, name="m.onnx (model)")
    onnx.checker.check_model(_qdq_model())
