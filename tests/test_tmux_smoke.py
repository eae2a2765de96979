"""Smoke run of the real app in a real terminal: tmux drives the wizard from sources to results."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ragtune.engine.config import RunConfig, load_config
from ragtune.engine.stages import STAGES
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


def _wait_any(session: str, texts: tuple[str, ...], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = _pane(session)
        if any(t in screen for t in texts):
            return screen
        time.sleep(0.5)
    raise AssertionError(f"none of {texts!r} shown within {timeout}s; the pane shows:\n{screen}")


def _cli(*args: str) -> str:
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(repo)}
    done = subprocess.run(
        [sys.executable, "-m", "ragtune.engine", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=repo,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _ask(session: str, question: str, expect: str, timeout: float = 120) -> str:
    """F5 on Results: to the Try a query tab, the question typed, its answer on screen."""
    _keys(session, "F5")
    time.sleep(1)
    _keys(session, "C-u")
    _keys(session, "-l", question)
    _keys(session, "Enter")
    return _wait_for(session, expect, timeout)


def _hit_scores(screen: str) -> tuple[list[str], list[str]]:
    """The cosine column of each side of Try a query: base on the left, fine-tuned right."""
    base, tuned = [], []
    for line in screen.splitlines():
        if ".md" not in line:
            continue
        half = len(line) // 2
        left = re.findall(r"\b\d\.\d{3}\b", line[:half])
        right = re.findall(r"\b\d\.\d{3}\b", line[half:])
        base += left[-1:]
        tuned += right[-1:]
    return base, tuned


@pytest.mark.slow
def test_wizard_runs_the_pipeline_to_the_results_screen(tmp_path: Path, tiny_bert: Path) -> None:
    """As a user would: sample (LLM-free), reject a row, generate alone (Train does not call
    that finished training), start and cancel a run, try a query while it trains (no
    fine-tuned model yet), run it to the end, check the rejected row is not in the training
    data, try a query (the fine-tuned model's own hits, as `ragtune ask` gives them), change
    a setting (stale on Train and Start), start a new run."""
    from ragtune.engine.core.workspace import Workspace
    from ragtune.engine.generate.review import load_review
    from ragtune.engine.generate.rows import read_rows

    write_docs(tmp_path / "docs")
    ws = tmp_path / "runs" / "smoke"  # where Start lists the runs
    cfg = RunConfig.from_dict(
        {
            "run": {"name": "smoke", "workspace": "."},
            "chunking": {"max_tokens": 64, "overlap_tokens": 8, "min_tokens": 8},
            "embedder": {
                "base_model": str(tiny_bert),
                "batch_size": 8,
                # a rate that moves the tiny random model, so its hits differ from the base's
                "learning_rate": 1e-4,
                "matryoshka_dims": [64, 32, 16],
                "metric_for_best_model": "eval_dim_16_cosine_ndcg@10",
            },
            "reranker": {"enabled": False},
        }
    )
    cfg.save(ws / "config.toml")
    ragtune = Path(sys.executable).parent / "ragtune"
    command = str(ragtune) if ragtune.exists() else f"{sys.executable} -m ragtune.tui"
    session = f"ragtune-smoke-{os.getpid()}"
    # this checkout's code, also when a tmux server started elsewhere runs the session
    repo = Path(__file__).resolve().parents[1]
    env = f"HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false HOME={tmp_path} PYTHONPATH={repo}"
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
        # The documents' path arrives in one burst, as a paste without bracketed paste does:
        # the tree has the focus and hands typed text to the path field (the tree starts at
        # the launch folder).
        _keys(session, "-l", str(tmp_path / "docs"))
        _keys(session, "Enter")
        _wait_for(session, "picked: docs", 20)
        for title in ("Chunking:", "LLM:", "Samples:"):
            _keys(session, "F3")
            _wait_for(session, title, 20)
        _keys(session, "F5")
        _wait_for(session, "sample rows: F7 accept", 60)
        _keys(session, "F8")
        deadline = time.monotonic() + 10
        while not any(e.status == "rejected" for e in load_review(Workspace(ws))):
            assert time.monotonic() < deadline, "F8 did not save a rejected row"
            time.sleep(0.2)
        rejected = next(e for e in load_review(Workspace(ws)) if e.status == "rejected")
        # Generation alone (F6 on Samples) is not a finished training.
        _keys(session, "F6")
        _wait_for(session, "Start (y)", 20)
        _keys(session, "y")
        _wait_for(session, "generation done", 90)
        for title in ("Training settings:", "Training:"):
            _keys(session, "F3")
            _wait_for(session, title, 20)
        screen = _wait_for(session, "training has not run yet", 20)
        assert "F3 shows the results" not in screen, screen
        deadline = time.monotonic() + 60
        _keys(session, "F5")
        while "Start (y)" not in _pane(session):  # refused until the generation child exits
            assert time.monotonic() < deadline, "the finished generation never let a run start"
            time.sleep(2)
            _keys(session, "F5")
        _keys(session, "y")
        _wait_for(session, "running", 30)
        _keys(session, "F8")
        _wait_for(session, "Stop run (y)", 10)
        _keys(session, "y")
        screen = _wait_any(session, (" cancelled\n", " cancelled ", " stopped"), 60)
        assert "running generate" not in screen, screen
        deadline = time.monotonic() + 60
        while "Start (y)" not in _pane(session):  # refused while the cancelled child exits
            assert time.monotonic() < deadline, "the cancelled run never let a new one start"
            _keys(session, "F5")
            time.sleep(2)
        _keys(session, "y")
        # While it trains there is no fine-tuned model, and Try a query says so.
        _wait_for(session, "running", 30)
        _keys(session, "F3")
        _wait_for(session, "Results:", 20)
        question = "When must supervisors confirm the forklift battery changes entry?"
        screen = _ask(session, question, "no fine-tuned model yet")
        assert "fine-tuned: none yet" in screen, screen
        assert not (ws / "models" / "embedder" / "config.json").exists(), "asked too late"
        _keys(session, "F2")
        screen = _wait_for(session, "✔ evaluate", 420)
        screen = _wait_for(session, "finished", 60)
        assert "✔ train" in screen and "cancelled" not in screen.splitlines()[2]

        keys = (ws / ".state" / "generate_keys.txt").read_text().split("\n")
        pairs = {(r.chunk_id, r.question) for r in read_rows(ws / "generated.jsonl", keys)}
        assert pairs and (rejected.chunk_id, rejected.question) not in pairs

        _keys(session, "F3")
        _wait_for(session, "Results:", 20)
        _keys(session, "F7")  # from Try a query, where the question during training left it
        screen = _wait_for(session, "ndcg@10", 20)
        assert "64" in screen and "tuned" in screen and "held-out queries" in screen
        screen = _ask(session, question, "chunks per model")
        hits = [line for line in screen.splitlines() if line.count(".md") >= 2]
        assert hits, f"base and tuned hits side by side:\n{screen}"
        answer = json.loads(_cli("ask", str(ws), question, "--compare", "--json"))
        base, tuned = _hit_scores(screen)
        assert tuned == [f"{h['retriever_score']:.3f}" for h in answer["hits"]], screen
        assert base == [f"{h['retriever_score']:.3f}" for h in answer["base_hits"]], screen
        assert tuned != base, "the fine-tuned side is not the base model again"

        # A changed setting shows as stale on Train, as `ragtune status` says, and on Start.
        for title in ("Training:", "Training settings:"):
            _keys(session, "F2")
            _wait_for(session, title, 20)
        for _ in range(20):  # to the epochs field: its help shows when it has focus
            before = _pane(session)
            if "passes over the training pairs" in before:
                break
            _keys(session, "Tab")
            # One Tab at a time: under load the focus moves late, and a second Tab sent
            # before it has moved skips past the field.
            deadline = time.monotonic() + 3
            while _pane(session) == before and time.monotonic() < deadline:
                time.sleep(0.1)
        _keys(session, "End", "C-u")
        _keys(session, "-l", "2")
        deadline = time.monotonic() + 10
        while not re.search(r"^ *epochs +2 *$", _pane(session), re.MULTILINE):
            assert time.monotonic() < deadline, f"epochs not changed to 2:\n{_pane(session)}"
            time.sleep(0.2)
        _keys(session, "F3")
        screen = _wait_for(session, "↻ train  stale", 30)
        assert "train     stale (embedder.epochs)" in _cli("status", str(ws))
        assert "changed since: embedder.epochs" in screen, screen

        for _ in range(8):
            _keys(session, "F2")
            time.sleep(0.4)
        screen = _wait_for(session, "Start: a new run", 20)
        row = next(line for line in screen.splitlines() if line.strip().startswith("smoke "))
        marks = dict(zip(STAGES, row.split()[1:], strict=True))
        assert marks["ingest"] == "✔" and marks["train"] == "↻", row
        assert "↻ stale" in screen, "the legend names the mark"
        _keys(session, "C-u")
        _keys(session, "-l", "second")
        _keys(session, "Enter")
        _wait_for(session, "Sources:", 20)
        _keys(session, "F3")
        screen = _wait_for(session, "pick files or folders", 20)
        assert "Chunking:" not in screen, "a new run has no sources of the old one"
        _keys(session, "C-q")
        time.sleep(2)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    assert (ws / "models" / "embedder" / "config.json").exists()
    assert (ws / "metrics.json").exists()
    # The typed path is the run's source, saved in its config for a headless replay.
    assert load_config(ws / "config.toml").sources.paths == [str(tmp_path / "docs")]
