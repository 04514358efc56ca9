"""The formats table, CLI validation (one-line errors before any work), missing SDKs, the ONNX lint, and the
static-batch padding of artifact sessions. Nothing here exports a model: these tests are fast."""

import importlib
import json
import platform
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dramnet_edge.cli.export import export
from dramnet_edge.export import formats
from dramnet_edge.export.formats import FORMATS, format_for_path, get_format, validate_request
from dramnet_edge.export.lint import lint_onnx
from dramnet_edge.export.sidecar import SIDECAR_FORMAT, parity_figures, parity_photos, sidecar_path
from dramnet_edge.runtime.backends_base import ArtifactSession
from dramnet_edge.runtime.session import BACKENDS, open_session


def test_table_is_looked_up_by_name_and_suffix():
    assert set(FORMATS) == {"onnx", "tensorrt", "torch-tensorrt", "coreml", "openvino"}
    assert get_format("tensorrt").suffix == ".engine"
    assert format_for_path("a/m.mlpackage").name == "coreml"
    assert format_for_path("m.xml").backend == "openvino"
    with pytest.raises(ValueError, match="onnx, tensorrt"):
        get_format("tflite")
    with pytest.raises(ValueError, match=r"\.onnx \(onnx\)"):
        format_for_path("m.tflite")
    for fmt in FORMATS.values():
        assert fmt.backend in BACKENDS, fmt.name


def test_split_graph_and_sidecar_names():
    paths = get_format("onnx").artifact_paths("out/m.onnx")
    assert {k: v.name for k, v in paths.items()} == {
        "model": "m.onnx", "encoder": "m.encoder.onnx", "decoder_full": "m.decoder_full.onnx",
        "decoder_light": "m.decoder_light.onnx", "gate": "m.gate.onnx"}
    assert sidecar_path("out/m.engine").name == "m.engine.json"
    assert sidecar_path("out/m.gate.onnx").name == "m.onnx.json"
    assert sidecar_path("out/m.decoder_light.xml").name == "m.xml.json"
    assert get_format("coreml").sidecar_path("x/net.v2.mlpackage").name == "net.v2.mlpackage.json"


def test_exports_of_one_stem_never_share_a_file():
    """onnx, openvino, tensorrt (and its build ONNX), fp32 or int8: every file of one stem is its own."""
    files = {}
    for target in ("onnx", "openvino", "tensorrt", "coreml"):
        fmt = get_format(target)
        files[target] = {p.name for p in fmt.output_files(f"out/m{fmt.suffix}", "int8")}
    names = [n for f in files.values() for n in f]
    assert len(names) == len(set(names)), sorted(names)
    assert "m.engine.onnx" in files["tensorrt"] and "m.onnx" not in files["tensorrt"]
    assert {"m.xml.json", "m.xml.report.json", "m.encoder.bin"} <= files["openvino"]


def test_validate_request_names_value_and_accepted_ones():
    with pytest.raises(ValueError, match=r"'m\.onnx' does not end in \.engine"):
        validate_request("tensorrt", "fp16", output="m.onnx")
    with pytest.raises(ValueError, match="accepts: fp32, fp16"):
        validate_request("torch-tensorrt", "int8", output="m.pt2")
    assert validate_request("coreml", "int8", output="m.mlpackage").name == "coreml"  # W8A8
    with pytest.raises(ValueError, match="--fft native is not available for --target openvino --precision int8"):
        validate_request("openvino", "int8", output="m.xml", fft="native")
    assert validate_request("openvino", "fp32", output="m.xml", fft="native").name == "openvino"


def test_int8_is_ready_wherever_it_is_accepted():
    # INT8 is calibrated (dramnet_edge.calibrate) wherever it is accepted; the quickstart's stage_export relies on it
    assert {n for n, f in FORMATS.items() if "int8" in f.precisions} == {"onnx", "tensorrt", "coreml", "openvino"}
    assert "nncf" in get_format("openvino").int8_modules and "nncf" in get_format("tensorrt").int8_modules


@pytest.mark.parametrize("args,message", [
    (["--target", "onnx", "-o", "m.engine"], "does not end in .onnx"),
    (["--target", "tflite", "-o", "m.onnx"], "'tflite' is not one of"),
    (["--target", "onnx", "--int8", "--precision", "fp16", "-o", "m.onnx"], "--int8 and --precision fp16"),
    (["--target", "onnx", "--batch", "4", "--dynamic-batch", "-o", "m.onnx"], "--batch 4 and --dynamic-batch"),
    (["--target", "onnx", "--batch", "0", "-o", "m.onnx"], "'--batch': 0 is not in the range x>=1"),
    (["--target", "torch-tensorrt", "--precision", "int8", "-o", "m.pt2"], "accepts: fp32, fp16"),
    (["--target", "onnx", "--int8", "--budget-db", "0", "-o", "m.onnx"], "'--budget-db': 0.0 is not in the range x>0"),
    (["--target", "coreml", "--int8", "--budget-db", "nan", "-o", "m.mlpackage"], "nan is not a finite number"),
    (["--target", "openvino", "--precision", "int8", "--calib-data", "nope", "-o", "m.xml"],
     "--calib-data nope: no such directory"),
    (["--target", "openvino", "--int8", "--fft", "native", "-o", "m.xml"], "--precision int8 (calibrated on the"),
    (["--target", "onnx", "--precision", "fp16", "--budget-db", "0.2", "-o", "m.onnx"],
     "--calib-data and --budget-db apply to --precision int8, not fp16"),
    (["--target", "openvino", "--calib-data", ".", "-o", "m.xml"], "apply to --precision int8, not fp32"),
    (["--target", "coreml", "--dynamic-batch", "-o", "m.mlpackage"], "use --batch N"),
    (["--target", "tensorrt", "--fft", "native", "-o", "m.engine"], "accepts: dft"),
    (["--target", "onnx", "--tile", "100", "-o", "m.onnx"], "multiple of 112"),
    (["--target", "onnx", "--model", "aibnet_s", "-o", "m.onnx"], "dramnet_tiny"),
    (["--target", "onnx", "--checkpoint", "nope.safetensors", "-o", "m.onnx"], "checkpoint not found"),
])
def test_cli_bad_input_is_one_line(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(export, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.startswith("Error")]
    assert len(lines) == 1 and message in lines[0], result.output
    assert not list(tmp_path.iterdir())  # failed before writing anything


def test_cli_refuses_to_overwrite(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"mine")
    result = CliRunner().invoke(export, ["--target", "onnx", "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert (tmp_path / "m.onnx").read_bytes() == b"mine"


def _hide_modules(monkeypatch, *names):
    real = importlib.import_module

    def fake(name, *a, **k):
        if name.split(".")[0] in names:
            raise ImportError(f"No module named {name!r}")
        return real(name, *a, **k)

    monkeypatch.setattr(formats.importlib, "import_module", fake)


@pytest.mark.parametrize("target,output,module,hint", [
    ("coreml", "m.mlpackage", "coremltools", 'pip install "dramnet-edge[coreml]"'),
    ("openvino", "m.xml", "openvino", 'pip install "dramnet-edge[openvino]"'),
    ("onnx", "m.onnx", "onnxruntime", 'pip install "dramnet-edge[onnx]"'),
])
def test_missing_extra_names_the_install(target, output, module, hint, tmp_path, monkeypatch):
    _hide_modules(monkeypatch, module)
    result = CliRunner().invoke(export, ["--target", target, "-o", str(tmp_path / output)])
    assert result.exit_code == 2
    assert module in result.output and hint in result.output, result.output
    assert not list(tmp_path.iterdir())


def test_backend_without_its_sdk_says_what_to_install(monkeypatch, tmp_path):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name.split(".")[0] == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ValueError, match=r'dramnet-edge\[onnx\]'):
        open_session("onnxruntime", artifact=str(tmp_path / "m.onnx"))


def test_artifact_backends_need_an_artifact_with_a_sidecar(tmp_path):
    with pytest.raises(ValueError, match="--artifact"):
        open_session("onnxruntime")
    (tmp_path / "m.onnx").write_bytes(b"")
    with pytest.raises(ValueError, match="no sidecar m.onnx.json"):
        open_session("onnxruntime", artifact=str(tmp_path / "m.onnx"))
    (tmp_path / "m.onnx.json").write_text(json.dumps({"format": SIDECAR_FORMAT, "backend": "openvino", "tile": 112,
                                                 "batch": 1, "graphs": {}}))
    with pytest.raises(ValueError, match="exported for the openvino backend"):
        open_session("onnxruntime", artifact=str(tmp_path / "m.onnx"))


@pytest.mark.skipif(platform.system() == "Darwin", reason="on macOS CoreML prediction is available")
def test_coreml_prediction_off_macos_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="needs macOS"):
        open_session("coreml", artifact=str(tmp_path / "m.mlpackage"))


class _Doubler(ArtifactSession):
    """A fake backend whose graphs double their input, with a static batch of 3: checks chunking and padding."""

    backend = "fake"

    def __init__(self, static_batch):
        self.sidecar = {"tile": 4}
        self.tile = 4
        self.static_batch = static_batch
        self.tau_skip = None
        self.max_batch = None
        self.calls = []
        self._files = {}
        self._handles = {"g": None}

    def _load(self, path):  # its one graph is pre-opened above
        return None

    def _run(self, handle, inputs):
        n = len(inputs["x"])
        self.calls.append(n)
        return [inputs["x"] * 2]


@pytest.mark.parametrize("n", [1, 3, 5, 7])
def test_static_batch_sessions_pad_and_drop(n):
    session = _Doubler(static_batch=3)
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    (out,) = session.run_graph("g", {"x": x})
    assert np.array_equal(out, 2 * x)
    assert all(c == 3 for c in session.calls)


def _onnx_model(op_type, domain="", opset=18, **attrs):
    from onnx import TensorProto, helper

    inputs = ["x"] + (["", "", "scales"] if op_type == "Resize" else [])
    node = helper.make_node(op_type, inputs, ["y"], domain=domain, **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2])] if op_type == "Resize" else [],
    )
    imports = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=imports)


def test_lint_flags_what_tensorrt_and_coreml_reject():
    assert lint_onnx(_onnx_model("Relu")) == []
    assert any("opset 16" in p for p in lint_onnx(_onnx_model("Relu", opset=16)))
    assert any("DFT" in p for p in lint_onnx(_onnx_model("DFT")))
    assert any("cubic" in p for p in lint_onnx(_onnx_model("Resize", mode="cubic")))
    assert lint_onnx(_onnx_model("Resize", mode="linear")) == []
    assert any("com.microsoft" in p for p in lint_onnx(_onnx_model("Gelu", domain="com.microsoft")))


def test_parity_figures_on_photos():
    photos = parity_photos(112)
    assert photos.shape == (3, 3, 112, 112) and photos.dtype == np.float32 and 0 <= photos.min() < photos.max() <= 1
    assert photos.std() > 0.1  # real pictures, not flat fields
    same = parity_figures(photos, photos)
    assert same["max_abs_diff"] == 0 and same["psnr_db_min"] == 100.0
    noisy = parity_figures(photos, photos + 0.01)
    assert 39.9 < noisy["psnr_db_min"] < 40.1
    bad = photos.copy()
    bad[0, 0, 0, 0] = np.nan
    assert parity_figures(photos, bad)["nan_or_inf"] == 1


PROFILES = sorted((Path(__file__).resolve().parents[1] / "export").glob("*.yaml"))


def test_every_target_profile_loads_and_names_a_known_target():
    from dramnet_edge.export.profile import load_profile

    names = {p.stem for p in PROFILES}
    assert {"jetson-orin-int8", "desktop-trt-fp16", "coreml-fp16", "openvino-int8", "openvino-fp32"} <= names
    for path in PROFILES:
        prof = load_profile(path)
        fmt = get_format(prof.target)
        assert prof.precision in fmt.precisions and prof.fft in fmt.fft_forms, path.name
        assert not (prof.dynamic_batch and not fmt.dynamic_batch), path.name


def test_profile_rejects_unknown_keys(tmp_path):
    from dramnet_edge.export.profile import load_profile

    bad = tmp_path / "p.yaml"
    bad.write_text("target: onnx\nprecison: fp16\n")
    with pytest.raises(ValueError, match="unknown key.*precison.*accepted: target, precision"):
        load_profile(bad)


def test_cli_flags_override_the_profile(tmp_path):
    base = ["--profile", str(next(p for p in PROFILES if p.stem == "coreml-fp16"))]
    # the profile's static batch gives way to --dynamic-batch, which coreml then rejects by name
    result = CliRunner().invoke(export, base + ["--dynamic-batch", "-o", str(tmp_path / "m.mlpackage")])
    assert result.exit_code == 2 and "--dynamic-batch is not available for --target coreml" in result.output
    # the profile's target gives way to --target, whose suffix rule then applies
    result = CliRunner().invoke(export, base + ["--target", "onnx", "-o", str(tmp_path / "m.mlpackage")])
    assert result.exit_code == 2 and "does not end in .onnx" in result.output
    # the Jetson profile asks for INT8, so the INT8 flags apply (a missing calibration folder stops it before any
    # work) ...
    jetson = ["--profile", str(next(p for p in PROFILES if p.stem == "jetson-orin-int8")), "-o",
              str(tmp_path / "m.engine")]
    result = CliRunner().invoke(export, jetson + ["--calib-data", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "nope: no such directory" in result.output
    # ... until --precision overrides it
    result = CliRunner().invoke(export, jetson + ["--precision", "fp16", "--budget-db", "0.3"])
    assert result.exit_code == 2 and "apply to --precision int8, not fp16" in result.output
    assert not list(tmp_path.iterdir())


def test_help_documents_the_int8_options():
    result = CliRunner().invoke(export, ["--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "--calib-data PATH" in text and "--budget-db FLOAT RANGE" in text and "[default: 0.1; x>0.0]" in text
    assert "coreml gets W8A8" in text and "OUTPUT.report.json" in text


def test_missing_calibration_library_names_the_install(tmp_path, monkeypatch):
    _hide_modules(monkeypatch, "nncf")
    result = CliRunner().invoke(export, ["--target", "tensorrt", "--int8", "-o", str(tmp_path / "m.engine")])
    assert result.exit_code == 2
    assert 'calibrates with nncf, which is not installed here: pip install "dramnet-edge[openvino]"' in result.output
    assert not list(tmp_path.iterdir())


def test_deblur_backend_helpers_give_one_line_errors(tmp_path):
    from dramnet_edge.cli._common import deblur_backend_choices
    from dramnet_edge.runtime.session import open_artifact_session

    assert deblur_backend_choices() == ["torch", "onnxruntime", "tensorrt", "torch-tensorrt", "coreml", "openvino"]
    with pytest.raises(ValueError, match="give --artifact PATH"):
        open_artifact_session("onnxruntime", None)
    with pytest.raises(ValueError, match="--model/--checkpoint select a PyTorch model"):
        open_artifact_session("onnxruntime", tmp_path / "m.onnx", model="dramnet_tiny")
    with pytest.raises(ValueError, match="artifact not found"):
        open_artifact_session("onnxruntime", tmp_path / "m.onnx")


def test_checkpoint_at_another_tile_is_retiled(tmp_path):
    import torch

    from dramnet_edge.weights import load_export_model
    from dramnet_edge.models import create_model
    from dramnet_edge.models.checkpoint import save_weights

    torch.manual_seed(0)
    src = create_model("dramnet_tiny", tile=112).eval()
    save_weights(src, tmp_path / "t.safetensors")
    notes = []
    net, name, source = load_export_model(None, tmp_path / "t.safetensors", 224, warn=notes.append)
    assert name == "dramnet_tiny" and source == tmp_path / "t.safetensors" and net.tile == 224
    assert net.encoder.pos_embed.shape[1] == 1 + 16 * 16 and "resampling position embeddings" in notes[0]
    assert torch.equal(net.head.weight, src.head.weight)
    same, _, _ = load_export_model(None, tmp_path / "t.safetensors", 112, warn=notes.append)
    assert same.tile == 112 and len(notes) == 1
    # No tile asked: the weights' own tile, nothing resampled (the export and calibrate CLIs' default).
    own, _, _ = load_export_model(None, tmp_path / "t.safetensors", None, warn=notes.append)
    assert own.tile == 112 and len(notes) == 1
    fresh, _, none = load_export_model("dramnet_s", None, None, warn=notes.append)
    assert none is None and fresh.tile == 224 and "random" in notes[-1]


def test_export_cli_defaults_to_the_weights_own_tile(tmp_path):
    from click.testing import CliRunner

    from dramnet_edge.cli import main
    from dramnet_edge.export.profile import ExportProfile

    assert ExportProfile.from_dict({"target": "onnx"}).tile is None
    param = next(p for p in main.commands["export"].params if p.name == "tile")
    assert param.default is None
    bad = CliRunner().invoke(main, ["export", "--target", "onnx", "--tile", "150", "-o", str(tmp_path / "m.onnx")])
    assert bad.exit_code == 2 and "150" in bad.output


def test_tensorrt_install_hint_names_the_jetpack_route():
    hint = get_format("tensorrt").install_hint()
    assert 'pip install "dramnet-edge[tensorrt]" on a CUDA host' in hint
    assert "python3-libnvinfer" in hint and "--system-site-packages" in hint
    assert get_format("onnx").install_hint() == 'pip install "dramnet-edge[onnx]"'
