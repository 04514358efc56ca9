"""CLI smoke tests: info, deblur, and one-line errors with a non-zero exit for bad input."""

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from dramnet_edge.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _one_line_error(result):
    assert result.exit_code != 0
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("Error:"), result.output
    return lines[-1]


def test_info_json_reports_components_of_dramnet_s():
    result = run("info", "dramnet_s", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["model"] == "dramnet_s"
    params = report["params"]
    assert set(params) == {"encoder", "depth_head", "blur_map", "decoder", "total"}
    assert 21.0e6 < params["encoder"] < 23.0e6
    assert 0.40e6 < params["blur_map"] < 0.48e6
    assert params["total"] == sum(v for k, v in params.items() if k != "total")
    assert report["macs_g"] > 5.0


def test_info_table_for_aibnet():
    result = run("info", "aibnet_s", "--tile", "256")
    assert result.exit_code == 0, result.output
    assert "encoder" in result.output and "MACs" in result.output


def test_unknown_model_is_a_one_line_error():
    line = _one_line_error(run("info", "dramnet_xxl"))
    assert "dramnet_xxl" in line and "dramnet_s" in line


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "in"
    d.mkdir()
    rgb8 = (rng.random((90, 130, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(d / "rgb8.png"), rgb8)
    cv2.imwrite(str(d / "rgb16.png"), (rng.random((70, 60, 3)) * 65535).astype(np.uint16))
    cv2.imwrite(str(d / "grey.png"), rgb8[..., 0])
    rgba = np.dstack([rgb8, np.full(rgb8.shape[:2], 77, np.uint8)])
    cv2.imwrite(str(d / "alpha.png"), rgba)
    cv2.imwrite(str(d / "photo.jpg"), rgb8)
    return d


def test_deblur_keeps_size_depth_grey_and_alpha(images, tmp_path):
    out = tmp_path / "out"
    inputs = sorted(images.iterdir())
    result = run("deblur", *inputs, "-o", out, "--tau", "0.5")
    assert result.exit_code == 0, result.output
    assert "tiles exited early" in result.output
    for src in inputs:
        dst = out / (src.stem + ".png")
        a = cv2.imread(str(src), cv2.IMREAD_UNCHANGED)
        b = cv2.imread(str(dst), cv2.IMREAD_UNCHANGED)
        assert b is not None and a.shape == b.shape and a.dtype == b.dtype, src.name
    alpha = cv2.imread(str(out / "alpha.png"), cv2.IMREAD_UNCHANGED)
    assert (alpha[..., 3] == 77).all()


def test_deblur_missing_file(tmp_path):
    line = _one_line_error(run("deblur", tmp_path / "nope.png", "-o", tmp_path / "out"))
    assert "nope.png" in line


def test_deblur_corrupt_image_writes_nothing(images, tmp_path):
    bad = images / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    out = tmp_path / "out"
    line = _one_line_error(run("deblur", images / "rgb8.png", bad, "-o", out))
    assert "broken.png" in line
    assert not out.exists() or not any(out.iterdir())


def test_deblur_refuses_to_overwrite(images, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    existing = out / "rgb8.png"
    existing.write_bytes(b"keep me")
    line = _one_line_error(run("deblur", images / "rgb8.png", "-o", out))
    assert "--overwrite" in line
    assert existing.read_bytes() == b"keep me"


def test_deblur_bad_checkpoint_is_one_line(images, tmp_path):
    ckpt = tmp_path / "model.safetensors"
    ckpt.write_bytes(b"garbage")
    line = _one_line_error(run("deblur", images / "rgb8.png", "-o", tmp_path / "o", "--checkpoint", ckpt))
    assert "model.safetensors" in line


def test_tau_on_aibnet_is_rejected(images, tmp_path):
    line = _one_line_error(run("deblur", images / "rgb8.png", "-o", tmp_path / "o", "--model", "aibnet_s",
                               "--tau", "0.1"))
    assert "--tau" in line


def test_deblur_tau_skip_returns_skipped_tiles_as_they_came(images, tmp_path):
    out = tmp_path / "o"
    result = run("deblur", images / "rgb8.png", "-o", out, "--model", "dramnet_tiny", "--backend", "torch",
                 "--tau-skip", "1.0")  # every gate score is below 1: every tile skipped
    assert result.exit_code == 0, result.output
    assert "tiles exited early (100.0 %)" in result.output and "tau_skip=1" in result.output
    assert np.array_equal(cv2.imread(str(out / "rgb8.png")), cv2.imread(str(images / "rgb8.png")))
    line = _one_line_error(run("deblur", images / "rgb8.png", "-o", tmp_path / "o2", "--model", "aibnet_s",
                               "--tau-skip", "0.5"))
    assert "--tau-skip needs a model with the skip gate" in line
