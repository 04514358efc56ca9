"""Every command against bad input, from one table: exit code 2, one ``Error:`` line on stderr naming the bad value,
no traceback, and every file in the working folder exactly as it was (hashed before and after).

The working folder holds tiny inputs (64x48 images, a random dramnet_tiny at tile 112) and small stand-in artifacts
(sidecars whose graph files are bytes, not ONNX: enough for the checks that run before any graph is parsed), so the
whole table runs in well under a minute on two cores. Each case is (id, argv, text the error line must hold).
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from dramnet_edge.cli import main
from dramnet_edge.export.formats import get_format
from dramnet_edge.export.sidecar import artifact_file_hashes, build_sidecar, write_sidecar
from dramnet_edge.models import create_model
from dramnet_edge.models.checkpoint import save_weights

TILE = 112


def _fake_artifact(folder: Path, target: str = "onnx", *, hashes: bool = True, damage: str | None = None,
                   precision: str = "fp32") -> Path:
    """A sidecar and its graph files (random bytes) for ``target`` in ``folder``; ``damage`` names a graph whose
    file is cut in half after the hashes were taken."""
    fmt = get_format(target)
    folder.mkdir(parents=True, exist_ok=True)
    paths = fmt.artifact_paths(folder / f"m{fmt.suffix}")
    rng = np.random.default_rng(0)
    for p in paths.values():
        if fmt.suffix == ".mlpackage":
            p.mkdir()
            (p / "Manifest.json").write_text("{}")
        else:
            p.write_bytes(rng.bytes(256))
    sidecar = build_sidecar(target=target, backend=fmt.backend, model_name="dramnet_tiny", checkpoint=None, tile=TILE,
                            precision=precision, fft="dft", tau=None, batch="dynamic" if fmt.dynamic_batch else 1,
                            graphs={g: p.name for g, p in paths.items()}, opset=18, parity=None)
    if hashes:
        sidecar["files"] = artifact_file_hashes(folder, [p.name for p in paths.values()])
    write_sidecar(fmt.sidecar_path(paths["model"]), sidecar)
    if damage is not None:
        p = paths[damage]
        p.write_bytes(p.read_bytes()[:100])
    return paths["model"]


class _NotAllowed:  # a pickled object that torch.load(weights_only=True) refuses
    pass


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("robust")
    rng = np.random.default_rng(0)
    img = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(d / "x.png"), img)
    cv2.imwrite(str(d / "photo.jpg"), img)
    (d / "sub").mkdir()
    cv2.imwrite(str(d / "sub" / "x.jpg"), img)
    (d / "corrupt.png").write_bytes(rng.bytes(300))
    (d / "empty.png").write_bytes(b"")
    (d / "notes.png").write_text("not an image\n")
    png = (d / "x.png").read_bytes()
    (d / "truncated.png").write_bytes(png[: len(png) // 3])
    (d / "o").mkdir()
    cv2.imwrite(str(d / "o" / "x.png"), img)  # an earlier result
    (d / "imgs").mkdir()
    cv2.imwrite(str(d / "imgs" / "a.png"), img)
    (d / "emptydir").mkdir()
    (d / "emptydir" / "readme.txt").write_text("no images here\n")

    torch.manual_seed(0)
    net = create_model("dramnet_tiny", tile=TILE)
    save_weights(net, d / "tiny.safetensors")
    with torch.no_grad():
        net.head.weight[0, 0, 0, 0] = float("nan")
    save_weights(net, d / "nan.safetensors")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(d / "foreign.safetensors"))
    (d / "garbage.safetensors").write_bytes(rng.bytes(200))
    torch.save({"model": _NotAllowed()}, d / "pickle.pt")
    (d / "plain.pkl.pt").write_bytes(pickle.dumps({"a": 1}))

    _fake_artifact(d / "damaged", damage="encoder")
    _fake_artifact(d / "unhashed", hashes=False)
    _fake_artifact(d / "cml", "coreml")
    (d / "side").mkdir()
    (d / "side" / "m.onnx.json").write_text("{}")  # the sidecar of an earlier export, alone
    (d / "graph").mkdir()
    (d / "graph" / "m.encoder.onnx").write_bytes(b"keep")
    (d / "q").mkdir()
    (d / "q" / "m.int8.onnx.report.md").write_text("an earlier report\n")
    (d / "qs").mkdir()
    (d / "qs" / "mine.txt").write_text("mine\n")
    return d


CASES = [
    # info
    ("info-tile-0", ["info", "dramnet_tiny", "--tile", "0"], "0 is not in the range x>=1"),
    ("info-tile-neg", ["info", "dramnet_tiny", "--tile", "-224"], "-224"),
    ("info-tile-not-112", ["info", "dramnet_tiny", "--tile", "100"], "100 is not a multiple of 112"),
    ("info-unknown-model", ["info", "dramnet_xxl"], "dramnet_xxl"),
    # deblur: numbers
    ("deblur-tau-nan", ["deblur", "x.png", "-o", "out", "--tau", "nan"], "nan is not a finite number"),
    ("deblur-tau-neg", ["deblur", "x.png", "-o", "out", "--tau", "-1"], "-1.0 is not in the range 0.0<=x<=1.0"),
    ("deblur-tau-big", ["deblur", "x.png", "-o", "out", "--tau", "1.5"], "1.5"),
    ("deblur-tau-text", ["deblur", "x.png", "-o", "out", "--tau", "high"], "high"),
    ("deblur-batch-0", ["deblur", "x.png", "-o", "out", "--batch-size", "0"], "0 is not in the range x>=1"),
    ("deblur-batch-neg", ["deblur", "x.png", "-o", "out", "--batch-size", "-3"], "-3"),
    ("deblur-overlap-neg", ["deblur", "x.png", "-o", "out", "--overlap", "-1"], "-1"),
    ("deblur-overlap-big", ["deblur", "x.png", "-o", "out", "--overlap", "100", "--checkpoint", "tiny.safetensors"],
     "--overlap must be in [0, 56) for tile 112, got 100"),
    # deblur: inputs and outputs
    ("deblur-corrupt-image", ["deblur", "x.png", "corrupt.png", "-o", "out"], "corrupt.png"),
    ("deblur-empty-image", ["deblur", "empty.png", "-o", "out"], "empty.png"),
    ("deblur-text-as-png", ["deblur", "notes.png", "-o", "out"], "notes.png"),
    ("deblur-truncated-image", ["deblur", "truncated.png", "-o", "out", "--checkpoint", "tiny.safetensors"],
     "truncated.png"),
    ("deblur-missing-image", ["deblur", "missing.png", "-o", "out"], "missing.png"),
    ("deblur-existing-output", ["deblur", "x.png", "-o", "o"], "output exists: o/x.png"),
    ("deblur-over-its-input", ["deblur", "x.png", "-o", ".", "--overwrite"], "x.png is also an input"),
    ("deblur-same-stem", ["deblur", "x.png", "sub/x.jpg", "-o", "out"], "sub/x.jpg"),
    # deblur: weights and artifacts
    ("deblur-nan-weights", ["deblur", "x.png", "-o", "out", "--checkpoint", "nan.safetensors"], "NaN/Inf"),
    ("deblur-pickle-checkpoint", ["deblur", "x.png", "-o", "out", "--checkpoint", "pickle.pt"], "pickle.pt: refused"),
    ("deblur-garbage-checkpoint", ["deblur", "x.png", "-o", "out", "--checkpoint", "garbage.safetensors"],
     "garbage.safetensors"),
    ("deblur-foreign-checkpoint", ["deblur", "x.png", "-o", "out", "--checkpoint", "foreign.safetensors"],
     "foreign.safetensors: not a dramnet-edge weight file"),
    ("deblur-missing-checkpoint", ["deblur", "x.png", "-o", "out", "--checkpoint", "nope.safetensors"],
     "nope.safetensors"),
    ("deblur-model-and-checkpoint", ["deblur", "x.png", "-o", "out", "--checkpoint", "tiny.safetensors",
                                     "--model", "dramnet_s"], "dramnet_s"),
    ("deblur-damaged-artifact", ["deblur", "x.png", "-o", "out", "--backend", "onnxruntime", "--artifact",
                                 "damaged/m.onnx"], "damaged/m.encoder.onnx"),
    ("deblur-unloadable-graph", ["deblur", "x.png", "-o", "out", "--backend", "onnxruntime", "--artifact",
                                 "unhashed/m.onnx"], "unhashed/m.encoder.onnx"),
    ("deblur-artifact-wrong-backend", ["deblur", "x.png", "-o", "out", "--backend", "openvino", "--artifact",
                                       "unhashed/m.onnx"], "exported for the onnxruntime backend"),
    ("deblur-no-artifact", ["deblur", "x.png", "-o", "out", "--backend", "onnxruntime"], "--artifact"),
    ("deblur-missing-artifact", ["deblur", "x.png", "-o", "out", "--backend", "onnxruntime", "--artifact",
                                 "gone/m.onnx"], "gone/m.onnx"),
    # export
    ("export-tile-0", ["export", "--target", "onnx", "--tile", "0", "-o", "t.onnx"], "0 is not a positive multiple"),
    ("export-tile-neg", ["export", "--target", "onnx", "--tile", "-224", "-o", "t.onnx"], "-224"),
    ("export-tile-not-112", ["export", "--target", "onnx", "--tile", "200", "-o", "t.onnx"], "200"),
    ("export-tau-nan", ["export", "--target", "onnx", "--tau", "nan", "-o", "t.onnx"], "nan"),
    ("export-batch-neg", ["export", "--target", "onnx", "--batch", "-1", "-o", "t.onnx"], "-1"),
    ("export-budget-inf", ["export", "--target", "onnx", "--int8", "--budget-db", "inf", "-o", "t.onnx"], "inf"),
    ("export-wrong-suffix", ["export", "--target", "onnx", "-o", "t.engine"], "t.engine"),
    ("export-existing-sidecar", ["export", "--target", "onnx", "-o", "side/m.onnx"], "side/m.onnx.json"),
    ("export-existing-graph", ["export", "--target", "onnx", "-o", "graph/m.onnx"], "graph/m.encoder.onnx"),
    ("export-empty-calib-data", ["export", "--target", "onnx", "--int8", "--calib-data", "emptydir", "-o", "t.onnx"],
     "emptydir"),
    ("export-missing-calib-data", ["export", "--target", "onnx", "--int8", "--calib-data", "nodir", "-o", "t.onnx"],
     "nodir"),
    ("export-missing-extra", ["export", "--target", "torch-tensorrt", "-o", "t.pt2"], "torch_tensorrt"),
    ("export-nan-weights", ["export", "--target", "onnx", "--checkpoint", "nan.safetensors", "--tile", "112",
                            "-o", "n.onnx"], "NaN/Inf"),
    ("export-pickle-checkpoint", ["export", "--target", "onnx", "--checkpoint", "plain.pkl.pt", "-o", "n.onnx"],
     "plain.pkl.pt"),
    # calibrate
    ("calibrate-tau-nan", ["calibrate", "--tau", "nan", "-o", "c.onnx"], "nan"),
    ("calibrate-tiles-2", ["calibrate", "--tiles", "2", "-o", "c.onnx"], "2 is not in the range x>=4"),
    ("calibrate-budget-0", ["calibrate", "--budget-db", "0", "-o", "c.onnx"], "0.0 is not in the range x>0"),
    ("calibrate-threads-0", ["calibrate", "--threads", "0", "-o", "c.onnx"], "0"),
    ("calibrate-tile-100", ["calibrate", "--tile", "100", "-o", "c.onnx"], "100"),
    ("calibrate-damaged-onnx", ["calibrate", "--onnx", "damaged/m.onnx", "-o", "c.onnx"], "damaged/m.encoder.onnx"),
    ("calibrate-over-its-input", ["calibrate", "--onnx", "unhashed/m.onnx", "-o", "unhashed/m.onnx", "--overwrite"],
     "unhashed/m.onnx is also an input"),
    ("calibrate-empty-calib-data", ["calibrate", "--calib-data", "emptydir", "-o", "c.onnx"], "emptydir"),
    ("calibrate-existing-report", ["calibrate", "-o", "q/m.int8.onnx"], "q/m.int8.onnx.report.md"),
    # validate
    ("validate-nothing-measured", ["validate", "cml/m.mlpackage", "--data", "imgs"], "nothing could be measured"),
    ("validate-damaged", ["validate", "damaged/m.onnx", "--data", "imgs"], "damaged/m.encoder.onnx"),
    ("validate-limit-0", ["validate", "tiny.safetensors", "--data", "imgs", "--limit", "0"], "0"),
    ("validate-batch-0", ["validate", "tiny.safetensors", "--data", "imgs", "--batch-size", "0"], "0"),
    ("validate-missing-artifact", ["validate", "gone/m.onnx", "--data", "imgs"], "gone/m.onnx"),
    # bench
    ("bench-nothing-measured", ["bench", "cml/m.mlpackage", "--images", "imgs"], "nothing could be measured"),
    ("bench-damaged", ["bench", "damaged/m.onnx", "--images", "imgs"], "damaged/m.encoder.onnx"),
    ("bench-repeat-0", ["bench", "--images", "imgs", "--repeat", "0"], "0"),
    ("bench-warmup-neg", ["bench", "--images", "imgs", "--warmup", "-1"], "-1"),
    ("bench-tau-nan", ["bench", "--images", "imgs", "--tau", "none,nan"], "nan"),
    ("bench-no-images", ["bench", "--images", "emptydir"], "emptydir"),
    # quickstart and eval
    ("quickstart-not-empty", ["quickstart", "-o", "qs", "--fast"], "qs is not empty"),
    ("quickstart-threads-0", ["quickstart", "-o", "qs2", "--threads", "0"], "0"),
    ("eval-crop-not-14", ["eval", "--checkpoint", "tiny.safetensors", "--data", "synthetic", "--crop", "100"], "100"),
    ("eval-limit-neg", ["eval", "--checkpoint", "tiny.safetensors", "--data", "synthetic", "--limit", "-5"], "-5"),
]


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case_id,argv,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_loses_nothing(work, monkeypatch, case_id, argv, expected):
    monkeypatch.chdir(work)
    torch.set_num_threads(1)
    before = _snapshot(work)
    result = CliRunner().invoke(main, argv)
    after = _snapshot(work)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{case_id}: {type(result.exception).__name__}: {result.exception}")
    assert result.exit_code == 2, (case_id, result.output)
    assert "Traceback" not in result.output
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("Error")]
    assert len(errors) == 1 and result.stderr.rstrip().endswith(errors[0]), result.stderr
    assert expected in errors[0], (expected, errors[0])
    assert "weights_only=False" not in result.output  # never advise turning the safety off
    assert {k: v for k, v in after.items() if k in before} == before, f"{case_id} changed a file"
    assert set(after) == set(before), f"{case_id} wrote {sorted(set(after) - set(before))}"
    for leftover in ("out", "qs2"):  # nothing half-made either
        assert not (work / leftover).exists() or not any((work / leftover).iterdir())


def test_nan_from_the_model_is_an_error_and_nothing_is_written():
    from dramnet_edge.runtime.tiling import deblur_image

    class NaNSession:
        tile = TILE

        def infer(self, tiles, tau):
            return np.full_like(tiles, np.nan), np.zeros(len(tiles), dtype=bool)

    with pytest.raises(ValueError, match="NaN/Inf"):
        deblur_image(NaNSession(), np.zeros((3, 150, 200), np.float32), overlap=16)
    with pytest.raises(ValueError, match="batch size"):
        deblur_image(NaNSession(), np.zeros((3, 150, 200), np.float32), batch_size=0)


def test_export_of_another_target_keeps_the_onnx_exports_files():
    """m.onnx's sidecar and graphs stay out of the way of an openvino export of the same stem: no file in common."""
    onnx_files = {p.name for p in get_format("onnx").output_files("m.onnx", "int8")}
    for target in ("openvino", "tensorrt", "coreml"):
        fmt = get_format(target)
        assert not onnx_files & {p.name for p in fmt.output_files(f"m{fmt.suffix}", "int8")}, target


def test_pickle_refusal_never_suggests_turning_the_safety_off(work):
    from dramnet_edge.models.checkpoint import read_metadata

    with pytest.raises(ValueError) as info:
        read_metadata(work / "pickle.pt")
    assert "refused" in str(info.value) and "weights_only=False" not in str(info.value)
    assert "\n" not in str(info.value)
