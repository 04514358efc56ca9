"""benchmarks/early_exit.py end to end on small crops: every policy in one interleaved run, the oracle gate, the
random-head copy for a zero head, policies no tile can take listed as not run, and the table, JSON and plot."""

import json

import numpy as np
import pytest
import torch
from conftest import load_benchmark


@pytest.fixture(scope="module")
def ee():
    return load_benchmark("early_exit")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_random_init_run_writes_the_table_json_and_plot(ee, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("dramnet_edge.weights.default_checkpoint", lambda name: None)  # as if nothing were shipped
    out = tmp_path / "ee"
    rc = ee.main(["--photos", "", "--max-side", "224", "--repeat", "1", "--taus", "none,0.3,0.1:",
                  "--oracle-taus", "none,0.05:", "--random-head-taus", "none,0.1:", "--out", str(out)])
    assert rc == 0
    table = capsys.readouterr().out
    result = json.loads((out / "result.json").read_text())
    assert (out / "early_exit.png").read_bytes()[:4] == b"\x89PNG" and (out / "table.md").read_text().strip() == table.strip()
    st = result["settings"]
    assert st["weights"] == "random init" and st["head_is_zero"] is True and st["tile"] == 112
    runs = {(r["artifact"].split(" ")[0] if r["artifact"].startswith("oracle") else
             ("random head" if r["artifact"].endswith("random head") else "model"), r["policy"]): r
            for r in result["runs"]}
    # The untrained gate scores every tile alike: a policy no tile can take is listed, one is kept as a noise control.
    q = result["gate_quality"]
    assert q["tiles"] == 9 and 0 < q["sharp_tiles"] < 9 and len(q["scores"]) == 9
    assert ("model", "none") in runs and ("oracle", "0.05:") in runs
    not_run = {(i["net"].endswith("random head"), i["policy"]) for i in result["not_run"]}
    kept = {p for (k, p) in runs if k == "model"}
    assert len(kept) == 2 and (True, "skip<0.1") in not_run  # the random head keeps no idle run...
    assert not any(k == "random head" for k, _ in runs)  # ...so its lone baseline is left out too
    oracle_net = next(r["artifact"] for r in result["runs"] if r["artifact"].startswith("oracle"))
    assert "random head" in oracle_net  # the oracle runs on the random-head copy, whose output is not the input
    # Zero head: the model returns its input, so its output is the input whatever the policy.
    assert runs[("model", "none")]["psnr"] == pytest.approx(result["input_psnr"], abs=1e-6)
    # The oracle skips exactly the truly sharp tiles; there the input is the target, so PSNR vs GT cannot drop
    # (blended overlaps mix the target with the restoration, which is never further from it).
    oracle = runs[("oracle", "0.05:")]
    assert oracle["skip_fraction"] == pytest.approx(q["sharp_tiles"] / q["tiles"])
    assert oracle["delta_psnr"] >= 0.0 and oracle["psnr_vs_no_exit"] < 100
    assert oracle["speedup"] > 1.0
    assert "NOT ASSESSABLE" in table and "random-init" in table and "oracle" in table


def test_oracle_decisions_come_from_the_ground_truth(ee):
    from dramnet_edge.bench.bench import BenchImage
    from dramnet_edge.models import create_model
    from dramnet_edge.models.dramnet import PATH_FULL, PATH_SKIP

    torch.manual_seed(0)
    net = create_model("dramnet_tiny", tile=112).eval()
    rng = np.random.default_rng(0)
    sharp = rng.random((3, 112, 224), dtype=np.float32)
    blurred = sharp.copy()
    blurred[:, :, 112:] = 0.5  # right tile flattened: its Eq. 1 target is high; the left tile equals its target
    truth = ee.tile_truth([BenchImage("x", blurred, sharp)], 112, 0)
    oracle = ee.OracleGate(net, truth)
    x = torch.from_numpy(np.stack([blurred[:, :, :112], blurred[:, :, 112:]]))
    with torch.no_grad():
        _, blur = oracle.gate_features(x)
        paths = oracle.exit_paths(blur, None, 0.05)
    assert paths.tolist() == [PATH_SKIP, PATH_FULL]


def test_exit_counts_from_gate_scores(ee):
    from dramnet_edge.bench.bench import ExitPolicy

    assert ee.exits(ExitPolicy(tau=0.5), [0.4, 0.6]) == 1 and ee.exits(ExitPolicy(tau_skip=0.1), [0.4, 0.6]) == 0


def test_verdict_does_not_count_a_threshold_that_asks_no_gate(ee):
    def run(policy, tau, tau_skip, speedup, delta, baseline=False):
        return {"artifact": "dramnet_tiny", "baseline": baseline, "tau": tau, "tau_skip": tau_skip,
                "policy_description": policy, "speedup": speedup, "speedup_cpu": speedup, "delta_psnr": delta,
                "psnr": 30.0 + delta, "exit_fraction": 0.0 if baseline else 0.5, "psnr_vs_no_exit": 50.0}

    result = {"settings": {"weights": "w"}, "input_psnr": 29.0}
    base = run("no exit", None, None, 1.0, 0.0, baseline=True)
    everything_light = run("light<1", 1.0, None, 1.6, 0.01)
    lines = ee.verdict(result, [base, everything_light])
    assert any("without asking the gate" in line for line in lines)
    assert lines[-1].startswith("Target") and "NOT met" in lines[-1]
    gated = run("skip<0.2, light<0.8", 0.8, 0.2, 1.55, -0.02)
    assert "MET" in ee.verdict(result, [base, everything_light, gated])[-1]
    too_lossy = run("light<0.9", 0.9, None, 1.7, -0.06)
    assert "NOT met" in ee.verdict(result, [base, too_lossy])[-1]
