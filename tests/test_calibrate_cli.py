"""``dramnet-edge calibrate``: bad input ends with one ``Error:`` line and exit code 2 before any work is done."""

import math

import pytest
from click.testing import CliRunner

from dramnet_edge.cli.calibrate import calibrate


def _error(args):
    result = CliRunner().invoke(calibrate, args)
    lines = [line for line in result.output.splitlines() if line.startswith("Error")]
    return result.exit_code, lines


@pytest.mark.parametrize("budget", ["0", "-0.1", "nan", "inf"])
def test_bad_budget(tmp_path, budget):
    code, lines = _error(["--budget-db", budget, "-o", str(tmp_path / "m.int8.onnx")])
    assert code == 2 and len(lines) == 1 and "'--budget-db'" in lines[0] and budget in lines[0]
    assert "x>0" in lines[0]  # the accepted range
    assert not (tmp_path / "m.int8.onnx").exists()


def test_missing_calibration_folder(tmp_path):
    code, lines = _error(["--calib-data", str(tmp_path / "nope"), "-o", str(tmp_path / "m.int8.onnx")])
    assert code == 2 and len(lines) == 1 and "--calib-data" in lines[0] and "no such directory" in lines[0]


@pytest.mark.parametrize("args,message", [
    (["-o", "{tmp}/m.int8.engine"], "must end in .onnx"),
    (["--onnx", "{tmp}/fp32.onnx", "--model", "dramnet_tiny", "-o", "{tmp}/m.int8.onnx"], "--onnx quantizes"),
    (["--onnx", "{tmp}/missing.onnx", "-o", "{tmp}/m.int8.onnx"], "file not found"),
    (["--checkpoint", "{tmp}/missing.safetensors", "-o", "{tmp}/m.int8.onnx"], "checkpoint not found"),
    (["--tile", "100", "-o", "{tmp}/m.int8.onnx"], "multiple of 112"),
    (["--tiles", "2", "-o", "{tmp}/m.int8.onnx"], "'--tiles': 2 is not in the range x>=4"),
    (["--tau", "1.5", "-o", "{tmp}/m.int8.onnx"], "'--tau': 1.5 is not in the range 0.0<=x<=1.0"),
    (["--max-evals", "1", "-o", "{tmp}/m.int8.onnx"], "'--max-evals': 1 is not in the range x>=2"),
    (["--recipe", "{tmp}/missing.yaml", "-o", "{tmp}/m.int8.onnx"], "recipe not found"),
])
def test_bad_arguments(tmp_path, args, message):
    code, lines = _error([a.format(tmp=tmp_path) for a in args])
    assert code == 2 and len(lines) == 1 and message in lines[0], lines


def test_unknown_choices_are_rejected_by_click(tmp_path):
    code, lines = _error(["--library", "tflite", "-o", str(tmp_path / "m.onnx")])
    assert code == 2 and "tflite" in lines[0]
    code, lines = _error(["--method", "kl", "-o", str(tmp_path / "m.onnx")])
    assert code == 2 and "kl" in lines[0]


def test_existing_output_is_not_overwritten(tmp_path):
    out = tmp_path / "m.int8.onnx"
    out.write_bytes(b"keep")
    code, lines = _error(["-o", str(out)])
    assert code == 2 and "output exists" in lines[0] and out.read_bytes() == b"keep"


def test_budget_check_is_shared_with_the_library():
    from dramnet_edge.calibrate.pipeline import check_budget

    assert check_budget(0.25) == 0.25
    for bad in (0, -1, math.nan, math.inf):
        with pytest.raises(ValueError, match="--budget-db"):
            check_budget(bad)


def test_an_existing_report_or_sidecar_is_not_overwritten_either(tmp_path):
    for name in ("m.int8.onnx.json", "m.int8.onnx.report.md", "m.int8.encoder.onnx"):
        kept = tmp_path / name
        kept.write_bytes(b"keep")
        code, lines = _error(["-o", str(tmp_path / "m.int8.onnx")])
        assert code == 2 and f"output exists: {kept}" in lines[0] and kept.read_bytes() == b"keep"
        kept.unlink()
