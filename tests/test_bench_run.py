"""bench and validate end to end on tiny data: exit-policy parsing, JSON schema, absent backends reported as skipped,
Markdown and plots written; torch here, ONNX Runtime in test_bench_onnx.py."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from dramnet_edge.bench.bench import BASELINE, ExitPolicy, bench, parse_tau_list
from dramnet_edge.bench.photos import defocus_psf, half_sharp_set, motion_psf
from dramnet_edge.bench.validate import find_pairs, validate
from dramnet_edge.cli.bench import bench_command, validate_command
from dramnet_edge.data.io import write_image
from dramnet_edge.data.synthetic import SyntheticBlurConfig, make_synthetic_pairs
from dramnet_edge.models import create_model
from dramnet_edge.models.builder import load_model
from dramnet_edge.models.checkpoint import save_weights

RUN_KEYS = {"artifact", "backend", "precision", "tau", "latency_ms_p50", "latency_ms_p90", "exit_fraction", "psnr"}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# ------------------------------------------------------------------------------------------- tau lists

def test_tau_list_parsing():
    got = parse_tau_list("none, 0.3 ,0.1:0.3,0.1:,0.2:none,0.3")
    assert got == [BASELINE, ExitPolicy(0.3), ExitPolicy(0.3, 0.1), ExitPolicy(None, 0.1), ExitPolicy(None, 0.2)]
    assert [p.label for p in got] == ["none", "0.3", "0.1:0.3", "0.1:", "0.2:"]
    assert got[2].description == "skip<0.1, light<0.3"
    assert parse_tau_list("0.2")[0] == BASELINE  # the baseline is always there, first
    assert parse_tau_list(None) == [BASELINE]


@pytest.mark.parametrize("bad,match", [("abc", "not a number"), ("1.5", r"\[0, 1\]"), (":0.3", "skip threshold"),
                                       ("0.1:0.2:0.3", "at most one"), ("-0.1", r"\[0, 1\]")])
def test_bad_tau_items_are_named(bad, match):
    with pytest.raises(ValueError, match=match):
        parse_tau_list(f"none,{bad}")


# ------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    net = create_model("dramnet_tiny", tile=112, num_columns=1)
    path = d / "tiny.safetensors"
    save_weights(net, path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    for name, blurred, sharp in half_sharp_set(("coins",), max_side=200):
        write_image(d / "blur" / f"{name}.png", torch.from_numpy(blurred))
        write_image(d / "sharp" / f"{name}.png", torch.from_numpy(sharp))
    rng = np.random.default_rng(0)
    extra = rng.random((3, 100, 130), dtype=np.float32)
    write_image(d / "blur" / "noise.png", torch.from_numpy(extra))
    write_image(d / "sharp" / "noise.png", torch.from_numpy(extra))
    return d


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    d = tmp_path_factory.mktemp("pairs")
    make_synthetic_pairs(d, 2, split="val", seed=0, size=112, config=SyntheticBlurConfig(sharp_fraction=0.0))
    return d


def _fake_artifact(folder, target, suffix, backend):
    """A sidecar and an (empty) artifact file for a backend that cannot run here: enough to be reported skipped."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"m{suffix}").write_bytes(b"")
    graphs = {g: f"m.{g}{suffix}" if g != "model" else f"m{suffix}" for g in
              ("model", "encoder", "decoder_full", "decoder_light")}
    (folder / "m.json").write_text(json.dumps({
        "format": "dramnet-edge-artifact", "sidecar_version": 1, "target": target, "backend": backend,
        "model": "dramnet_tiny", "checkpoint": None, "checkpoint_sha256": None, "tile": 112, "precision": "fp16",
        "fft": "dft", "tau": None, "batch": 1, "graphs": graphs}))
    return folder / f"m{suffix}"


# -------------------------------------------------------------------------------------------- bench

def test_bench_torch_schema_policies_and_skipped_backends(ckpt, images, tmp_path):
    engine = _fake_artifact(tmp_path / "trt", "tensorrt", ".engine", "tensorrt")
    result = bench([engine], checkpoint=ckpt, images=images / "blur", targets=images / "sharp",
                   taus="none,0.9,1.0:", warmup=1, repeat=2)
    assert set(result) >= {"device", "runs", "settings", "power"}
    assert {"cpu_model", "cpu_cores", "ram_gb", "os", "versions"} <= set(result["device"])
    runs = result["runs"]
    for r in runs:
        assert RUN_KEYS <= set(r), r
    done = [r for r in runs if not r.get("skipped")]
    skipped = [r for r in runs if r.get("skipped")]
    assert [r["policy"] for r in done] == ["none", "0.9", "1:"]
    assert all(r["backend"] == "torch" and r["precision"] == "fp32" for r in done)
    assert len(skipped) == 3 and all(r["backend"] == "tensorrt" for r in skipped)
    assert all("TensorRT" in r["skipped"] or "tensorrt" in r["skipped"] for r in skipped)
    base, _, skip_all = done
    assert base["speedup"] == pytest.approx(1.0) and base["delta_psnr"] == 0.0 and base["exit_fraction"] == 0.0
    assert skip_all["skip_fraction"] == 1.0 and skip_all["exit_fraction"] == 1.0
    assert skip_all["speedup"] > 3.0  # only the gate runs
    assert base["speedup_cpu"] == pytest.approx(1.0) and skip_all["speedup_cpu"] > 3.0  # the same in CPU time
    assert base["latency_ms_p50"] > 0 and base["latency_ms_p90"] >= base["latency_ms_p50"]
    assert base["tile_latency_ms_p50"] > 0 and base["images_per_s"] > 0 and base["tiles_per_s"] > 0
    assert base["peak_rss_mb"] is None or base["peak_rss_mb"] > 0
    assert np.isfinite(base["psnr"]) and base["repetitions"] == 2
    assert result["settings"]["interleaved"] is True
    # efficiency: the no-exit run against this CPU's GEMM peak measured in the same run; exit runs get no figure
    assert base["peak_threads"] == torch.get_num_threads()  # a torch run is judged at torch's thread count
    peak = result["peaks"][str(base["peak_threads"])]
    assert peak["fp32_gflops"] > 0 and peak["threads"] == base["peak_threads"]
    from dramnet_edge.models.summary import count_macs

    net, _ = load_model(ckpt)
    assert base["gmacs_per_tile"] == pytest.approx(count_macs(net, net.tile) / 1e9, rel=1e-3)
    assert base["gmac_per_s"] == pytest.approx(base["gmacs_per_tile"] * base["tiles_per_s"], rel=0.01)
    assert base["share_of_peak_pct"] == pytest.approx(100 * 2 * base["gmac_per_s"] / peak["fp32_gflops"], rel=0.02)
    assert "gmac_per_s" not in skip_all
    json.dumps(result)  # serialisable


def test_bench_cli_writes_json_markdown_and_plots(ckpt, images, tmp_path):
    out = tmp_path / "out"
    res = CliRunner().invoke(bench_command, [
        "--checkpoint", str(ckpt), "--images", str(images / "blur"), "--targets", str(images / "sharp"),
        "--tau", "none,1.0:", "--repeat", "1", "--json", str(out / "b.json"), "--markdown", str(out / "b.md"),
        "--plots", str(out / "plots")])
    assert res.exit_code == 0, res.output
    data = json.loads((out / "b.json").read_text())
    assert len(data["runs"]) == 2 and RUN_KEYS <= set(data["runs"][0])
    md = (out / "b.md").read_text()
    assert "| artifact |" in md and "skip<1" in md
    assert "matrix-multiply peak" in md and "| GMACs/tile |" in md
    for name in ("tradeoff.png", "latency.png"):
        png = out / "plots" / name
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_cli_rejects_a_bad_tau_list(ckpt, images):
    res = CliRunner().invoke(bench_command, ["--checkpoint", str(ckpt), "--images", str(images / "blur"),
                                             "--tau", "none,fast"])
    assert res.exit_code == 2 and "not a number" in res.output


def test_targets_must_match_every_image(ckpt, images, tmp_path):
    only_one = tmp_path / "t"
    only_one.mkdir()
    src = sorted((images / "sharp").iterdir())[0]
    (only_one / src.name).write_bytes(src.read_bytes())
    with pytest.raises(ValueError, match="no target"):
        bench([], checkpoint=ckpt, images=images / "blur", targets=only_one)


# ------------------------------------------------------------------------------------------- validate

def test_validate_torch_schema(ckpt, pairs, tmp_path):
    coreml = _fake_artifact(tmp_path / "cm", "coreml", ".mlpackage", "coreml")
    result = validate([ckpt, coreml], pairs)
    assert result["images"] == 2 and result["input"]["psnr"] > 0
    row, skipped = result["artifacts"]
    for key in ("psnr", "ssim", "psnr_min", "psnr_ref", "ssim_ref", "psnr_ref_min", "exit_fraction", "per_image"):
        assert key in row, key
    assert row["backend"] == "torch" and row["psnr_ref"] == pytest.approx(100.0)  # the FP32 model is its own reference
    assert len(row["per_image"]) == 2
    assert skipped["backend"] == "coreml" and "skipped" in skipped
    json.dumps(result)


def test_validate_cli_json_and_flat_pair_folders(ckpt, images):
    res = CliRunner().invoke(validate_command, [str(ckpt), "--data", str(images), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["images"] == 2  # blur/ + sharp/ folders with matching names
    assert len(find_pairs(images)) == 2


def test_validate_rejects_a_folder_without_pairs(ckpt, tmp_path):
    with pytest.raises(ValueError, match="no pairs"):
        validate([ckpt], tmp_path)


# ------------------------------------------------------------------------------------------- photos

def test_psfs_and_half_sharp_photos():
    for k in (motion_psf(), defocus_psf()):
        assert abs(float(k.sum()) - 1.0) < 1e-5 and k.min() >= 0
    (name, blurred, sharp), = half_sharp_set(("coins",))
    half = sharp.shape[2] // 2
    np.testing.assert_array_equal(blurred[:, :, :half], sharp[:, :, :half])
    assert np.abs(blurred[:, :, half:] - sharp[:, :, half:]).mean() > 0.01
