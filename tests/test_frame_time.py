"""benchmarks/frame_time.py: one frame per (model, backend), interleaved; bad --backends refused before any work."""

import json

import pytest
from conftest import load_benchmark

pytestmark = pytest.mark.usefixtures("one_thread")


def _module():
    return load_benchmark("frame_time")


def test_unknown_backend_is_refused(capsys):
    assert _module().main(["--backends", "torch,tensorrt"]) == 2
    assert "tensorrt" in capsys.readouterr().err


def test_torch_and_onnxruntime_rows_on_one_frame(tmp_path):
    import torch

    from dramnet_edge.models import create_model
    from dramnet_edge.models.checkpoint import save_weights

    torch.manual_seed(0)
    ckpt = tmp_path / "t.safetensors"
    save_weights(create_model("dramnet_tiny", tile=112, num_columns=1).eval(), ckpt)
    out = tmp_path / "f.json"
    assert _module().main(["--checkpoint", str(ckpt), "--backends", "torch,onnxruntime", "--repeat", "1",
                           "--size", "200x112", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["backend"] for r in rows] == ["torch", "onnxruntime"]
    assert rows[0]["tiles"] == rows[1]["tiles"] >= 2  # the same frame cut the same way on both backends
    assert all(len(r["times"]) == 1 and r["median_s"] > 0 for r in rows)
