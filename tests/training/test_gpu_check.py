"""bench/gpu_check.sh refuses a box without a GPU clearly; its CPU dry run is run by hand (slow)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu_check.sh"


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        ["bash", str(SCRIPT), "--out", str(tmp_path / "out"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU box: nothing to refuse")
def test_without_nvidia_smi_it_stops_at_once_and_says_why(tmp_path: Path) -> None:
    result = _run(tmp_path)
    assert result.returncode == 1
    assert "nvidia-smi not found" in result.stderr and "--cpu-dry-run" in result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "out" / "log.txt").exists()


def test_bad_arguments_and_help(tmp_path: Path) -> None:
    bad = _run(tmp_path, "--fast")
    assert bad.returncode == 2 and "unknown argument --fast" in bad.stderr
    usage = _run(tmp_path, "--help")
    assert usage.returncode == 0 and "--cpu-dry-run" in usage.stdout
