"""The layer contracts in pyproject.toml hold, and they catch a breach: core importing a stage."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(exe), "--no-cache", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_layers_hold() -> None:
    out = _lint(REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_core_importing_a_stage_package_breaks_the_contract(tmp_path: Path) -> None:
    for name in ("engine", "tui", "themes"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    events = tmp_path / "engine" / "core" / "events.py"
    events.write_text(
        events.read_text(encoding="utf-8") + "\n\ndef _late():\n    import engine.ingest.spec\n",
        encoding="utf-8",
    )
    out = _lint(tmp_path)
    assert out.returncode != 0
    assert "ragtune.engine.core.events -> engine.ingest.spec" in out.stdout
