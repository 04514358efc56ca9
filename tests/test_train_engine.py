"""The training loop on CPU: outputs, resume on the same curve, refusing to clobber checkpoints, stages."""

from __future__ import annotations

import csv
import json

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from dramnet_edge.models import create_model
from dramnet_edge.models.builder import load_model
from dramnet_edge.models.checkpoint import read_state_dict
from dramnet_edge.train.config import config_from_dict
from dramnet_edge.train.engine import StepBatchSampler, Trainer, resolve_run

TILE = 112
# dramnet_tiny shrunk further (the registered variant with overrides): the loop, not the network, is under test.
MICRO = {"tile": TILE, "embed_dim": 32, "depth": 4, "num_heads": 1, "dpt_features": 8, "dpt_out_channels": [4, 8, 8, 8],
         "widths": [4, 8, 8, 8], "stem_channels": 4, "bme_widths": [4, 4, 4, 4], "num_columns": 1, "memory_saving": False}


class Pairs(Dataset):
    """Fixed smooth images, their 5x5 box-blurred versions and a positive depth; random flips drawn from the
    global torch RNG (as the paired reader does), so the loop's per-sample seeding is exercised."""

    def __init__(self, n: int, size: int = TILE, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        base = torch.rand(n, 3, size // 8, size // 8, generator=g)
        self.sharp = F.interpolate(base, size=(size, size), mode="bilinear", align_corners=False)
        k = torch.ones(3, 1, 5, 5) / 25
        self.blurred = F.conv2d(F.pad(self.sharp, (2, 2, 2, 2), mode="replicate"), k, groups=3)
        self.depth = self.sharp.mean(1, keepdim=True) + 0.1

    def __len__(self):
        return len(self.sharp)

    def __getitem__(self, i):
        s, b, d = self.sharp[i], self.blurred[i], self.depth[i]
        if torch.rand(()) < 0.5:
            s, b, d = s.flip(-1), b.flip(-1), d.flip(-1)
        return {"blurred": b, "sharp": s, "depth": d, "name": str(i)}


def dramnet_cfg(depth_iters=2, deblur_iters=3, memory_saving=False, **run):
    return config_from_dict({
        "model": {"name": "dramnet_tiny", "overrides": {**MICRO, "memory_saving": memory_saving}},
        "data": {"crop": TILE, "batch_size": 2},
        "optim": {"lr": 1e-3, "min_lr": 1e-5, "warmup_iters": 1, "weight_decay": 0.01},
        "stages": [{"name": "depth", "iters": depth_iters}, {"name": "deblur", "iters": deblur_iters}],
        "run": {"log_every": 1, "val_every": 2, "ckpt_every": 2, "threads": 1, **run},
    })


def aibnet_cfg(iters=(2, 2)):
    return config_from_dict({
        "model": {"name": "aibnet_b", "overrides": {"width": 8, "enc_blk_nums": [1, 1, 1, 1], "blocks_per_subdecoder": 4}},
        "data": {"crop": 64, "batch_size": 2},
        "optim": {"lr": 1e-3, "min_lr": 1e-5},
        "stages": [{"name": "subdecoder", "iters": n} for n in iters],
        "run": {"log_every": 1, "val_every": 100, "ckpt_every": 100, "threads": 1},
    })


def fit(cfg, out, n=12, size=TILE, **kw):
    stop = kw.pop("stop_at_step", None)
    trainer = Trainer(cfg, out, train_dataset=Pairs(n, size, 0), val_dataset=Pairs(1, size, 1), progress=False, **kw)
    return trainer.fit(stop_at_step=stop)


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_sampler_is_a_function_of_the_step():
    full = StepBatchSampler(10, 4, 1, 0, seed=3, start=0, end=6)
    ranks = [StepBatchSampler(10, 2, 2, r, seed=3, start=0, end=6) for r in range(2)]
    late = StepBatchSampler(10, 4, 1, 0, seed=3, start=4, end=6)
    batches = list(full)
    assert [k for k in late] == batches[4:]
    for step, batch in enumerate(batches):
        assert ranks[0].keys_for_step(step) + ranks[1].keys_for_step(step) == batch
    first_epoch = [k[0] for b in batches for k in b][:10]
    assert sorted(first_epoch) == list(range(10))  # every sample once per epoch


def test_short_run_writes_everything(tmp_path):
    out = tmp_path / "run"
    metrics = fit(dramnet_cfg(), out)
    for name in ("config.yaml", "metrics.csv", "val.csv", "metrics.json", "train.log", "model.safetensors", "ckpt/last.pt"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == pytest.approx(metrics) if False else saved["val_psnr"] == pytest.approx(metrics["val_psnr"])
    for key in ("val_psnr", "val_psnr_input", "val_ssim", "val_ssim_input", "it_per_s", "peak_memory_mb", "stages"):
        assert key in saved
    assert [s["name"] for s in saved["stages"]] == ["depth", "deblur"]
    r = rows(out / "metrics.csv")
    assert [int(x["step"]) for x in r] == [1, 2, 3, 4, 5]
    assert r[0]["silog"] and not r[0]["recon"] and r[-1]["recon"] and r[-1]["blur"] and r[-1]["depth"]
    assert r[-1]["perc"] == ""  # no VGG weights: the term is off ...
    assert "perceptual loss OFF" in (out / "train.log").read_text()  # ... and the log says so
    # lr restarts per stage and ends at the floor
    assert float(r[1]["lr"]) == pytest.approx(1e-5) and float(r[2]["lr"]) > 1e-4 and float(r[4]["lr"]) == pytest.approx(1e-5)

    ckpt = torch.load(out / "ckpt/last.pt", weights_only=True)
    for key in ("model", "optimizer", "scheduler", "scaler", "step", "stage", "rng", "config", "model_args", "version"):
        assert key in ckpt
    assert ckpt["step"] == 5 and ckpt["config"]["stages"][1]["iters"] == 3
    assert ckpt["model_args"]["name"] == "dramnet_tiny" and ckpt["model_args"]["overrides"]["tile"] == TILE
    net, meta = load_model(out / "model.safetensors")
    for k, v in read_state_dict(out / "ckpt/last.pt").items():
        assert torch.equal(net.state_dict()[k], v), k
    # the depth head was frozen in stage 2: its weights are what stage 1 left
    assert "train_config" in meta


def test_resume_continues_the_same_curve(tmp_path):
    cfg = dramnet_cfg(depth_iters=2, deblur_iters=3)
    fit(cfg, tmp_path / "a")
    fit(cfg, tmp_path / "b", stop_at_step=3)  # "killed" one step into stage 2
    assert not (tmp_path / "b/model.safetensors").exists()
    cfg_b, resume_file, _ = resolve_run(tmp_path / "b", resume=str(tmp_path / "b"))
    assert cfg_b == cfg
    fit(cfg_b, tmp_path / "b", resume_file=resume_file)
    ra, rb = rows(tmp_path / "a/metrics.csv"), rows(tmp_path / "b/metrics.csv")
    assert [r["step"] for r in rb] == [r["step"] for r in ra]
    for x, y in zip(ra, rb):
        for k in ("loss", "silog", "recon", "depth", "blur", "lr"):
            assert x[k] == y[k], (x["step"], k)
    sa, sb = read_state_dict(tmp_path / "a/model.safetensors"), read_state_dict(tmp_path / "b/model.safetensors")
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=1e-6, msg=k)


def test_fresh_run_never_clobbers_checkpoints(tmp_path):
    out = tmp_path / "run"
    (out / "ckpt").mkdir(parents=True)
    (out / "ckpt/last.pt").write_bytes(b"precious")
    with pytest.raises(ValueError, match="--resume .* --overwrite"):
        resolve_run(out)
    with pytest.raises(ValueError, match="already holds checkpoints"):
        fit(dramnet_cfg(1, 1), out)
    assert (out / "ckpt/last.pt").read_bytes() == b"precious"
    with pytest.raises(ValueError, match="contradict"):
        resolve_run(out, resume="auto", overwrite=True)
    # --overwrite moves the old run aside instead of deleting it
    fit(dramnet_cfg(1, 1), out, overwrite=True)
    moved = list(out.glob("previous-*/ckpt/last.pt"))
    assert len(moved) == 1 and moved[0].read_bytes() == b"precious"


def test_auto_resume_after_torchrun_restart(tmp_path, monkeypatch):
    out = tmp_path / "run"
    cfg = dramnet_cfg(1, 2)
    fit(cfg, out, stop_at_step=2)
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    cfg2, resume_file, notes = resolve_run(out)
    assert resume_file == out / "ckpt/last.pt" and "torchrun restart" in notes[0]
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    assert resolve_run(tmp_path / "empty", resume="auto")[1] is None
    with pytest.raises(ValueError, match="no checkpoint found"):
        resolve_run(out, resume=str(tmp_path / "nowhere"))


def test_aibnet_progressive_trains_one_subdecoder_per_stage(tmp_path):
    cfg = aibnet_cfg((2, 2))
    torch.manual_seed(cfg.run.seed)
    init = {k: v.clone() for k, v in create_model("aibnet_b", **cfg.model.overrides).state_dict().items()}
    fit(cfg, tmp_path / "r", size=64, stop_at_step=2)
    after1 = read_state_dict(tmp_path / "r/ckpt/last.pt")
    cfg2, resume_file, _ = resolve_run(tmp_path / "r", resume="auto")
    fit(cfg2, tmp_path / "r", size=64, resume_file=resume_file)
    after2 = read_state_dict(tmp_path / "r/model.safetensors")

    def changed(a, b):
        return {k.split(".")[0] + ("." + k.split(".")[1] if k.startswith("sub_decoders") else "")
                for k in a if not torch.equal(a[k], b[k])}

    assert changed(init, after1) == {"sub_decoders.0"}
    assert changed(after1, after2) == {"sub_decoders.1"}
    r = rows(tmp_path / "r/metrics.csv")
    assert r[0]["charb"] and r[0]["fft"] and r[0]["edge"]


def test_stage_needs_depth_or_says_how_to_get_it(tmp_path):
    class NoDepth(Pairs):
        def __getitem__(self, i):
            item = super().__getitem__(i)
            del item["depth"]
            return item

    trainer = Trainer(dramnet_cfg(1, 1), tmp_path / "r", train_dataset=NoDepth(4), val_dataset=NoDepth(2), progress=False)
    with pytest.raises(ValueError, match="pseudo-depth"):
        trainer.fit()


def test_vgg_perceptual_term_on_with_weights(tmp_path):
    from dramnet_edge.train.losses import vgg19_features

    state = {f"features.{k}": v for k, v in vgg19_features(15).state_dict().items()}
    torch.save(state, tmp_path / "vgg19.pth")
    cfg = config_from_dict(dramnet_cfg(1, 1).to_dict(), [f"loss.vgg19_weights={tmp_path / 'vgg19.pth'}"])
    fit(cfg, tmp_path / "r", n=4)
    r = rows(tmp_path / "r/metrics.csv")
    assert float(r[-1]["perc"]) > 0
    assert "perceptual loss ON" in (tmp_path / "r/train.log").read_text()


def test_blurmap_stage_trains_only_the_cascade(tmp_path):
    cfg = config_from_dict({
        "model": {"name": "dramnet_tiny", "overrides": MICRO},
        "data": {"crop": TILE, "batch_size": 2},
        "optim": {"lr": 1e-2, "min_lr": 1e-5},
        "loss": {"lambda_depth": 0.0},
        "stages": [{"name": "blurmap", "iters": 3}],
        "run": {"log_every": 1, "val_every": 100, "ckpt_every": 100, "threads": 1},
    })
    torch.manual_seed(cfg.run.seed)
    init = {k: v.clone() for k, v in create_model("dramnet_tiny", **MICRO).state_dict().items()}
    fit(cfg, tmp_path / "r", n=4)
    after = read_state_dict(tmp_path / "r/model.safetensors")
    changed = {k.split(".")[0] for k in init if not torch.equal(init[k], after[k])}
    assert changed == {"blur_map"}  # weights and BatchNorm statistics of the cascade, nothing else
    r = rows(tmp_path / "r/metrics.csv")
    assert [row["stage_name"] for row in r] == ["blurmap"] * 3 and float(r[0]["blur"]) > 0


def test_stage_synthetic_overrides_reach_the_engine(tmp_path):
    from dramnet_edge.data.synthetic import SyntheticBlurDataset
    from dramnet_edge.train.engine import stage_dataset

    cfg = config_from_dict({
        "data": {"crop": TILE, "synthetic": {"strength": 0.5, "sharp_fraction": 0.0}},
        "stages": [{"name": "deblur", "iters": 1}, {"name": "blurmap", "iters": 1,
                                                     "synthetic": {"sharp_fraction": 1.0, "partial_fraction": 0.0}}],
    })
    base = SyntheticBlurDataset("train", TILE, 4, config=None)
    assert stage_dataset(cfg, cfg.stages[0], base) is base
    ds = stage_dataset(cfg, cfg.stages[1], base)
    assert ds.config.sharp_fraction == 1.0 and ds.config.strength == 0.5  # laid over data.synthetic
    item = ds[0]
    assert torch.equal(item["blurred"], item["sharp"])  # every sample unblurred
    bogus = config_from_dict({"stages": [{"name": "blurmap", "iters": 1, "synthetic": {"bogus": 1}}]})
    with pytest.raises(ValueError, match="bogus.*accepted"):
        stage_dataset(bogus, bogus.stages[0], base)
    with pytest.raises(ValueError, match="data.dataset"):
        config_from_dict({"data": {"dataset": "paired", "root": "x"},
                          "stages": [{"name": "blurmap", "iters": 1, "synthetic": {"sharp_fraction": 1.0}}]})


def test_deblur_without_blur_term_freezes_the_cascade_and_its_statistics(tmp_path):
    cfg = config_from_dict({
        "model": {"name": "dramnet_tiny", "overrides": MICRO},
        "data": {"crop": TILE, "batch_size": 2},
        "optim": {"lr": 1e-2, "min_lr": 1e-5},
        "loss": {"lambda_depth": 0.0, "lambda_blur": 0.0},
        "stages": [{"name": "deblur", "iters": 3}],
        "run": {"log_every": 1, "val_every": 2, "ckpt_every": 100, "threads": 1},
    })
    torch.manual_seed(cfg.run.seed)
    init = {k: v.clone() for k, v in create_model("dramnet_tiny", **MICRO).state_dict().items()}
    fit(cfg, tmp_path / "r", n=4)  # a validation at step 2 must not put the cascade back in train mode
    after = read_state_dict(tmp_path / "r/model.safetensors")
    changed = {k.split(".")[0] for k in init if not torch.equal(init[k], after[k])}
    assert "blur_map" not in changed and "decoder" in changed


def test_resumed_schedule_follows_the_configured_length():
    """Extending a finished stage re-fits the cosine (LambdaLR restores the old length otherwise: lr stuck at min_lr)."""
    from dramnet_edge.train.engine import build_optimizer, refit_schedule

    def setup(iters):
        cfg = config_from_dict({"model": {"name": "dramnet_tiny"}, "optim": {"lr": 1e-3, "min_lr": 1e-5, "warmup_iters": 0},
                                "stages": [{"name": "deblur", "iters": iters}]})
        net = torch.nn.Linear(4, 4)
        opt, sched = build_optimizer(net, cfg, cfg.stages[0])
        return cfg, net, opt, sched

    cfg, net, opt, sched = setup(10)
    for _ in range(10):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-5)  # finished: at the floor
    state_opt, state_sched = opt.state_dict(), sched.state_dict()

    cfg2, _, opt2, sched2 = setup(20)  # the same run extended to 20 iterations
    opt2.load_state_dict(state_opt)
    sched2.load_state_dict(state_sched)
    assert opt2.param_groups[0]["lr"] == pytest.approx(1e-5)  # what torch restores: the old, finished schedule
    message = refit_schedule(sched2, opt2, cfg2.stages[0], cfg2)
    assert message is not None and "10 iterations" in message and "re-fitted to 20" in message
    halfway = 1e-5 + (1e-3 - 1e-5) * 0.5  # cosine at 10/20
    assert opt2.param_groups[0]["lr"] == pytest.approx(halfway)
    opt2.step()
    sched2.step()
    assert opt2.param_groups[0]["lr"] < halfway  # and it keeps decaying towards the floor at 20

    _, _, opt3, sched3 = setup(10)  # same length: nothing to re-fit, nothing changes
    opt3.load_state_dict(state_opt)
    sched3.load_state_dict(state_sched)
    assert refit_schedule(sched3, opt3, cfg.stages[0], cfg) is None
    assert opt3.param_groups[0]["lr"] == pytest.approx(1e-5)


def test_psnr_recon_trains_and_logs_its_term(tmp_path):
    """loss.recon: psnr reaches the deblur stage: the logged recon term is minus a PSNR in dB (negative, far below
    the 0..1 range of the per-pixel losses) and the decoder learns from it."""
    cfg = config_from_dict({
        "model": {"name": "dramnet_tiny", "overrides": MICRO},
        "data": {"crop": TILE, "batch_size": 2},
        "optim": {"lr": 1e-3, "min_lr": 1e-5},
        "loss": {"lambda_depth": 0.0, "lambda_blur": 0.0, "recon": "psnr", "grad_weight": 0.0},
        "stages": [{"name": "deblur", "iters": 3}],
        "run": {"log_every": 1, "val_every": 100, "ckpt_every": 100, "threads": 1},
    })
    torch.manual_seed(cfg.run.seed)
    init = {k: v.clone() for k, v in create_model("dramnet_tiny", **MICRO).state_dict().items()}
    fit(cfg, tmp_path / "r", n=4)
    recon = [float(r["recon"]) for r in rows(tmp_path / "r/metrics.csv")]
    assert len(recon) == 3 and all(-50.0 <= v < -5.0 for v in recon)
    after = read_state_dict(tmp_path / "r/model.safetensors")
    assert any(not torch.equal(init[k], after[k]) for k in init if k.startswith("decoder") or k.startswith("head"))
