"""The skip threshold a weight file stores: read and validated, used by `deblur` unless overridden, and chosen by
benchmarks/tune_skip.py (whose replayed sweep must equal real skip runs)."""

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from safetensors import safe_open

from conftest import load_benchmark
from dramnet_edge.cli import main
from dramnet_edge.errors import UserError
from dramnet_edge.models.builder import load_model
from dramnet_edge.models.checkpoint import save_weights, stored_tau_skip
from dramnet_edge.weights import default_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tune():
    return load_benchmark("tune_skip")


@pytest.fixture
def tiny_weights(tmp_path):
    """The shipped dramnet_tiny weights (a model that changes its input) saved with a stored tau_skip of 1."""
    net, _ = load_model(default_checkpoint("dramnet_tiny"))
    path = tmp_path / "tiny_skip.safetensors"
    save_weights(net, path, extra_metadata={"tau_skip": "1"})
    return path


@pytest.mark.parametrize("text, expected", [(None, None), ("0.6", 0.6), ("0", 0.0), ("1", 1.0)])
def test_stored_tau_skip_reads_valid_values(text, expected):
    meta = {} if text is None else {"tau_skip": text}
    assert stored_tau_skip(meta) == expected


@pytest.mark.parametrize("text", ["1.5", "-0.1", "nan", "high"])
def test_stored_tau_skip_refuses_impossible_values_naming_them(text):
    with pytest.raises(UserError, match=f"tau_skip={text!r}"):
        stored_tau_skip({"tau_skip": text}, "w.safetensors")


def _image(tmp_path):
    rng = np.random.default_rng(3)
    img = cv2.GaussianBlur((rng.random((120, 150, 3)) * 255).astype(np.uint8), (0, 0), 2.0)
    path = tmp_path / "in.png"
    cv2.imwrite(str(path), img)
    return path, img


def test_deblur_uses_the_stored_threshold_and_zero_overrides_it(tiny_weights, tmp_path):
    src, img = _image(tmp_path)
    r = CliRunner().invoke(main, ["deblur", str(src), "-o", str(tmp_path / "a"), "--checkpoint", str(tiny_weights),
                                  "--backend", "torch"])
    assert r.exit_code == 0, r.output
    assert "(100.0 %)" in r.output and "tau_skip=1 (stored in the weights)" in r.output
    assert np.array_equal(cv2.imread(str(tmp_path / "a" / "in.png")), img)  # every tile skipped: untouched
    r = CliRunner().invoke(main, ["deblur", str(src), "-o", str(tmp_path / "b"), "--checkpoint", str(tiny_weights),
                                  "--backend", "torch", "--tau-skip", "0"])
    assert r.exit_code == 0, r.output
    assert "(0.0 %)" in r.output and "tau_skip" not in r.output
    assert not np.array_equal(cv2.imread(str(tmp_path / "b" / "in.png")), img)  # the model ran


def test_deblur_refuses_a_weight_file_with_an_impossible_stored_threshold(tmp_path):
    net, _ = load_model(default_checkpoint("dramnet_tiny"))
    bad = tmp_path / "bad.safetensors"
    save_weights(net, bad, extra_metadata={"tau_skip": "7"})
    src, _ = _image(tmp_path)
    r = CliRunner().invoke(main, ["deblur", str(src), "-o", str(tmp_path / "o"), "--checkpoint", str(bad),
                                  "--backend", "torch"])
    assert r.exit_code == 2
    assert r.output.strip().splitlines()[-1].startswith("Error:") and "tau_skip='7'" in r.output
    assert not (tmp_path / "o").exists()


def test_replayed_sweep_equals_real_skip_runs(tune):
    from dramnet_edge.runtime.session import TorchSession

    rpg = tune.rpg
    net, _ = load_model(default_checkpoint("dramnet_tiny"))
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.random((200, 260, 3)).astype(np.float32), (0, 0), 1.5)
    replay = tune.ReplaySession(TorchSession(net, tau_skip=None))
    replay.record()
    rpg.restore(replay, image)
    skipped_any = False
    for tau in (0.0, 0.3, 0.6, 1.0):
        replay.replay(tau)
        got, frac_replay = rpg.restore(replay, image)
        want, frac_real = rpg.restore(TorchSession(net, tau_skip=tau), image)
        assert frac_replay == frac_real
        np.testing.assert_allclose(got, want, atol=2 / 255)  # 8-bit outputs; batch composition may round apart
        assert np.mean(got != want) < 0.01
        skipped_any |= frac_real > 0
    assert skipped_any and frac_real == 1.0  # tau 1 skips every tile, so the sweep did cover skipping


def test_replay_refuses_other_tiles(tune):
    from dramnet_edge.runtime.session import TorchSession

    net, _ = load_model(default_checkpoint("dramnet_tiny"))
    replay = tune.ReplaySession(TorchSession(net, tau_skip=None))
    tiles = np.random.default_rng(1).random((2, 3, net.tile, net.tile)).astype(np.float32)
    replay.record()
    replay.infer(tiles, None)
    replay.replay(0.5)
    with pytest.raises(RuntimeError, match="other tiles"):
        replay.infer(tiles[::-1].copy(), None)


def test_choose_takes_the_highest_threshold_within_tolerance(tune):
    result = {"blurred": {0.0: [1.0, 1.0], 0.5: [1.0, 0.99], 0.6: [1.2, 1.0], 0.7: [1.0, 1.17], 0.8: [0.5, 0.5]}}
    grid = sorted(result["blurred"])
    assert tune.choose(result, grid, 0.02) == 0.7  # best mean 1.1 at 0.6; 0.7 gives 1.085, within 0.02
    assert tune.choose(result, grid, 0.0) == 0.6
    assert tune.choose(result, grid, 1.0) == 0.8


def test_write_tau_skip_keeps_the_tensors_and_records_how(tune, tmp_path):
    net, _ = load_model(default_checkpoint("dramnet_tiny"))
    path = tmp_path / "w.safetensors"
    save_weights(net, path)
    with safe_open(str(path), framework="pt") as f:
        before = {k: f.get_tensor(k) for k in f.keys()}
    tune.write_tau_skip(path, 0.55, {"photos": ["china"], "script": "benchmarks/tune_skip.py"})
    loaded, meta = load_model(path)
    assert stored_tau_skip(meta) == 0.55 and json.loads(meta["tau_skip_tuning"])["photos"] == ["china"]
    with safe_open(str(path), framework="pt") as f:
        assert set(f.keys()) == set(before) and all(f.get_tensor(k).equal(v) for k, v in before.items())


@pytest.mark.parametrize("argv, says", [
    (["--photos", "cell"], "held-out photos never tune anything"),
    (["--photos", "nosuch"], "nosuch not accepted"),
    (["--grid", "0.5,1.5"], "in [0, 1]"),
    (["--grid", "a,b"], "not a comma-separated list"),
])
def test_tune_skip_refuses_bad_input_with_exit_2(tune, argv, says, capsys):
    assert tune.main(argv) == 2
    assert says in capsys.readouterr().err
