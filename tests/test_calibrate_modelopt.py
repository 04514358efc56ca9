"""NVIDIA ModelOpt as the tensorrt target's Q/DQ quantizer (``calibrate.quantize``, library "modelopt").

The argument building and the errors are checked everywhere; the real quantization of a small hand-built graph only
where ``nvidia-modelopt[onnx]`` is installed (the ``modelopt`` extra, normally in its own virtual environment).
"""

import sys

import numpy as np
import pytest
from click.testing import CliRunner

from dramnet_edge.calibrate.quantize import (QuantSettings, concat_calibration, modelopt_arguments,
                                             modelopt_available, modelopt_fusion_partners,
                                             require_modelopt)
from dramnet_edge.errors import MissingExtraError, UserError




@pytest.fixture
def no_modelopt(monkeypatch):
    """Make ``import modelopt...`` fail as it does where the extra is not installed."""
    for name in [m for m in sys.modules if m == "modelopt" or m.startswith("modelopt.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "modelopt", None)


def test_settings_accept_modelopt_with_its_range_estimators_only():
    assert QuantSettings("modelopt").method == "minmax"
    assert QuantSettings("modelopt", "entropy").library == "modelopt"
    with pytest.raises(UserError, match="modelopt has no 'percentile' range estimator"):
        QuantSettings("modelopt", "percentile")
    d = QuantSettings("modelopt").describe()
    assert "TensorRT placement" in d["placement"] and "Add" in d["op_types"] and "Conv" in d["op_types"]
    assert QuantSettings("nncf").describe()["placement"] == "inputs of Conv/MatMul/Gemm only"


def test_arguments_anchor_and_escape_the_excluded_names():
    import re

    calib = [{"x": np.zeros((2, 3, 4, 4), np.float32)}, {"x": np.ones((1, 3, 4, 4), np.float32)}]
    args = modelopt_arguments("in.onnx", "out.onnx", calib, QuantSettings("modelopt"),
                              ["/enc/Conv", "/dft/MatMul_1"])
    assert args["calibration_method"] == "max" and args["quantize_mode"] == "int8"
    assert args["calibration_eps"] == ["cpu"] and args["high_precision_dtype"] == "fp32"
    assert args["onnx_path"] == "in.onnx" and args["output_path"] == "out.onnx"
    assert args["calibration_data"]["x"].shape == (3, 3, 4, 4)
    # ModelOpt matches with re.match: an unanchored "/enc/Conv" would also exclude "/enc/Conv_1"
    pats = args["nodes_to_exclude"]
    assert any(re.match(p, "/enc/Conv") for p in pats)
    assert not any(re.match(p, "/enc/Conv_1") for p in pats)
    assert any(re.match(p, "/dft/MatMul_1") for p in pats) and not any(re.match(p, "/dftXMatMul_1") for p in pats)
    assert modelopt_arguments("a.onnx", "b.onnx", calib, QuantSettings("modelopt", "entropy"),
                              [])["calibration_method"] == "entropy"


def test_fusion_partners_are_the_adds_after_a_quantized_layer(tmp_path):
    import onnx

    model = onnx.load(str(_small_graph(tmp_path)))
    # "/add" reads "/c_1"'s output: kept while "/c_1" is quantized, dropped when it is not
    assert modelopt_fusion_partners(model, {"/c", "/c_1", "/c_2"}) == {"/add"}
    assert modelopt_fusion_partners(model, {"/c", "/c_2"}) == set()


def test_concat_calibration_refuses_nothing():
    with pytest.raises(UserError, match="no calibration batches"):
        concat_calibration([])


def test_missing_modelopt_is_a_missing_extra(no_modelopt, tmp_path):
    from dramnet_edge.calibrate.quantize import quantize_onnx

    with pytest.raises(MissingExtraError, match=r'dramnet-edge\[modelopt\]'):
        require_modelopt()
    fp32 = _small_graph(tmp_path)
    with pytest.raises(MissingExtraError, match="--quantizer modelopt"):
        quantize_onnx(fp32, tmp_path / "q.onnx", [{"x": np.zeros((1, 3, 16, 16), np.float32)}],
                      settings=QuantSettings("modelopt"))
    assert not (tmp_path / "q.onnx").exists()


# ----------------------------------------------------------------------------------------------- the CLI


def _cli_error(command, args):
    result = CliRunner().invoke(command, args)
    lines = [line for line in result.output.splitlines() if line.startswith("Error")]
    return result.exit_code, lines


@pytest.mark.parametrize("args,message", [
    (["--target", "onnx", "--int8", "--quantizer", "modelopt", "-o", "{tmp}/m.int8.onnx"],
     "--quantizer applies to --target tensorrt"),
    (["--target", "openvino", "--int8", "--quantizer", "nncf", "-o", "{tmp}/m.int8.xml"],
     "--quantizer applies to --target tensorrt"),
    (["--target", "tensorrt", "--precision", "fp16", "--quantizer", "modelopt", "-o", "{tmp}/m.engine"],
     "--quantizer applies to --precision int8, not fp16"),
    (["--target", "tensorrt", "--quantizer", "modelopt", "-o", "{tmp}/m.engine"],
     "--quantizer applies to --precision int8, not fp16"),
])
def test_export_quantizer_that_does_not_apply(tmp_path, args, message):
    from dramnet_edge.cli.export import export

    code, lines = _cli_error(export, [a.format(tmp=tmp_path) for a in args])
    assert code == 2 and len(lines) == 1 and message in lines[0], lines
    assert not any(tmp_path.iterdir())


def test_export_unknown_quantizer_is_rejected_by_click(tmp_path):
    from dramnet_edge.cli.export import export

    code, lines = _cli_error(export, ["--target", "tensorrt", "--int8", "--quantizer", "ort", "-o",
                                      str(tmp_path / "m.engine")])
    assert code == 2 and "ort" in lines[0]


def test_export_modelopt_without_the_extra_stops_before_any_work(no_modelopt, tmp_path):
    from dramnet_edge.cli.export import export

    code, lines = _cli_error(export, ["--target", "tensorrt", "--int8", "--quantizer", "modelopt", "-o",
                                      str(tmp_path / "m.engine")])
    assert code == 2 and len(lines) == 1 and 'pip install "dramnet-edge[modelopt]"' in lines[0], lines
    assert not any(tmp_path.iterdir())


def test_library_api_checks_the_quantizer_too(tmp_path):
    import torch.nn as nn

    from dramnet_edge.deploy.export import check_quantizer, export_model

    check_quantizer("tensorrt", "int8", "modelopt")
    check_quantizer("onnx", "fp32", None)
    with pytest.raises(UserError, match="--quantizer must be one of nncf, modelopt"):
        check_quantizer("tensorrt", "int8", "ort")
    with pytest.raises(UserError, match="--quantizer applies to --target tensorrt"):
        export_model(nn.Identity(), target="onnx", output=tmp_path / "m.int8.onnx", precision="int8",
                     quantizer="modelopt")


def test_calibrate_cli_modelopt_errors(no_modelopt, tmp_path):
    from dramnet_edge.cli.calibrate import calibrate

    code, lines = _cli_error(calibrate, ["--library", "modelopt", "--method", "percentile", "-o",
                                         str(tmp_path / "m.int8.onnx")])
    assert code == 2 and "modelopt has no 'percentile' range estimator" in lines[0], lines
    code, lines = _cli_error(calibrate, ["--library", "modelopt", "-o", str(tmp_path / "m.int8.onnx")])
    assert code == 2 and 'dramnet-edge[modelopt]' in lines[0], lines


# ----------------------------------------------------------------------------------------------- a real run


def _small_graph(folder):
    """x (N, 3, 16, 16) -> conv "/c" (16) -> relu -> conv "/c_1" (16) + residual -> relu -> conv "/c_2" (3) -> y,
    opset 17, dynamic batch: channel counts ModelOpt quantizes, and a residual Add it may put Q/DQ on."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def w(name, shape):
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.2).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "w0", "b0"], ["a"], name="/c", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["a"], ["ar"], name="/r"),
        helper.make_node("Conv", ["ar", "w1", "b1"], ["b"], name="/c_1", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Add", ["b", "ar"], ["s"], name="/add"),
        helper.make_node("Relu", ["s"], ["sr"], name="/r_1"),
        helper.make_node("Conv", ["sr", "w2", "b2"], ["y"], name="/c_2", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
    ]
    inits = [w("w0", (16, 3, 3, 3)), w("b0", (16,)), w("w1", (16, 16, 3, 3)), w("b1", (16,)),
             w("w2", (3, 16, 3, 3)), w("b2", (3,))]
    graph = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 16, 16])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    path = folder / "small.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.skipif(not modelopt_available(), reason="needs nvidia-modelopt[onnx] (the modelopt extra)")
def test_modelopt_quantizes_a_small_graph_for_tensorrt(tmp_path):
    from dramnet_edge.calibrate.quantize import inspect_qdq, load_onnx, quantize_onnx, quantized_nodes
    from dramnet_edge.calibrate.runner import OnnxGraph
    from dramnet_edge.export.trt_conformance import check_tensorrt_conformance

    fp32 = _small_graph(tmp_path)
    rng = np.random.default_rng(1)
    calib = [{"x": rng.random((2, 3, 16, 16), dtype=np.float32)} for _ in range(4)]
    out = tmp_path / "q.onnx"
    quantize_onnx(fp32, out, calib, settings=QuantSettings("modelopt"), exclude=["/c"])
    model = load_onnx(out)
    q = quantized_nodes(model)
    # "/c" is excluded and reads float; "/c_1" (a name "/c" is a prefix of) is still quantized
    assert "/c" not in q and q.get("/c_1") == {"activation": True, "weight": True}
    qdq = inspect_qdq(model)
    assert qdq["problems"] == [] and qdq["quantize_linear"] > 0 and qdq["zero_point_dtypes"] == ["int8"]
    assert check_tensorrt_conformance(model)["problems"] == []
    # only quantized layers and their fusion partners read DequantizeLinear outputs (the Relus read float)
    producer = {o: n for n in model.graph.node for o in n.output}
    readers = {n.name for n in model.graph.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear")
               and any(producer.get(t) is not None and producer[t].op_type == "DequantizeLinear" for t in n.input)}
    assert readers <= {"/c_1", "/c_2", "/add"} and {"/c_1", "/c_2"} <= readers
    x = rng.random((3, 3, 16, 16), dtype=np.float32)
    ref, got = OnnxGraph(fp32).run({"x": x})[0], OnnxGraph(out).run({"x": x})[0]
    assert got.dtype == np.float32 and got.shape == ref.shape  # the float part stays FP32 (high_precision fp32)
    err = float(np.abs(got - ref).max())
    assert 0.0 < err < 0.1 * float(np.abs(ref).max())  # quantized (not bit-exact), and close
    # the fallback's fast path: reverting the quantized layers takes their fusion partner ("/add") along, so the
    # graph is float again (the residual Add no longer reads an INT8-rounded tensor)
    from dramnet_edge.calibrate.quantize import revert_nodes

    reverted = revert_nodes(model, load_onnx(fp32), ["/c_1", "/c_2"])
    assert not any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in reverted.graph.node)
    np.testing.assert_allclose(OnnxGraph(reverted).run({"x": x})[0], ref, rtol=1e-5, atol=1e-5)
    partial = revert_nodes(model, load_onnx(fp32), ["/c_2"])  # "/c_1" stays INT8, so does its partner "/add"
    assert set(quantized_nodes(partial)) == {"/c_1"}
