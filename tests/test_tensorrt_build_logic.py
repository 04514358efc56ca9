"""The pure-Python parts of the TensorRT engine build: typing per version, the strongly typed Q/DQ -> FP16
conversion (checked on ONNX Runtime CPU), and the timing-cache fallback.

Sources read (NVIDIA/TensorRT): include/NvInfer.h v10.3.0 ``bool setTimingCache(...)`` "\\return true if set
successfully, false otherwise" and "A failure will be reported if the CUDA device property in the provided cache is
different"; python/docstrings/infer/pyCoreDoc.h ``create_timing_cache`` / ``set_timing_cache`` (returns a bool);
v10.12.0 NvInfer.h "Deprecated in TensorRT 10.12. Superseded by strong typing" on the precision builder flags.
The engine build itself needs TensorRT and a GPU: tests/test_calibrate_int8.py and test_export_onnx.py skip there.
"""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from dramnet_edge.export.onnx2engine import _attach_timing_cache, engine_precision, qdq_to_fp16, typing_plan


def test_typing_plan_per_version():
    jetpack6 = typing_plan((10, 3), "int8")
    assert jetpack6 == {"strongly_typed": False, "builder_flags": ["FP16", "INT8"], "qdq_to_fp16": False,
                        "typing": "weak: builder flags FP16+INT8"}
    assert typing_plan((10, 3), "fp32")["builder_flags"] == []  # the FP32 gate graph: no INT8 flag without Q/DQ
    assert typing_plan((10, 11), "fp16")["builder_flags"] == ["FP16"]
    strong = typing_plan((10, 12), "int8")
    assert strong["strongly_typed"] and strong["qdq_to_fp16"] and strong["builder_flags"] == []
    assert not typing_plan((11, 0), "fp16")["qdq_to_fp16"]  # the typed FP16 ONNX is already FP16
    with pytest.raises(ValueError, match="got 'bf16'"):
        typing_plan((10, 3), "bf16")


def test_the_gate_of_an_int8_export_is_built_as_fp32():
    assert engine_precision("int8", "gate") == "fp32"
    assert typing_plan((10, 3), engine_precision("int8", "gate"))["builder_flags"] == []
    assert [engine_precision("int8", g) for g in ("model", "encoder", "decoder_full", "decoder_light")] == ["int8"] * 4
    assert engine_precision("fp16", "gate") == "fp16"


def _qdq_model():
    """x -> Q/DQ -> Conv (int8 per-channel weights through DQ) -> Relu -> Softmax -> y, opset 18, FP32."""
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32)
    w_scale = (np.abs(w).reshape(4, -1).max(1) / 127).astype(np.float32)
    w_q = np.clip(np.round(w / w_scale[:, None, None, None]), -127, 127).astype(np.int8)
    inits = [numpy_helper.from_array(w_q, "w_q"), numpy_helper.from_array(w_scale, "w_scale"),
             numpy_helper.from_array(np.zeros(4, np.int8), "w_zp"),
             numpy_helper.from_array(np.float32(1 / 127), "x_scale"), numpy_helper.from_array(np.int8(0), "x_zp"),
             numpy_helper.from_array(rng.normal(0, 0.1, 4).astype(np.float32), "b")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zp"], ["xq"], name="q_x"),
             helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zp"], ["xdq"], name="dq_x"),
             helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["w"], name="dq_w", axis=0),
             helper.make_node("Conv", ["xdq", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Softmax", ["r"], ["y"], name="softmax", axis=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)


def test_qdq_to_fp16_keeps_quantization_and_islands_and_agrees_on_onnxruntime():
    import onnxruntime as ort

    model = _qdq_model()
    onnx.checker.check_model(model, full_check=True)
    half = qdq_to_fp16(model)
    assert next(i.version for i in half.opset_import if i.domain == "") == 19  # FP16 Q/DQ scales need 19
    inits = {i.name: i for i in half.graph.initializer}
    types = {vi.name: vi.type.tensor_type.elem_type for vi in half.graph.value_info}
    by_name = {n.name: n for n in half.graph.node}
    # quantization untouched: int8 weights and zero-points, the same per-channel axis; scales now FP16
    assert inits["w_q"].data_type == TensorProto.INT8 and inits["w_zp"].data_type == TensorProto.INT8
    assert inits[by_name["dq_w"].input[1]].data_type == TensorProto.FLOAT16
    assert [a.i for a in by_name["dq_w"].attribute if a.name == "axis"] == [0]
    assert types[by_name["conv"].output[0]] == TensorProto.FLOAT16  # the unquantized part runs FP16
    assert types[by_name["softmax"].input[0]] == TensorProto.FLOAT  # an FP32 island stays FP32 (Cast before it)
    assert half.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT  # same I/O as before
    x = np.random.default_rng(1).uniform(0, 1, (1, 3, 8, 8)).astype(np.float32)
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    out = ort.InferenceSession(half.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert out.dtype == np.float32 and np.abs(out - ref).max() < 2e-3


class _RecordingConfig:
    """Stands in for IBuilderConfig's two timing-cache calls only, to walk the fallback's branches; it builds
    nothing and stands for no TensorRT result. ``readable``: blobs create_timing_cache accepts; ``accept``: caches
    set_timing_cache takes (by the blob they came from)."""

    def __init__(self, readable=(b"",), accept=(b"",)):
        self.readable, self.accept, self.attached = set(readable), set(accept), None

    def create_timing_cache(self, blob):
        return ("cache", bytes(blob)) if bytes(blob) in self.readable else None

    def set_timing_cache(self, cache, ignore_mismatch):
        assert ignore_mismatch is False  # a foreign cache is refused, never forced
        ok = cache[1] in self.accept
        self.attached = cache if ok else self.attached
        return ok


def test_timing_cache_good_blob_is_used():
    cfg = _RecordingConfig(readable=(b"", b"old"), accept=(b"", b"old"))
    assert _attach_timing_cache(cfg, b"old", "m.timing.cache") == (("cache", b"old"), None)


def test_timing_cache_from_another_device_falls_back_to_a_fresh_one():
    cfg = _RecordingConfig(readable=(b"", b"other-gpu"), accept=(b"",))
    cache, note = _attach_timing_cache(cfg, b"other-gpu", "m.timing.cache")
    assert cache == ("cache", b"") and cfg.attached == cache and "another GPU or TensorRT" in note


def test_unreadable_timing_cache_falls_back_to_a_fresh_one():
    cfg = _RecordingConfig(readable=(b"",), accept=(b"",))
    cache, note = _attach_timing_cache(cfg, b"garbage", "m.timing.cache")
    assert cache == ("cache", b"") and "could not be read" in note


def test_no_cache_file_means_a_fresh_cache_without_a_note():
    assert _attach_timing_cache(_RecordingConfig(), b"", "m.timing.cache") == (("cache", b""), None)


def test_when_no_cache_can_be_attached_the_build_goes_on_without():
    cache, note = _attach_timing_cache(_RecordingConfig(readable=(), accept=()), b"x", "m.timing.cache")
    assert cache is None and "building without" in note


def test_inspect_qdq_wants_per_channel_weight_scales_on_the_output_channel_axis():
    from dramnet_edge.calibrate.quantize import inspect_qdq

    model = _qdq_model()
    assert inspect_qdq(model)["problems"] == [] and inspect_qdq(model)["weights"]["per_channel"] == 1
    wrong = _qdq_model()
    dq_w = next(n for n in wrong.graph.node if n.name == "dq_w")
    next(a for a in dq_w.attribute if a.name == "axis").i = 1  # input channels: 3 scales would be needed; 4 given
    problems = inspect_qdq(wrong)["problems"]
    assert any("on axis 1, not the output-channel axis 0" in p for p in problems), problems
