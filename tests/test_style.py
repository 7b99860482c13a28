"""The code base passes ruff's lint and format checks (part of the test command, so CI enforces it)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _ruff() -> list[str]:
    local = Path(sys.executable).parent / "ruff"
    if local.is_file():
        return [str(local)]
    if shutil.which("ruff"):
        return ["ruff"]
    pytest.fail("ruff is not installed; run ./setup.sh (it installs the dev extra)")


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]], ids=["lint", "format"])
def test_ruff(args):
    result = subprocess.run(_ruff() + args, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
