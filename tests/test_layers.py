"""The import layers of docs/architecture.md ("Layers"), as written in pyproject.toml's [tool.importlinter]: checked
with import-linter's ``lint-imports``, which counts imports inside functions too. A second run on a copy of the
package with one upward import added shows the contract is not vacuous."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("importlinter", reason="import-linter is not installed (pip install -e '.[dev]')")


def _lint_imports(cwd: Path, package_parent: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    script = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run([sys.executable, "-c", script, "--no-cache"], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_import_contracts_hold():
    res = _lint_imports(ROOT, ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout


def test_an_upward_import_breaks_the_layers_contract(tmp_path):
    shutil.copytree(ROOT / "dramnet_edge", tmp_path / "dramnet_edge",
                    ignore=shutil.ignore_patterns("__pycache__", "*.safetensors", "*.csv"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    metrics = tmp_path / "dramnet_edge" / "metrics.py"
    metrics.write_text(metrics.read_text() + "\n\ndef _upward():\n    from .cli import main  # noqa: F401\n")
    res = _lint_imports(tmp_path, tmp_path)
    assert res.returncode != 0, res.stdout + res.stderr
    assert "BROKEN" in res.stdout and "dramnet_edge.metrics -> dramnet_edge.cli" in res.stdout, res.stdout
