"""quickstart plumbing with a tiny budget: a few training steps, no real exports (the dynamo exporter alone takes
minutes here). An export that fails is reported, the steps that do not need it still run, and the exit code is 1.
INT8 goes through the real export and calibration entry points (checked with those entry points replaced by
recorders); a precision the formats table does not accept is 'pending', not a failure."""

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from dramnet_edge.bench import quickstart as qs
from dramnet_edge.cli.bench import quickstart_command


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_quickstart_reports_a_failing_step_and_goes_on(tmp_path, monkeypatch):
    calls = []

    def broken_export(checkpoint, target, precision, folder, log=None):
        calls.append((target, precision))
        raise RuntimeError(f"simulated {target} {precision} exporter crash")

    monkeypatch.setattr(qs, "stage_export", broken_export)
    monkeypatch.setattr(qs, "stage_calibrate", lambda *a, **k: pytest.fail("calibrate needs the FP32 ONNX export"))
    out = tmp_path / "qs"
    res = CliRunner().invoke(quickstart_command, ["-o", str(out), "--fast", "--threads", "1"])
    assert res.exit_code == 1, res.output
    assert "FAILED" in res.output
    summary = json.loads((out / "summary.json").read_text())
    status = {s["name"]: s["status"] for s in summary["steps"]}
    assert status["data"] == "ok" and status["train"] == "ok"
    assert status["export onnx fp32"] == "failed" and status["export openvino fp32"] == "failed"
    assert status["export openvino int8"] == "failed"  # INT8 is attempted for real, not parked as pending
    assert status["calibrate onnx int8"] == "skipped"  # its FP32 ONNX export failed
    assert calls == [("onnx", "fp32"), ("openvino", "fp32"), ("openvino", "int8")]
    assert status["validate"] == "ok" and status["bench"] == "ok"  # the trained checkpoint on torch
    assert all(s["seconds"] >= 0 for s in summary["steps"])
    assert summary["ok"] is False and summary["seconds"] > 0
    assert summary["train"]["steps"] == 3
    assert summary["validate"]["artifacts"][0]["backend"] == "torch"
    runs = summary["bench"]["runs"]
    assert {r["policy"] for r in runs} == {"none", "0.05:"}
    report = (out / "report.md").read_text()
    assert "simulated onnx fp32 exporter crash" in report and "simulated openvino int8 exporter crash" in report
    assert "skipped" in report
    assert summary["plots"]
    for png in summary["plots"]:
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_int8_export_goes_through_export_model_and_reports_the_calibration(tmp_path, monkeypatch):
    from dramnet_edge.deploy import export as exporter
    from dramnet_edge.models import builder

    seen = {}

    def fake_export_model(net, **kwargs):
        seen.update(kwargs)
        return {"parity": {"ok": True, "model": {"psnr_db_min": 47.5}},
                "quantization": {"drop_db_mean": 0.031, "drop_db_worst": 0.12, "met": True,
                                 "reverted_groups": ["stem", "bridge"]}}

    monkeypatch.setattr(exporter, "export_model", fake_export_model)
    monkeypatch.setattr(builder, "load_model", lambda path: (torch.nn.Identity(), {"model": "dramnet_tiny"}))
    path, side = qs.stage_export(tmp_path / "w.safetensors", "openvino", "int8", tmp_path / "a")
    assert seen["target"] == "openvino" and seen["precision"] == "int8" and seen["output"] == path
    assert path.name == "dramnet-openvino-int8.xml" and seen["checkpoint"] == tmp_path / "w.safetensors"
    detail = qs.export_detail(path, side)
    assert "47.5 dB" in detail and "0.031 dB mean" in detail and "budget met=True" in detail
    assert "2 layer group(s) reverted to float" in detail


def test_a_precision_the_formats_table_does_not_accept_is_pending(tmp_path, monkeypatch):
    from dramnet_edge.export import formats

    real = formats.get_format("openvino")
    monkeypatch.setattr(formats, "get_format", lambda name: replace(real, precisions=("fp32", "fp16")))
    with pytest.raises(qs.PendingStep, match="openvino int8: not available in this version"):
        qs.stage_export(tmp_path / "w.safetensors", "openvino", "int8", tmp_path)


def test_onnx_int8_is_calibrated_from_the_fp32_export(tmp_path, monkeypatch):
    pipeline = pytest.importorskip("dramnet_edge.calibrate.pipeline")
    seen = {}
    monkeypatch.setattr(pipeline, "calibrate", lambda **kw: seen.update(kw) or {"final": {}})
    out, report = qs.stage_calibrate(Path("m.onnx"), Path("w.safetensors"), tmp_path / "q.onnx", fast=True)
    assert out == tmp_path / "q.onnx" and seen["onnx"] == Path("m.onnx") and seen["output"] == out
    assert seen["checkpoint"] == Path("w.safetensors") and seen["tiles"] == 8 and seen["max_evals"] == 2


def test_quickstart_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "x").write_text("mine")
    res = CliRunner().invoke(quickstart_command, ["-o", str(tmp_path), "--fast"])
    assert res.exit_code == 2 and "--overwrite" in res.output
