"""ONNX export end to end and everything built from it: sidecar, lint, ONNX Runtime backend (tiled deblur == torch),
typed FP16 with FP32 islands, OpenVINO IR, the TensorRT target on a machine without TensorRT, CoreML conversion.

One export through the CLI (module fixture) feeds every test: the dynamo exporter takes ~1 min on 2 shared cores.
The model is dramnet_tiny at tile 112 with one decoder column and trained-looking residual scales and BatchNorm
statistics (a random init leaves the decoder's STM branches at exactly zero, which would hide errors).
"""

import json
import os
import platform
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from dramnet_edge.cli.export import export
from dramnet_edge.export import exporter
from dramnet_edge.runtime import parity as runtime_parity
from dramnet_edge.export.formats import get_format
from dramnet_edge.export.lint import lint_onnx
from dramnet_edge.export.trt_conformance import check_tensorrt_conformance
from dramnet_edge.export.sidecar import SIDECAR_FORMAT, parity_photos
from dramnet_edge.models import create_model
from dramnet_edge.models.checkpoint import file_sha256, save_weights
from dramnet_edge.runtime.session import TorchSession, open_session
from dramnet_edge.runtime.tiling import deblur_image

from test_export_fold import trained_like

TILE = 112


def _tensorrt_ready() -> bool:
    from dramnet_edge.export.onnx2engine import tensorrt_version

    return tensorrt_version() is not None and torch.cuda.is_available()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores: spinning OpenMP threads make everything ~100x slower
    d = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(0)
    net = trained_like(create_model("dramnet_tiny", tile=TILE, num_columns=1))
    ckpt = d / "tiny.safetensors"
    save_weights(net, ckpt)
    photos = torch.from_numpy(parity_photos(TILE))
    with torch.no_grad():
        maxima = net.encode(photos)[1][0].flatten(1).amax(1)
    lowest = maxima.sort().values
    # Splits the parity photos (one exits) with a margin far above FP16's resolution: a tile whose blur score sits
    # right at tau may flip path under reduced precision, which is real but not what these tests measure.
    tau = float(lowest[:2].mean())
    # No --tau: the baked-tau whole-model graph would hold both decoders and double the export time; the runtime
    # applies tau itself (tested below), and the baked form is tested on the torch graphs in test_export_fold.
    result = CliRunner().invoke(export, [
        "--checkpoint", str(ckpt), "--target", "onnx", "--tile", str(TILE), "--dynamic-batch", "-o", str(d / "m.onnx")])
    assert result.exit_code == 0, result.output
    yield SimpleNamespace(dir=d, net=net, ckpt=ckpt, tau=tau, output=result.output,
                          sidecar=json.loads((d / "m.onnx.json").read_text()))
    torch.set_num_threads(threads)


def _copy_as(exported, dest: Path, transform, **sidecar_changes) -> Path:
    """Write every graph of the fixture through ``transform(src, dst)`` into ``dest`` with an edited sidecar."""
    dest.mkdir(parents=True, exist_ok=True)
    fmt = get_format(sidecar_changes.get("target", "onnx"))
    paths = fmt.artifact_paths(dest / f"m{fmt.suffix}")
    for graph, name in exported.sidecar["graphs"].items():
        transform(exported.dir / name, paths[graph])
    sidecar = {**exported.sidecar, **sidecar_changes, "graphs": {g: p.name for g, p in paths.items()}}
    sidecar.pop("files")  # the transformed graphs are not the hashed ones: a sidecar without hashes, as before them
    (dest / "m.json").write_text(json.dumps(sidecar))
    return dest / "m.json"


def test_sidecar_records_the_export(exported):
    s = exported.sidecar
    assert s["format"] == SIDECAR_FORMAT and s["target"] == "onnx" and s["backend"] == "onnxruntime"
    assert s["model"] == "dramnet_tiny" and s["tile"] == TILE and s["precision"] == "fp32" and s["fft"] == "dft"
    assert s["tau"] is None and s["opset"] == 18 and s["batch"] == "dynamic"
    assert s["checkpoint"] == "tiny.safetensors" and s["checkpoint_sha256"] == file_sha256(exported.ckpt)
    assert s["graphs"] == {"model": "m.onnx", "encoder": "m.encoder.onnx", "decoder_full": "m.decoder_full.onnx",
                           "decoder_light": "m.decoder_light.onnx", "gate": "m.gate.onnx"}
    assert all((exported.dir / f).is_file() for f in s["graphs"].values())
    assert {"dramnet_edge", "torch", "onnx", "onnxruntime"} <= set(s["versions"])
    assert s["fold"] == {"fft": "dft", "batchnorm_folded": 8, "fft_replaced": 8}
    assert all(v > 0 for v in s["size_bytes"].values())
    p = s["parity"]
    assert p["ok"] and p["photos"] == ["astronaut", "coffee", "chelsea"]
    for graph in ("model", "full", "light", "gate"):  # onnxruntime FP32: ~1e-6 here; the bar is 1e-4 / 50 dB
        assert p[graph]["max_abs_diff"] <= 1e-4 and p[graph]["psnr_db_min"] >= 50 and p[graph]["nan_or_inf"] == 0
    assert "parity ok" in exported.output


def test_sidecar_hashes_every_file_and_opening_names_a_damaged_one(exported, tmp_path):
    files = exported.sidecar["files"]
    assert set(files) == set(exported.sidecar["graphs"].values())
    assert all(len(e["sha256"]) == 64 and e["bytes"] > 0 for e in files.values())
    copy = tmp_path / "copy"
    shutil.copytree(exported.dir, copy)
    enc = copy / "m.encoder.onnx"
    enc.write_bytes(enc.read_bytes()[: enc.stat().st_size // 2])  # truncated in transfer
    with pytest.raises(ValueError, match=r"damaged: .*m\.encoder\.onnx"):
        open_session("onnxruntime", artifact=str(copy / "m.onnx"), threads=1)


def test_onnx_graphs_lint_clean_with_a_dynamic_batch(exported):
    from dramnet_edge.export.torch2onnx import onnx_graph_io, op_counts

    for graph, name in exported.sidecar["graphs"].items():
        path = exported.dir / name
        assert lint_onnx(path) == [], graph
        assert "DFT" not in op_counts(path) and "LayerNormalization" in op_counts(path) or graph in ("encoder", "gate")
        io = onnx_graph_io(path)
        assert io["batch"] == "dynamic"
        if graph.startswith("decoder"):
            assert io["inputs"] == ["x", "level0", "level1", "level2", "level3", "blur"] and io["outputs"] == ["image"]
        if graph == "gate":
            assert io["inputs"] == ["x"] and io["outputs"] == ["blur"]


def test_onnxruntime_tiled_deblur_reproduces_torch(exported):
    import skimage.data
    from skimage.transform import resize

    photo = resize(skimage.data.coffee(), (200, 300), anti_aliasing=True).astype(np.float32).transpose(2, 0, 1)
    ort = open_session("onnxruntime", artifact=str(exported.dir / "m.onnx"), threads=1)
    assert ort.tile == TILE
    ref, ref_stats = deblur_image(TorchSession(exported.net), photo, tau=exported.tau, overlap=16, batch_size=4)
    out, stats = deblur_image(ort, photo, tau=exported.tau, overlap=16, batch_size=4)
    assert stats.exited == ref_stats.exited and stats.tiles == ref_stats.tiles
    mse = float(np.mean((out - ref) ** 2))
    assert 10 * np.log10(1.0 / max(mse, 1e-10)) >= 50


def test_onnxruntime_skip_and_light_paths_match_torch(exported):
    photos = parity_photos(TILE)
    ort = open_session("onnxruntime", artifact=str(exported.dir / "m.onnx.json"), threads=1, tau_skip=exported.tau)
    ref_session = TorchSession(exported.net, tau_skip=exported.tau)
    out, exited = ort.infer(photos, 1.0)  # every tile exits: one skipped (below tau_skip), the others light
    ref, ref_exited = ref_session.infer(photos, 1.0)
    assert exited.all() and ref_exited.all()
    assert ort.path_counts == ref_session.path_counts == {"full": 0, "light": 2, "skip": 1}
    assert np.abs(out - ref).max() <= 1e-4


def test_the_gate_graph_spares_skipped_tiles_the_encoder(exported, monkeypatch):
    photos = parity_photos(TILE)
    ort = open_session("onnxruntime", artifact=str(exported.dir / "m.onnx.json"), threads=1, tau_skip=exported.tau)
    assert ort.has_gate
    calls = []
    run_graph = ort.run_graph
    monkeypatch.setattr(ort, "run_graph", lambda name, inputs: calls.append((name, len(inputs["x"]))) or
                        run_graph(name, inputs))
    out, exited = ort.infer(photos, None)
    assert calls[0] == ("gate", 3) and ("encoder", 2) in calls  # the skipped tile never reaches the encoder
    ref, ref_exited = TorchSession(exported.net, tau_skip=exported.tau).infer(photos, None)
    np.testing.assert_array_equal(exited, ref_exited)
    assert np.abs(out - ref).max() <= 1e-4
    # an artifact exported before the gate graph existed: same decisions from the encoder's blur map
    legacy = exported.dir.parent / "legacy"
    legacy.mkdir(exist_ok=True)
    sidecar = {**exported.sidecar, "graphs": {g: n for g, n in exported.sidecar["graphs"].items() if g != "gate"}}
    sidecar.pop("files")  # sidecars of that time held no file hashes either
    for name in sidecar["graphs"].values():
        shutil.copyfile(exported.dir / name, legacy / name)
    (legacy / "m.json").write_text(json.dumps(sidecar))
    old = open_session("onnxruntime", artifact=str(legacy / "m.json"), threads=1, tau_skip=exported.tau)
    assert not old.has_gate
    out_old, exited_old = old.infer(photos, None)
    np.testing.assert_array_equal(exited_old, ref_exited)
    assert np.abs(out_old - ref).max() <= 1e-4


def test_fp16_onnx_keeps_fp32_islands_and_40db(exported, tmp_path):
    import onnx
    from onnx import TensorProto

    from dramnet_edge.export.onnx_fp16 import convert_file_to_fp16

    side = _copy_as(exported, tmp_path / "fp16", lambda src, dst: convert_file_to_fp16(src, dst), precision="fp16")
    model = onnx.shape_inference.infer_shapes(onnx.load(str(tmp_path / "fp16" / "m.onnx")))
    types = {v.name: v.type.tensor_type.elem_type for v in list(model.graph.value_info) + list(model.graph.input)}
    types.update({i.name: i.data_type for i in model.graph.initializer})
    for node in model.graph.node:
        if node.op_type in ("LayerNormalization", "Softmax", "ReduceL2"):
            assert types[node.input[0]] == TensorProto.FLOAT, node.name
        if node.op_type == "Conv":
            assert types[node.input[1]] == TensorProto.FLOAT16, node.name
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert os.path.getsize(tmp_path / "fp16" / "m.onnx") < 0.6 * os.path.getsize(exported.dir / "m.onnx")

    session = open_session("onnxruntime", artifact=str(side), threads=1)
    photos = parity_photos(TILE)
    refs = runtime_parity.parity_references(exported.net, photos, exported.tau)
    parity = runtime_parity.measure_parity(session, refs, photos, exported.tau, "fp16", model_tau=None)
    for graph in ("model", "full", "light"):
        assert parity[graph]["nan_or_inf"] == 0 and parity[graph]["psnr_db_min"] >= 40, (graph, parity[graph])
    assert parity["ok"]


def test_openvino_ir_from_the_dft_free_onnx(exported, tmp_path):
    from dramnet_edge.export.onnx2openvino import compile_openvino, onnx_to_openvino
    from dramnet_edge.runtime.backends_openvino import OpenVINOSession

    # A static batch of 2 for 3 photos: the session pads the last chunk and drops the padding.
    side = _copy_as(exported, tmp_path / "ov", lambda s, d: onnx_to_openvino(s, d, precision="fp32", batch=2),
                    target="openvino", backend="openvino", batch=2)
    session = OpenVINOSession(side, threads=1)  # INFERENCE_PRECISION_HINT f32: parity, not AMX bf16
    encoder_inputs = session._handles["encoder"][0].inputs
    assert [tuple(p.get_partial_shape().to_shape()) for p in encoder_inputs] == [(2, 3, TILE, TILE)]
    photos = parity_photos(TILE)
    refs = runtime_parity.parity_references(exported.net, photos, exported.tau)
    parity = runtime_parity.measure_parity(session, refs, photos, exported.tau, "fp32", model_tau=None)
    for graph in ("model", "full", "light"):
        assert parity[graph]["psnr_db_min"] >= 45, (graph, parity[graph])
    assert parity["exits_match"]

    import openvino as ov

    ir = ov.Core().read_model(str(tmp_path / "ov" / "m.xml"))
    ov.save_model(ir, str(tmp_path / "fp16.xml"), compress_to_fp16=True)
    assert os.path.getsize(tmp_path / "fp16.bin") < 0.6 * os.path.getsize(tmp_path / "ov" / "m.bin")
    request = compile_openvino(tmp_path / "fp16.xml", threads=1).create_infer_request()
    padded = np.concatenate([photos, photos[-1:]])  # static batch 2
    out = np.concatenate([next(iter(request.infer({"x": padded[i : i + 2]}).values())) for i in (0, 2)])[:3]
    mse = float(np.mean((np.clip(out, 0, 1) - np.clip(refs["full"], 0, 1)) ** 2))
    assert np.isfinite(out).all() and 10 * np.log10(1 / max(mse, 1e-10)) >= 40


def test_tensorrt_target_without_tensorrt_writes_linted_onnx_then_hints(exported, tmp_path, monkeypatch):
    from dramnet_edge.export import onnx2engine

    def copy_fixture_graphs(graphs, folded, paths, **kwargs):  # the export itself is tested above; save a minute
        for graph, name in exported.sidecar["graphs"].items():
            shutil.copy(exported.dir / name, paths[graph])

    monkeypatch.setattr(exporter, "_export_onnx_graphs", copy_fixture_graphs)
    monkeypatch.setattr(onnx2engine, "tensorrt_version", lambda: None)
    out = tmp_path / "trt" / "m.engine"
    result = CliRunner().invoke(export, ["--checkpoint", str(exported.ckpt), "--target", "tensorrt", "--precision",
                                         "fp32", "--tile", str(TILE), "--dynamic-batch", "-o", str(out)])
    assert result.exit_code == 2
    error = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(error) == 1 and 'pip install "dramnet-edge[tensorrt]" on a CUDA host' in error[0]
    assert str(out.with_name("m.engine.onnx")) in error[0]
    assert "TensorRT is not installed here" in result.output.splitlines()[0]  # said before any work
    for graph in ("m.engine.onnx", "m.engine.encoder.onnx", "m.engine.decoder_full.onnx", "m.engine.decoder_light.onnx"):
        assert lint_onnx(out.parent / graph) == []
        # what JetPack 6's TensorRT 10.3 parser takes: operator table, opset, Resize modes, constant axes
        assert check_tensorrt_conformance(out.parent / graph)["problems"] == []
    assert not out.exists()


@pytest.mark.tensorrt
@pytest.mark.skipif(not _tensorrt_ready(), reason="needs the tensorrt package and a CUDA device")
@pytest.mark.parametrize("precision,min_db", [("fp32", 50.0), ("fp16", 40.0)])
def test_tensorrt_engine_parity(exported, tmp_path, precision, min_db):
    out = tmp_path / f"m_{precision}.engine"
    result = CliRunner().invoke(export, ["--checkpoint", str(exported.ckpt), "--target", "tensorrt", "--precision",
                                         precision, "--tile", str(TILE), "--dynamic-batch", "-o", str(out)])
    assert result.exit_code == 0, result.output
    sidecar = json.loads(out.with_name(out.name + ".json").read_text())
    assert sidecar["parity"]["ok"] and sidecar["parity"]["model"]["psnr_db_min"] >= min_db
    assert (tmp_path / f"m_{precision}.timing.cache").is_file()


@pytest.mark.tensorrt
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs torch-tensorrt and a CUDA device")
def test_torch_tensorrt_program_parity(exported, tmp_path):
    pytest.importorskip("torch_tensorrt", reason="needs torch-tensorrt")
    out = tmp_path / "m.pt2"
    result = CliRunner().invoke(export, ["--checkpoint", str(exported.ckpt), "--target", "torch-tensorrt",
                                         "--tile", str(TILE), "--batch", "2", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "m.pt2.json").read_text())["parity"]["ok"]


def test_coreml_package_converts_and_loads_as_a_spec(exported, tmp_path):
    # convert_coreml's int8 = the FP16 ML program plus 8-bit weight quantization: one conversion covers both (each
    # takes ~15 s here). `export --int8` is W8A8 instead (calibrate.coreml_w8a8, tested below).
    precision = "int8"
    from dramnet_edge.export.fold import EncoderPart, example_inputs, fold_model
    from dramnet_edge.export.torch2coreml import convert_coreml, load_coreml_spec

    folded = fold_model(exported.net, "dft")
    graph = EncoderPart(folded).eval()
    path = tmp_path / "m.encoder.mlpackage"
    info = convert_coreml(graph, example_inputs(graph, folded, 1), path, input_names=graph.input_names,
                          output_names=graph.output_names, precision=precision)
    assert info["minimum_deployment_target"] == "iOS16"
    spec = load_coreml_spec(path)
    assert spec.WhichOneof("Type") == "mlProgram" and spec.specificationVersion >= 7  # iOS16 ML program
    assert [i.name for i in spec.description.input] == ["x"]
    assert [o.name for o in spec.description.output] == ["level0", "level1", "level2", "level3", "blur"]
    ops = {op.type for f in spec.mlProgram.functions.values() for b in f.block_specializations.values()
           for op in b.operations}
    assert any(o.startswith("constexpr_") for o in ops), ops  # weights stored as int8 + scale
    assert "conv" in ops and "matmul" in ops


def test_coreml_int8_export_is_w8a8_with_a_measured_drop(exported, tmp_path, monkeypatch):
    from dramnet_edge.calibrate import coreml_w8a8
    from dramnet_edge.calibrate.recipe import CalibrationRecipe
    from dramnet_edge.export.torch2coreml import load_coreml_spec

    small = CalibrationRecipe(tiles=4, holdout=2, candidates_per_tile=1)  # the default 64 + 48 take minutes here
    original = coreml_w8a8.export_coreml_w8a8
    monkeypatch.setattr(coreml_w8a8, "export_coreml_w8a8", lambda *a, **k: original(*a, **{**k, "recipe": small}))
    out = tmp_path / "m.mlpackage"
    result = CliRunner().invoke(export, ["--checkpoint", str(exported.ckpt), "--target", "coreml", "--int8",
                                         "--tile", str(TILE), "--budget-db", "0.5", "-o", str(out)])
    assert result.exit_code == 0, result.output
    sidecar = json.loads((tmp_path / "m.mlpackage.json").read_text())
    q = sidecar["quantization"]
    assert sidecar["precision"] == "int8" and sidecar["coreml"]["activations"] == "8-bit (W8A8)"
    assert q["library"] == "coremltools" and q["budget_db"] == 0.5 and q["met"] == (q["drop_db_mean"] <= 0.5)
    assert q["kept_float"] == ["blur_map_head", "dft", "last_conv"] and np.isfinite(q["drop_db_worst"])
    if platform.system() != "Darwin":
        assert "needs macOS" in sidecar["parity"]["skipped"] and "parity not measured" in result.output
    for graph, name in sidecar["graphs"].items():
        spec = load_coreml_spec(tmp_path / name)
        assert spec.WhichOneof("Type") == "mlProgram" and spec.specificationVersion >= 8, graph  # iOS17
        ops = {op.type for f in spec.mlProgram.functions.values() for b in f.block_specializations.values()
               for op in b.operations}
        assert {"quantize", "dequantize"} <= ops and any(o.startswith("constexpr_") for o in ops), (graph, ops)
        assert sidecar["coreml_w8a8"][graph]["activation_quantize_ops"] > 0
    report = json.loads((tmp_path / "m.mlpackage.report.json").read_text())
    assert set(report["graphs"]["encoder"]["kept_float"].values()) == {"blur_map_head"}
    assert set(report["graphs"]["decoder_full"]["kept_float"].values()) == {"dft", "last_conv"}
    final = report["final"]  # the W8A8 torch modules on the held-out tiles
    for key in ("model", "split_full", "split_light"):
        assert final[key]["nonfinite_outputs"] == 0 and final[key]["psnr_vs_fp32_db_min"] > 30.0, (key, final[key])
    assert report["calibration"]["calibration_tiles"] == 4 and report["budget_db"] == 0.5


@pytest.mark.macos
@pytest.mark.skipif(platform.system() != "Darwin", reason="CoreML prediction needs macOS")
@pytest.mark.parametrize("precision,min_db", [("fp16", 40.0), ("int8", 30.0)])
def test_coreml_prediction_parity(exported, tmp_path, precision, min_db):
    out = tmp_path / f"m_{precision}.mlpackage"
    result = CliRunner().invoke(export, ["--checkpoint", str(exported.ckpt), "--target", "coreml", "--precision",
                                         precision, "--tile", str(TILE), "-o", str(out)])
    assert result.exit_code == 0, result.output
    parity = json.loads(out.with_name(f"m_{precision}.json").read_text())["parity"]
    assert parity["ok"] and parity["model"]["psnr_db_min"] >= min_db


def test_deblur_cli_runs_an_exported_artifact(exported, tmp_path):
    from dramnet_edge import cli
    from dramnet_edge.cli.infer import deblur

    if "artifact" not in {p.name for p in deblur.params}:
        pytest.skip("deblur --artifact is not wired into cli.py yet")
    import cv2
    import skimage.data

    photo = skimage.data.chelsea()[:150, :200, ::-1]  # BGR for OpenCV
    cv2.imwrite(str(tmp_path / "cat.png"), photo)
    runner = CliRunner()
    args = [str(tmp_path / "cat.png"), "--tau", repr(exported.tau), "--overlap", "16"]
    ref = runner.invoke(cli.main, ["deblur", *args, "-o", str(tmp_path / "torch"), "--checkpoint", str(exported.ckpt)])
    assert ref.exit_code == 0, ref.output
    out = runner.invoke(cli.main, ["deblur", *args, "-o", str(tmp_path / "ort"), "--backend", "onnxruntime",
                                   "--artifact", str(exported.dir / "m.onnx")])
    assert out.exit_code == 0, out.output
    a = cv2.imread(str(tmp_path / "torch" / "cat.png")).astype(np.float64) / 255
    b = cv2.imread(str(tmp_path / "ort" / "cat.png")).astype(np.float64) / 255
    assert a.shape == b.shape == photo.shape
    assert 10 * np.log10(1 / max(np.mean((a - b) ** 2), 1e-12)) >= 45  # 8-bit rounding may differ by 1 level
    bad = runner.invoke(cli.main, ["deblur", *args, "-o", str(tmp_path / "x"), "--backend", "onnxruntime"])
    assert bad.exit_code == 2 and "--artifact" in bad.output
