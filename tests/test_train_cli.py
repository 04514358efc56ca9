"""The train / eval / pseudo-depth commands end to end on tiny inputs."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from dramnet_edge.cli.train import COMMANDS
from dramnet_edge.data import PairedImageDataset, write_image
from dramnet_edge.train.config import load_config
from dramnet_edge.train.recipes import QUICKSTART, quickstart

from test_train_engine import MICRO  # noqa: E402  (tests/ is on sys.path)

RECIPES = Path(__file__).resolve().parents[1] / "train"


@pytest.fixture(scope="module")
def cli():
    group = click.Group("dramnet-edge")
    for command in COMMANDS:
        group.add_command(command)
    return group


def _run(cli, args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_quickstart_yaml_is_the_embedded_default():
    assert load_config(RECIPES / "quickstart.yaml") == quickstart()
    assert yaml.safe_load((RECIPES / "quickstart.yaml").read_text()) == QUICKSTART


def test_train_then_eval(cli, tmp_path):
    out = tmp_path / "run"
    small = ["--set", f"model.overrides={json.dumps(MICRO)}", "--set", "data.batch_size=1", "--set", "data.val_size=1",
             "--set", "stages.0.iters=1", "--set", "stages.1.iters=1", "--set", "run.threads=1", "--set", "data.num_workers=0"]
    res = _run(cli, ["train", "--out", out, "--quiet", *small])
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"val_psnr", "val_psnr_input"} <= metrics.keys()
    assert load_config(out / "config.yaml").stages[1].iters == 1

    res = _run(cli, ["train", "--out", out, "--quiet", *small])  # a fresh run into a used OUT is refused
    assert res.exit_code == 2 and "Error:" in res.output and "--resume" in res.output
    res = _run(cli, ["train", "--out", tmp_path / "other", "--set", "optim.learning_rate=1"])
    assert res.exit_code == 2 and "'optim.learning_rate'" in res.output and "accepted" in res.output
    res = _run(cli, ["train", "--resume", out, "--quiet"])  # finished run: nothing left, same metrics
    assert res.exit_code == 0, res.output

    res = _run(cli, ["eval", "--checkpoint", out / "model.safetensors", "--data", "synthetic", "--limit", 1, "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output.strip().splitlines()[-1])
    assert report["images"] == 1 and report["psnr_input"] > 10 and "psnr" in report


def _fake_gopro(root: Path, size=(130, 150)):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for i in range(2):
            sharp = torch.from_numpy(rng.random((3, *size), dtype=np.float32))
            blurred = (sharp + torch.roll(sharp, 2, dims=-1)) / 2
            for kind, img in (("sharp", sharp), ("blur", blurred)):
                (root / split / "seq0" / kind).mkdir(parents=True, exist_ok=True)
                write_image(root / split / "seq0" / kind / f"{i:03d}.png", img)


def test_eval_whole_images_and_pseudo_depth(cli, tmp_path):
    from test_depth_anything import build_official_checkpoint  # noqa: E402

    from dramnet_edge.models import create_model
    from dramnet_edge.models.checkpoint import save_weights

    root = tmp_path / "gopro"
    _fake_gopro(root)
    # a teacher in the official Depth-Anything-V2 layout, sized like dramnet_tiny
    teacher = tmp_path / "da.pth"
    torch.save(build_official_checkpoint("vits", embed_dim=64, depth=4, features=16, out_channels=(8, 16, 32, 64)), teacher)
    res = _run(cli, ["pseudo-depth", "--teacher", teacher, "--data", root, "--model", "dramnet_tiny", "--size", 112])
    assert res.exit_code == 0, res.output
    maps = sorted((root / ".pseudo_depth").rglob("*.npy"))
    assert len(maps) == 4
    d = np.load(maps[0])
    assert d.dtype == np.float16 and d.shape == (97, 112) and np.isfinite(d).all()  # long side 112, aspect kept
    ds = PairedImageDataset(root, "train", crop=112)
    assert ds[0]["depth"].shape == (1, 112, 112)
    res = _run(cli, ["pseudo-depth", "--teacher", teacher, "--data", root, "--model", "dramnet_tiny", "--size", 112])
    assert "4 already cached, 0 to do" in res.output
    res = _run(cli, ["pseudo-depth", "--teacher", teacher, "--data", root, "--size", 100])
    assert res.exit_code == 2 and "multiple of 112" in res.output

    torch.manual_seed(0)
    net = create_model("dramnet_tiny", **MICRO)
    save_weights(net, tmp_path / "m.safetensors")
    res = _run(cli, ["eval", "--checkpoint", tmp_path / "m.safetensors", "--data", root, "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output.strip().splitlines()[-1])
    assert report["images"] == 2 and report["crop"] is None
    test = PairedImageDataset(root, "test", crop=None)
    from dramnet_edge.metrics import psnr

    expected = np.mean([psnr(it["blurred"][None], it["sharp"][None]).item() for it in (test[0], test[1])])
    assert report["psnr_input"] == pytest.approx(expected, rel=1e-5)
    res = _run(cli, ["eval", "--checkpoint", tmp_path / "m.safetensors", "--data", root, "--crop", 112, "--full"])
    assert res.exit_code == 2 and "exclude" in res.output


def test_eval_scores_identical_pairs_apart(tmp_path):
    """A pair whose blurred side is its sharp side (input PSNR capped at 100 dB) must not enter the means: averaged
    in, it lifted the input mean of three synthetic pairs to 49.8 dB and made the model look 18.9 dB worse."""
    import cv2

    from dramnet_edge.bench.validate import evaluate_model, score_image
    from dramnet_edge.models.builder import load_model
    from dramnet_edge.weights import default_checkpoint

    net, _ = load_model(default_checkpoint("dramnet_tiny"))
    rng = np.random.default_rng(5)
    sharp = [torch.from_numpy(rng.random((3, 120, 130), dtype=np.float32)) for _ in range(3)]
    blurred = [torch.from_numpy(cv2.GaussianBlur(s.numpy().transpose(1, 2, 0), (0, 0), 2.0).transpose(2, 0, 1).copy())
               for s in sharp[:2]] + [sharp[2].clone()]
    pairs = [{"blurred": b, "sharp": s} for b, s in zip(blurred, sharp)]
    r = evaluate_model(net, pairs, progress=False)
    inputs = [score_image(b.numpy(), s.numpy())[0] for b, s in zip(blurred[:2], sharp[:2])]
    assert r["images"] == 3 and r["unblurred"] == 1
    assert r["psnr_input"] == pytest.approx(np.mean(inputs), abs=1e-4) and r["psnr_input"] < 40
    assert 20 < r["psnr_unblurred"] == r["psnr_unblurred_min"] < 100  # the model's output, not the 100 dB cap
    only = evaluate_model(net, pairs[2:], progress=False)  # nothing blurred: the means are the identical pairs'
    assert only["unblurred"] == 1 and only["psnr_input"] == 100.0 and only["psnr"] == pytest.approx(r["psnr_unblurred"])
