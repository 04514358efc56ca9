"""INT8 end to end on dramnet_tiny at tile 112: Q/DQ form, sensitive ops, TensorRT lint, ONNX Runtime parity, the
accuracy-bounded fallback, the report, OpenVINO's INT8 IR, and the TensorRT engine where TensorRT exists.

One FP32 export (module fixture, one decoder column to keep it ~1 min on 2 shared cores) and one small calibration
through ``calibrate(onnx=...)`` feed every test. Weights are random with trained-looking residual scales and a
non-zero head (DRAMNet zero-initialises it, and a model that returns its input hides every quantization error): the
numbers here check mechanics, not the quality of a trained model (benchmarks/int8_quality.py measures that).
"""

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from dramnet_edge.calibrate.fallback import DropEvaluator, run_fallback
from dramnet_edge.calibrate.graph import analyse_graph, weight_aliases
from dramnet_edge.calibrate.pipeline import GRAPHS, _max_blur, calibrate, export_fp32_graphs
from dramnet_edge.calibrate.quantize import (QuantSettings, batches, check_qdq_for_tensorrt, inspect_qdq, load_onnx,
                                             modelopt_available, quantize_onnx, quantized_nodes, revert_nodes)
from dramnet_edge.calibrate.recipe import CalibrationRecipe
from dramnet_edge.calibrate.runner import OnnxGraph
from dramnet_edge.calibrate.tiles import build_calibration_set
from dramnet_edge.export.formats import get_format
from dramnet_edge.export.lint import lint_onnx
from dramnet_edge.export.sidecar import build_sidecar, parity_photos, write_sidecar
from dramnet_edge.export.trt_conformance import check_tensorrt_conformance
from dramnet_edge.models import create_model

from test_export_fold import trained_like

TILE = 112
RECIPE = CalibrationRecipe(tiles=9, holdout=3, candidates_per_tile=1)
FIXTURE_BUDGET_DB = 0.06


def _photo_folder(folder):
    """Two scikit-image photos that are not the parity photos, as a --calib-data folder."""
    import cv2
    import skimage.data

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("rocket", "immunohistochemistry"):
        cv2.imwrite(str(folder / f"{name}.png"), getattr(skimage.data, name)()[..., ::-1])
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores: spinning OpenMP threads slow everything down badly
    d = tmp_path_factory.mktemp("int8")
    torch.manual_seed(0)
    net = trained_like(create_model("dramnet_tiny", tile=TILE, num_columns=1))
    with torch.no_grad():  # the head starts at zero (an untrained DRAMNet returns its input): make INT8 visible
        net.head.weight.copy_(torch.randn(net.head.weight.shape, generator=torch.Generator().manual_seed(2)) * 0.05)
    fp32_paths, folded = export_fp32_graphs(net, d / "fp32")
    # an FP32 `export --target onnx` layout with its sidecar, so calibrate() reads it like --onnx does
    sidecar = build_sidecar(target="onnx", backend="onnxruntime", model_name="dramnet_tiny", checkpoint=None,
                            tile=TILE, precision="fp32", fft="dft", tau=None, batch="dynamic",
                            graphs={g: p.name for g, p in fp32_paths.items()}, opset=18, parity=None)
    write_sidecar(d / "fp32" / "m.onnx.json", sidecar)
    out = d / "q" / "m.int8.onnx"
    # Calibrated on a folder of photos (no ground truth), the drop is measured against the FP32 output: above zero
    # whenever INT8 changes anything, on any CPU (~0.10 dB here). Against ground truth a random-weight model's
    # drop is noise around zero whose sign depends on the CPU's INT8 kernels (-0.003 dB on this machine, -0.005 on
    # an AVX-512/VNNI one), which left the fallback nothing to do there. 0.06 dB sits well below the measured drop
    # and above what reverting the most sensitive group leaves (~0.04 dB), so the fallback reverts and meets it.
    report = calibrate(output=out, onnx=fp32_paths["model"], calib_data=_photo_folder(d / "photos"), recipe=RECIPE,
                       budget_db=FIXTURE_BUDGET_DB, max_evals=12, threads=1)
    yield SimpleNamespace(net=net, folded=folded, fp32=fp32_paths, out=out, report=report,
                          paths=get_format("onnx").artifact_paths(out), dir=d)
    torch.set_num_threads(threads)


def _arrays(model):
    from onnx import numpy_helper

    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def test_the_gate_graph_stays_fp32_beside_the_int8_graphs(run):
    assert run.paths["gate"].is_file()
    assert not quantized_nodes(load_onnx(run.paths["gate"]))
    sidecar = json.loads(get_format("onnx").sidecar_path(run.out).read_text())
    assert sidecar["graphs"]["gate"] == run.paths["gate"].name


def test_qdq_is_symmetric_int8_per_channel_with_zero_points_zero(run):
    for g, path in ((g, p) for g, p in run.paths.items() if g != "gate"):  # the gate stays FP32 (test above)
        model = load_onnx(path)
        consts = _arrays(model)
        producer = {o: n for n in model.graph.node for o in n.output}
        weights = activations = 0
        for node in model.graph.node:
            if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
                continue
            zp = consts[node.input[2]]
            assert zp.dtype == np.int8 and not zp.any(), (g, node.name)
            src = node.input[0]
            q = producer.get(src)
            weight = consts.get(src) if src in consts else (consts.get(q.input[0]) if q is not None and
                                                             q.op_type == "QuantizeLinear" else None)
            if weight is not None:  # a weight: its DequantizeLinear (and NNCF's QuantizeLinear) per output channel
                axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
                assert consts[node.input[1]].size == weight.shape[axis], (g, node.name)
                if weight.dtype == np.int8:
                    assert weight.min() >= -127  # symmetric: -128 never used
                weights += node.op_type == "DequantizeLinear"
            elif node.op_type == "QuantizeLinear":
                activations += 1
                assert consts[node.input[1]].size == 1  # per-tensor activation scale
        assert weights > 0 and activations > 0, g
        info = inspect_qdq(path)
        assert info["problems"] == [] and info["zero_point_dtypes"] == ["int8"]
        assert info["weights"]["per_tensor"] == 0


def test_sensitive_ops_stay_float(run):
    for g in GRAPHS:
        layers = analyse_graph(load_onnx(run.fp32[g]), weight_aliases(run.folded))
        quantized = set(quantized_nodes(load_onnx(run.paths[g])))
        assert quantized and not quantized & set(layers.sensitive), g
        kinds = set(layers.sensitive.values())
        if g in ("model", "decoder_full", "decoder_light"):
            assert {"dft", "last_conv"} <= kinds
        if g in ("model", "encoder"):
            assert {"softmax_attention", "blur_map_head"} <= kinds
    layers = analyse_graph(load_onnx(run.fp32["model"]), weight_aliases(run.folded))
    dft = [layers.label_of[n] for n, k in layers.sensitive.items() if k == "dft"]
    assert sum("fourier.spectral" in lbl for lbl in dft) == 8  # 4 levels x 2 spectral convs, between the DFTs
    assert [layers.label_of[n] for n, k in layers.sensitive.items() if k == "blur_map_head"] == \
        ["blur_map.blocks.0.head"]
    assert [layers.label_of[n] for n, k in layers.sensitive.items() if k == "last_conv"] == ["head"]


def test_qdq_graphs_pass_the_tensorrt_lint(run):
    for g, path in run.paths.items():
        assert lint_onnx(path) == [], g
        check_qdq_for_tensorrt(path)
    # and the check does catch what TensorRT rejects: a uint8 zero-point
    from onnx import numpy_helper

    model = load_onnx(run.paths["encoder"])
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear")
    zp = next(i for i in model.graph.initializer if i.name == q.input[2])
    zp.CopyFrom(numpy_helper.from_array(np.zeros((), np.uint8), zp.name))
    with pytest.raises(ValueError, match="not ready for TensorRT.*zero-point is uint8"):
        check_qdq_for_tensorrt(model, name="m.int8.encoder.onnx")


def test_onnxruntime_runs_it_and_psnr_vs_fp32_is_sane(run):
    from dramnet_edge.calibrate.fallback import psnr_db
    from dramnet_edge.runtime.session import open_session

    photos = parity_photos(TILE)
    fp32, _ = open_session("onnxruntime", artifact=str(run.fp32["model"])).infer(photos, None)
    int8, exited = open_session("onnxruntime", artifact=str(run.out)).infer(photos, None)
    assert np.isfinite(int8).all() and not exited.any()
    assert psnr_db(int8, fp32).min() > 30.0
    sidecar = json.loads(run.out.with_name(run.out.name + ".json").read_text())
    assert sidecar["precision"] == "int8" and sidecar["target"] == "onnx"
    assert sidecar["graphs"] == {g: p.name for g, p in run.paths.items()}
    assert sidecar["quantization"]["scheme"].startswith("int8 symmetric")
    assert sidecar["parity"]["ok"] and sidecar["parity"]["model"]["nan_or_inf"] == 0


def test_report_holds_strata_sensitivity_reverts_and_drops(run):
    json_path = run.out.with_name("m.int8.onnx.report.json")
    md_path = run.out.with_name("m.int8.onnx.report.md")
    report = json.loads(json_path.read_text())
    cal = report["calibration"]
    assert sum(cal["calibration_strata"].values()) == cal["calibration_tiles"] == RECIPE.tiles
    assert sum(cal["holdout_strata"].values()) == cal["holdout_tiles"] == RECIPE.holdout
    assert set(cal["calibration_strata"]) == {"sharp", "mild", "heavy"}
    fb = report["fallback"]
    assert fb["evaluations"] <= 12 and isinstance(fb["reverted"], list)
    assert fb["initial"]["drop_db_mean"] > report["budget_db"]  # so the fallback had work to do
    assert fb["sensitivity"] and {"group", "gain_db", "drop_db_mean"} <= set(fb["sensitivity"][0])
    assert fb["reverted"] and fb["history"] and fb["met"]
    assert report["final"]["model"]["drop_db_mean"] <= report["budget_db"] + 1e-3
    for key in ("model", "split_full", "split_light"):
        assert {"drop_db_mean", "drop_db_worst", "worst_tile", "psnr_vs_fp32_db_min"} <= set(report["final"][key])
    assert report["settings"]["library"] == "nncf" and report["settings"]["method"] == "minmax"
    md = md_path.read_text()
    assert "budget" in md and "Sensitivity per layer group" in md and "| sharp |" in md
    # the reverted groups are left float in every graph, consistently
    aliases = weight_aliases(run.folded)
    for g in GRAPHS:
        layers = analyse_graph(load_onnx(run.fp32[g]), aliases)
        reverted = set(layers.nodes_in(fb["reverted"], fb["level"]))
        assert not reverted & set(quantized_nodes(load_onnx(run.paths[g]))), g


@pytest.fixture(scope="module")
def fallback_setup(run):
    """The ORT library's fully quantized whole-model graph (sensitive nodes aside) and a held-out evaluator."""
    encoder = OnnxGraph(run.fp32["encoder"], threads=1)
    cs = build_calibration_set(TILE, lambda t: _max_blur(encoder.run_named({"x": t})["blur"]), RECIPE)
    fp32 = load_onnx(run.fp32["model"])
    layers = analyse_graph(fp32, weight_aliases(run.folded))
    path = run.dir / "all.ort.onnx"
    quantize_onnx(run.fp32["model"], path, batches({"x": cs.calib.blurred}, None), settings=QuantSettings("ort"),
                  exclude=layers.sensitive_nodes())
    fp32_hold = OnnxGraph(fp32, threads=1).run({"x": cs.holdout.blurred})[0]
    # against the FP32 output (sharp=None): a drop above zero on any CPU, so "reverts are needed" always holds
    evaluator = DropEvaluator({"x": cs.holdout.blurred}, fp32_hold, None, threads=1)
    return SimpleNamespace(qdq=load_onnx(path), fp32=fp32, layers=layers, evaluate=evaluator, path=path)


def test_ort_library_gives_the_same_scheme(fallback_setup):
    info = inspect_qdq(fallback_setup.path)
    assert info["problems"] == [] and info["quantized_nodes"] > 0
    assert not set(quantized_nodes(fallback_setup.qdq)) & set(fallback_setup.layers.sensitive)


def test_reverting_every_group_gives_the_fp32_graph_back(fallback_setup):
    s = fallback_setup
    everything = revert_nodes(s.qdq, s.fp32, s.layers.nodes_in(s.layers.groups()))
    assert not quantized_nodes(everything)
    stats = s.evaluate(everything)
    assert stats.psnr_vs_fp32_min >= 99.0 and abs(stats.mean) < 1e-4


def test_fallback_stops_within_a_toy_budget_and_reports_reverts(fallback_setup):
    s = fallback_setup
    tight = run_fallback(s.qdq, s.fp32, s.layers, s.evaluate, budget_db=1e-4, max_evals=5)
    assert tight.initial.mean > 1e-4  # the quantized graph does lose something, so reverts are needed
    assert tight.evaluations <= 5 and tight.met and tight.reverted and tight.history
    assert tight.final.mean <= 1e-4 and tight.history[-1]["drop_db_mean"] == round(tight.final.mean, 4)
    # 5 evaluations: the quantized graph, 3 groups' sensitivity, then one last step that reverts the rest
    assert len(tight.sensitivity) == 3 and len(tight.history) == 1
    loose = run_fallback(s.qdq, s.fp32, s.layers, s.evaluate, budget_db=50.0, max_evals=4)
    assert loose.met and loose.reverted == [] and loose.history == [] and loose.evaluations == 1


def _reuse_fp32_graphs(run, monkeypatch):
    """Make the exporter copy the fixture's FP32 ONNX graphs instead of exporting them again (the dynamo export is
    tested in test_export_onnx.py and takes a minute here); calibration, conversion and checks all run for real.
    The fixture's graphs are those of ``run.net``, the model every test here exports."""
    from dramnet_edge.export import exporter

    def copy_fixture_graphs(graphs, folded, paths, **kwargs):
        for g, p in paths.items():
            shutil.copy(run.fp32[g], p)

    monkeypatch.setattr(exporter, "_export_onnx_graphs", copy_fixture_graphs)


def _small_calibration(monkeypatch, **extra):
    from dramnet_edge.calibrate import pipeline

    original = pipeline.quantize_for_export
    small = {"recipe": RECIPE, "max_evals": 3, "threads": 1, **extra}
    monkeypatch.setattr(pipeline, "quantize_for_export", lambda *a, **k: original(*a, **{**k, **small}))


def test_openvino_int8_export_compiles_runs_and_reports(run, tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    from dramnet_edge.deploy.export import export_model

    _reuse_fp32_graphs(run, monkeypatch)
    _small_calibration(monkeypatch)
    out = tmp_path / "m.xml"
    # a loose budget: this checks the IR path, not how far a random-weight model can go in INT8
    sidecar = export_model(run.net, target="openvino", output=out, precision="int8", budget_db=3.0,
                           model_name="dramnet_tiny")
    xml_paths = get_format("openvino").artifact_paths(out)
    assert all(p.is_file() and p.with_suffix(".bin").is_file() for p in xml_paths.values())
    assert all(info["fake_quantize"] > 0 for info in sidecar["openvino_int8"].values())
    assert sidecar["precision"] == "int8" and sidecar["source"] == "onnx" and sidecar["quantization"]["budget_db"] == 3.0
    assert sidecar["report"] == "m.xml.report.json" and (tmp_path / "m.xml.report.md").is_file()
    # parity of the written IR through the openvino runtime backend, against PyTorch (measured, not skipped)
    parity = sidecar["parity"]
    for g in ("model", "full", "light"):
        assert parity[g]["nan_or_inf"] == 0 and parity[g]["psnr_db_min"] > 25.0, (g, parity[g])
    report = json.loads((tmp_path / "m.xml.report.json").read_text())
    assert report["fallback"]["openvino"][0]["step"] == 0  # OpenVINO-in-the-loop steps are reported
    final = report["final"]  # measured on the compiled IR
    for key in ("model", "split_full", "split_light"):
        assert final[key]["nonfinite_outputs"] == 0 and final[key]["psnr_vs_fp32_db_min"] > 25.0, key
    assert final["blur_score_max_abs_diff"] < 0.05


def _tensorrt_ready() -> bool:
    from dramnet_edge.export.onnx2engine import tensorrt_version

    return tensorrt_version() is not None and torch.cuda.is_available()


@pytest.mark.tensorrt
@pytest.mark.skipif(not _tensorrt_ready(), reason="needs the tensorrt package and a CUDA device")
def test_tensorrt_builds_an_engine_from_the_qdq_onnx(run, tmp_path):
    from dramnet_edge.export.onnx2engine import build_engine

    info = build_engine(run.paths["model"], tmp_path / "m.int8.engine", precision="int8", batch="dynamic")
    assert (tmp_path / "m.int8.engine").stat().st_size > 0 and info["tensorrt"]


def _tensorrt_int8_on_a_host_without_tensorrt(run, tmp_path, monkeypatch, extra_args: list[str]) -> dict:
    """`export --target tensorrt --int8 EXTRA` where TensorRT is missing: exit 2 with the install hint as the one
    Error line, every graph of the Q/DQ ONNX the engines would be built from ready for TensorRT 10.3 (Q/DQ rules,
    lint, operators and opset), no engine written. Returns the calibration report."""
    from dramnet_edge.cli.export import export
    from dramnet_edge.export import onnx2engine
    from dramnet_edge.models.checkpoint import save_weights

    _reuse_fp32_graphs(run, monkeypatch)
    monkeypatch.setattr(onnx2engine, "tensorrt_version", lambda: None)
    save_weights(run.net, tmp_path / "tiny.safetensors")
    out = tmp_path / "trt" / "m.engine"
    result = CliRunner().invoke(export, ["--checkpoint", str(tmp_path / "tiny.safetensors"), "--target", "tensorrt",
                                         "--int8", *extra_args, "--tile", str(TILE), "-o", str(out)])
    assert result.exit_code == 2, result.output
    error = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(error) == 1 and 'pip install "dramnet-edge[tensorrt]" on a CUDA host' in error[0], result.output
    paths = get_format("onnx").artifact_paths(out.with_name("m.engine.onnx"))
    for g, p in paths.items():
        check_qdq_for_tensorrt(p)
        assert lint_onnx(p) == [] and (g == "gate" or quantized_nodes(load_onnx(p)))
        assert check_tensorrt_conformance(p)["problems"] == []  # TensorRT 10.3: operators, opset, Q/DQ rules
    assert not out.exists()
    return json.loads((tmp_path / "trt" / "m.engine.report.json").read_text())


def test_tensorrt_int8_without_tensorrt_writes_the_qdq_onnx_then_hints(run, tmp_path, monkeypatch):
    """The Jetson workflow's host half: `export --target tensorrt --int8` calibrates the Q/DQ ONNX the engines are
    built from (here with the ORT library), checks it for TensorRT, then says what to install."""
    _small_calibration(monkeypatch, settings=QuantSettings("ort", "minmax"))
    report = _tensorrt_int8_on_a_host_without_tensorrt(run, tmp_path, monkeypatch, [])
    assert report["settings"]["library"] == "ort" and report["source"] == "export --target tensorrt --precision int8"


@pytest.mark.skipif(not modelopt_available(), reason="needs nvidia-modelopt[onnx] (the modelopt extra)")
def test_tensorrt_int8_with_the_modelopt_quantizer_writes_a_conformant_qdq_onnx(run, tmp_path, monkeypatch):
    """`export --target tensorrt --int8 --quantizer modelopt` on a host without TensorRT: ModelOpt's Q/DQ ONNX for
    all four graphs, through the fallback, checked for TensorRT 10.3, recorded in the report."""
    _small_calibration(monkeypatch)
    report = _tensorrt_int8_on_a_host_without_tensorrt(run, tmp_path, monkeypatch,
                                                       ["--quantizer", "modelopt", "--budget-db", "1.0"])
    assert report["settings"]["library"] == "modelopt" and "TensorRT placement" in report["settings"]["placement"]


@pytest.mark.slow
def test_export_int8_onnx_through_the_cli_with_calib_data_and_budget(run, tmp_path, monkeypatch):
    from dramnet_edge.cli.export import export
    from dramnet_edge.models.checkpoint import save_weights

    _reuse_fp32_graphs(run, monkeypatch)
    _small_calibration(monkeypatch)
    photos = _photo_folder(tmp_path / "photos")
    save_weights(run.net, tmp_path / "tiny.safetensors")
    out = tmp_path / "m.int8.onnx"
    result = CliRunner().invoke(export, ["--checkpoint", str(tmp_path / "tiny.safetensors"), "--target", "onnx",
                                         "--int8", "--tile", str(TILE), "--calib-data", str(photos), "--budget-db",
                                         "1.0", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "INT8 drop" in result.output and "m.int8.onnx.report.json" in result.output
    sidecar = json.loads(out.with_name(out.name + ".json").read_text())
    assert sidecar["precision"] == "int8" and sidecar["quantization"]["budget_db"] == 1.0
    assert sidecar["parity"]["model"]["nan_or_inf"] == 0 and sidecar["parity"]["ok"]
    report = json.loads((tmp_path / "m.int8.onnx.report.json").read_text())
    assert report["calibration"]["source"] == f"image folder {photos}" and not report["calibration"]["ground_truth"]
    # the budget decided: the fully quantized graph is within 1 dB, nothing reverted (its drop against the FP32
    # output is ~0.1 dB: comparing it with the default 0.1 dB budget would depend on the CPU's INT8 kernels)
    fb = report["fallback"]
    assert report["budget_db"] == 1.0 and 0.0 < fb["initial"]["drop_db_mean"] <= 1.0
    assert fb["met"] and fb["reverted"] == [] and report["final"]["model"]["drop_db_mean"] <= 1.0
    assert report["final"]["model"]["worst_tile"].split("@")[0] in ("rocket.png", "immunohistochemistry.png")
    for g, p in get_format("onnx").artifact_paths(out).items():
        assert inspect_qdq(p)["problems"] == [] and (g == "gate" or quantized_nodes(load_onnx(p)))
