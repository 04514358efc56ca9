"""The calibration report's verdict is judged on the written graphs, not on the fallback's in-loop estimate (the
written graphs are quantized afresh with the reverted groups excluded, so the two can differ): a pure-dict test, no
ONNX Runtime or NNCF run here."""

import pytest

from dramnet_edge.calibrate.report import _sidecar_summary, report_markdown, verdict, written_met


def _report(estimate: float, written: float, worst: float = 0.5, worst_budget=None, nonfinite: int = 0) -> dict:
    drop = lambda mean, w: {"drop_db_mean": mean, "drop_db_worst": w, "psnr_vs_fp32_db_mean": 55.0,  # noqa: E731
                            "psnr_vs_fp32_db_min": 40.0, "reference": "ground truth", "nonfinite_outputs": 0,
                            "worst_tile": "train/brick/000186"}
    final_model = drop(written, worst) | {"nonfinite_outputs": nonfinite}
    return {
        "settings": {"library": "nncf", "method": "minmax", "weights": "int8", "activations": "int8",
                     "op_types": ["Conv"], "bias": "fp32"},
        "budget_db": 0.1, "worst_budget_db": worst_budget,
        "calibration": {"holdout_tiles": 16, "calibration_strata": {"sharp": 1}, "holdout_strata": {"sharp": 1},
                        "source": "synthetic", "candidates": 2, "candidate_strata": {"sharp": 2},
                        "thresholds": {"sharp_mild": 0.6, "mild_heavy": 0.9, "rules": ["a", "b"]}},
        "sensitive_kept_fp32": {},
        "fallback": {"granularity": "level", "level": 1, "evaluations": 6, "seconds": 1.0,
                     "initial": drop(2.0, 5.0), "sensitivity": [], "reverted": ["g1", "g2"], "history": [],
                     "met": estimate <= 0.1, "estimate": drop(estimate, worst)},
        "final": {"model": final_model, "split_full": drop(written, worst), "split_light": drop(written, worst),
                  "blur_score_max_abs_diff": 0.0},
        "graphs": {}, "timings": {},
    }


def test_a_written_graph_over_budget_is_not_met_even_when_the_estimate_was():
    # the quickstart on step 6 of the embedded default: estimate +0.088 dB, written graphs +0.105 dB
    r = _report(estimate=0.088, written=0.105)
    assert r["fallback"]["met"] and not written_met(r)
    text = verdict(r)
    assert text.startswith("NOT met on the written graphs") and "+0.088 dB mean" in text and "said met" in text
    summary = _sidecar_summary(r)
    assert summary["met"] is False and summary["fallback_estimate_met"] is True
    assert summary["drop_db_mean"] == pytest.approx(0.105)
    assert "NOT met on the written graphs" in report_markdown(r)


def test_agreeing_verdicts_are_plain_and_the_worst_bound_and_non_finite_outputs_count():
    assert verdict(_report(0.05, 0.06)) == "met"
    assert verdict(_report(0.2, 0.3)) == "NOT met"
    assert written_met(_report(0.2, 0.09)) and verdict(_report(0.2, 0.09)).startswith("met on the written graphs")
    assert not written_met(_report(0.05, 0.06, worst=0.5, worst_budget=0.3))
    assert written_met(_report(0.05, 0.06, worst=0.2, worst_budget=0.3))
    assert not written_met(_report(0.05, 0.06, nonfinite=1))
