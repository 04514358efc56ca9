"""benchmarks/jetson_check.sh needs a Jetson to run; here only its shell syntax and the flags it passes to the CLI
are checked (a flag the CLI lost would break the device run far from here)."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from dramnet_edge.cli import main

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "jetson_check.sh"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_script_parses():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


@pytest.mark.parametrize("command", ["export", "validate", "bench"])
def test_flags_the_script_passes_exist(command):
    text = SCRIPT.read_text()
    used = set()
    for line in re.findall(rf"dramnet-edge {command}\b[^\n]*(?:\\\n[^\n]*)*", text):
        used |= set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", line))
    assert used, command
    help_text = CliRunner().invoke(main, [command, "--help"]).output
    assert not [f for f in used if f not in help_text], (command, used)
