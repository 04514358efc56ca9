"""deblur's backend choice (dramnet_edge/deploy/cache.py): the OpenVINO IR cached per weight file, and eager PyTorch
whenever the IR is missing for a small run, cannot be built, or was measured slower."""

import json
import os

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from dramnet_edge.cli import main
from dramnet_edge.deploy import cache
from dramnet_edge.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A dramnet_tiny weight file at tile 112, a 200x150 image, and an empty cache of this test's own."""
    from dramnet_edge.models import create_model
    from dramnet_edge.models.checkpoint import save_weights

    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    ckpt = tmp_path / "tiny.safetensors"
    save_weights(create_model("dramnet_tiny", tile=112, num_columns=1).eval(), ckpt)
    img = tmp_path / "in.png"
    cv2.imwrite(str(img), (np.random.default_rng(0).random((150, 200, 3)) * 255).astype(np.uint8))
    return ckpt, img


def _net(ckpt):
    from dramnet_edge.models.builder import load_model

    net, _ = load_model(ckpt)
    return net.eval()


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "c"))
    assert cache.cache_root() == tmp_path / "c"
    monkeypatch.delenv(cache.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_root() == tmp_path / "xdg" / "dramnet-edge"


def test_torch_wherever_the_ir_cannot_serve(tiny, monkeypatch):
    from dramnet_edge.models import create_model

    ckpt, _ = tiny
    net = _net(ckpt)
    assert "not the CPU" in cache.choose_backend(net, "dramnet_tiny", ckpt, tiles=10_000, device="cuda").reason
    assert "no weight file" in cache.choose_backend(net, "dramnet_tiny", None, tiles=10_000).reason
    aib = create_model("aibnet_s")
    assert "not a DRAMNet" in cache.choose_backend(aib, "aibnet_s", ckpt, tiles=10_000).reason
    from dramnet_edge.bench.bench import open_targets

    notes = []
    assert [t.backend for t in open_targets([], ckpt, warn=notes.append)] == ["torch"]  # nothing cached yet
    assert any("no cached OpenVINO IR" in n for n in notes) or cache.openvino_installed()
    small = cache.choose_backend(net, "dramnet_tiny", ckpt, tiles=cache.AUTO_BUILD_MIN_TILES - 1)
    assert small.backend == "torch" and "--backend openvino" in small.reason
    assert not (cache.cache_root() / "openvino").exists()  # a small run builds nothing
    monkeypatch.setattr(cache, "openvino_installed", lambda: "openvino not installed (pip install ...)")
    choice = cache.choose_backend(net, "dramnet_tiny", ckpt, tiles=10_000)
    assert choice.backend == "torch" and "openvino not installed" in choice.reason
    with pytest.raises(UserError, match="--backend openvino without --artifact needs the cached IR, but openvino"):
        cache.choose_backend(net, "dramnet_tiny", ckpt, tiles=1, force_openvino=True)


def test_a_failed_build_leaves_nothing_and_falls_back_to_torch(tiny, monkeypatch):
    pytest.importorskip("openvino")
    pytest.importorskip("onnx")
    ckpt, _ = tiny

    def broken(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr("dramnet_edge.deploy.export.export_model", broken)
    choice = cache.choose_backend(_net(ckpt), "dramnet_tiny", ckpt, tiles=10_000)
    assert choice.backend == "torch" and "No space left on device" in choice.reason
    assert list((cache.cache_root() / "openvino").iterdir()) == []  # no half entry, no temporary folder
    with pytest.raises(UserError, match="could not build the cached OpenVINO IR"):
        cache.choose_backend(_net(ckpt), "dramnet_tiny", ckpt, tiles=1, force_openvino=True)


def test_ir_is_built_once_reused_rebuilt_when_damaged_and_matches_torch(tiny, tmp_path):
    pytest.importorskip("openvino")
    pytest.importorskip("onnx")
    ckpt, img = tiny
    # small run, nothing cached: eager PyTorch, and it says how to build the IR
    r = run("deblur", img, "-o", tmp_path / "auto0", "--checkpoint", ckpt)
    assert r.exit_code == 0, r.output
    assert "backend: eager PyTorch: no cached OpenVINO IR" in r.output
    # --backend openvino without --artifact builds the entry (and measures both backends)
    r = run("deblur", img, "-o", tmp_path / "ov", "--checkpoint", ckpt, "--backend", "openvino")
    assert r.exit_code == 0, r.output
    assert "building the OpenVINO IR of dramnet_tiny once" in r.output and "just built" in r.output
    entries = list((cache.cache_root() / "openvino").iterdir())
    assert len(entries) == 1 and entries[0].name.startswith("dramnet_tiny-") and "-t112-" in entries[0].name
    speed = json.loads((entries[0] / cache.SPEED_NAME).read_text())
    assert speed["openvino_s_per_tile"] > 0 and speed["torch_s_per_tile"] > 0
    # auto now finds it (unless this machine measured PyTorch faster: then it says so)
    r = run("deblur", img, "-o", tmp_path / "auto1", "--checkpoint", ckpt)
    assert r.exit_code == 0, r.output
    if speed["openvino_s_per_tile"] <= speed["torch_s_per_tile"]:
        assert "the IR cached for these weights" in r.output
    else:
        assert "faster than OpenVINO on this machine" in r.output
    r = run("deblur", img, "-o", tmp_path / "pt", "--checkpoint", ckpt, "--backend", "torch")
    assert r.exit_code == 0 and "backend:" not in r.output
    a = cv2.imread(str(tmp_path / "ov" / "in.png")).astype(int)
    b = cv2.imread(str(tmp_path / "pt" / "in.png")).astype(int)
    assert np.abs(a - b).max() <= 1  # FP32 IR vs eager: at most one 8-bit level apart
    # bench with no artifact runs the cached IR beside eager PyTorch
    from dramnet_edge.bench.bench import open_targets

    assert [t.backend for t in open_targets([], ckpt)] == ["torch", "openvino"]
    # a measurement that found PyTorch faster makes auto pick PyTorch
    (entries[0] / cache.SPEED_NAME).write_text(json.dumps({"openvino_s_per_tile": 2.0, "torch_s_per_tile": 1.0}))
    choice = cache.choose_backend(_net(ckpt), "dramnet_tiny", ckpt, tiles=1)
    assert choice.backend == "torch" and "2000 vs 1000 ms per tile" in choice.reason
    # a damaged entry is named and rebuilt, never run
    graph = next(entries[0].glob("*.decoder_full.bin"))
    graph.write_bytes(graph.read_bytes()[:100])
    log = []
    choice = cache.choose_backend(_net(ckpt), "dramnet_tiny", ckpt, tiles=1, force_openvino=True, log=log.append)
    assert choice.backend == "openvino" and any("is damaged" in m for m in log)
    assert cache.cached_ir(choice.artifact, log.append) == choice.artifact
    assert [p.name for p in (cache.cache_root() / "openvino").iterdir()] == [entries[0].name]
    # other weights: another entry; the first stays
    from dramnet_edge.models import create_model
    from dramnet_edge.models.checkpoint import save_weights

    other = tmp_path / "other.safetensors"
    save_weights(create_model("dramnet_tiny", tile=112, num_columns=1).eval(), other)
    assert cache.cache_entry("dramnet_tiny", other, 112) != cache.cache_entry("dramnet_tiny", ckpt, 112)


def test_deblur_backend_flags_that_contradict_are_one_line_errors(tiny, tmp_path):
    ckpt, img = tiny
    r = run("deblur", img, "-o", tmp_path / "o", "--checkpoint", ckpt, "--artifact", tmp_path / "m.xml")
    assert r.exit_code == 2 and "--artifact is for the exported backends; --backend auto" in r.output
    r = run("deblur", img, "-o", tmp_path / "o", "--checkpoint", ckpt, "--overlap", "56")
    assert r.exit_code == 2 and "--overlap must be in [0, 56) for tile 112, got 56" in r.output
    assert not os.path.exists(tmp_path / "o" / "in.png")
