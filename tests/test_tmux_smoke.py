"""Smoke run of the real app in a real terminal: tmux drives the wizard from sources to results."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.config import RunConfig
from tests.test_pipeline import write_docs

pytestmark = [
    pytest.mark.tmux,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


def _pane(session: str) -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-t", session, "-p"], capture_output=True, text=True
    ).stdout


def _keys(session: str, *keys: str) -> None:
    subprocess.run(["tmux", "send-keys", "-t", session, *keys], check=True)


def _wait_for(session: str, text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = _pane(session)
        if text in screen:
            return screen
        time.sleep(0.5)
    raise AssertionError(f"{text!r} not shown within {timeout}s; the pane shows:\n{screen}")


@pytest.mark.slow
def test_wizard_runs_the_pipeline_to_the_results_screen(tmp_path: Path, tiny_bert: Path) -> None:
    write_docs(tmp_path / "docs")
    ws = tmp_path / "ws"
    cfg = RunConfig.from_dict(
        {
            "run": {"name": "smoke", "workspace": "."},
            "sources": {"paths": [str(tmp_path / "docs")]},
            "chunking": {"max_tokens": 64, "overlap_tokens": 8, "min_tokens": 8},
            "embedder": {
                "base_model": str(tiny_bert),
                "batch_size": 8,
                "matryoshka_dims": [64, 32, 16],
                "metric_for_best_model": "eval_dim_16_cosine_ndcg@10",
            },
            "reranker": {"enabled": False},
        }
    )
    cfg.save(ws / "config.toml")
    ragtune = Path(sys.executable).parent / "ragtune"
    command = str(ragtune) if ragtune.exists() else f"{sys.executable} -m tui"
    session = f"ragtune-smoke-{os.getpid()}"
    env = f"HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false HOME={tmp_path}"
    subprocess.run(
        [
            "tmux",
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "100",
            "-y",
            "30",
            f"cd {tmp_path} && env {env} {command} --workspace {ws}; sleep 30",
        ],
        check=True,
    )
    try:
        _wait_for(session, "Sources:", 30)
        for title in ("Chunking:", "LLM:", "Samples:", "Training settings:", "Training:"):
            _keys(session, "F3")
            _wait_for(session, title, 20)
        _keys(session, "F5")
        _wait_for(session, "Start (y)", 20)
        _keys(session, "y")
        screen = _wait_for(session, "run finished", 420)
        assert "✔ train" in screen and "✔ evaluate" in screen
        _keys(session, "F3")
        screen = _wait_for(session, "Results:", 20)
        screen = _wait_for(session, "ndcg@10", 20)
        assert "64" in screen and "tuned" in screen
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    assert (ws / "models" / "embedder" / "config.json").exists()
    assert (ws / "metrics.json").exists()
