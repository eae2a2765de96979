"""Fixtures for the wizard's tests: an isolated user config dir and a fake engine replaying a run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"
RUN_EVENTS = DATA / "run_events.jsonl"
METRICS = DATA / "metrics.json"


class FakeEngine:
    """Stands in for ``EngineClient``: canned previews, and runs replayed from a recorded log.

    ``calls`` records (method, args) so tests assert what the screens asked for.
    """

    def __init__(self, rate: float = 2000.0) -> None:
        self.rate = rate
        self.calls: list[tuple[str, Any]] = []
        self.runs: list[Any] = []
        self.fail: dict[str, BaseException] = {}

    def _call(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        if name in self.fail:
            raise self.fail[name]

    def discover(self, cfg):
        from tui.engine_client import ScanResult

        self._call("discover", list(cfg.sources.paths))
        files, errors = [], []
        for p in cfg.sources.paths:
            path = Path(p)
            items = sorted(path.rglob("*")) if path.is_dir() else [path]
            for f in items:
                if f.is_file() and f.suffix == ".pdf" and f.stat().st_size < 10:
                    errors.append((str(f), "not a PDF (fix: remove it or replace the file)"))
                elif f.is_file():
                    files.append(f)
        return ScanResult(files=files, errors=errors)

    def preview_dataset(self, cfg, n: int = 5):
        from tui.engine_client import DatasetPreview

        self._call("preview_dataset", cfg.sources.dataset)
        rows = [{"id": i, "body": f"passage {i}", "title": f"t{i}"} for i in range(n)]
        return DatasetPreview(columns=["id", "body", "title"], rows=rows)

    def preview_chunks(self, cfg):
        from tui.engine_client import ChunkPreview

        self._call("preview_chunks", cfg.chunking.max_tokens)
        samples = [
            {"source": "handbook/leave.md", "n_tokens": 40 + 30 * i, "text": f"Chunk {i} text"}
            for i in range(5)
        ]
        hist = [(f"{i * 26 + 1}-{(i + 1) * 26}", c) for i, c in enumerate([2, 5, 9, 14, 8, 3])]
        stats = {
            "documents": 2,
            "chunks": 41,
            "too_short": 1,
            "duplicates": 0,
            "tokens": {"min": 24, "median": 180.0, "max": cfg.chunking.max_tokens},
        }
        return ChunkPreview(samples=samples, stats=stats, histogram=hist)

    def test_connection(self, llm, api_key):
        from tui.engine_client import Connection

        self._call("test_connection", llm.model, api_key is not None)
        if llm.api_base.endswith(":9"):
            return Connection(ok=False, message="connection refused at " + llm.api_base)
        return Connection(ok=True, message=f"{llm.model} answered", latency_s=0.42)

    def estimate_cost(self, cfg, ws):
        self._call("estimate_cost", cfg.generation.llm.model)
        return {"calls": 212, "input_tokens": 98_000, "output_tokens": 61_000, "cost_usd": 0.05}

    def ingest(self, cfg, ws):
        self._call("ingest")
        ws.chunks_path.write_bytes(b"")

    def sample_rows(self, cfg, ws, k, api_key):
        self._call("sample_rows", k)
        return [
            {
                "chunk_id": f"c{i}",
                "question": f"How many leave days in case {i}?",
                "response": f"{20 + i} days.",
                "negative_retrieval": f"Who approves case {i}?",
                "context": f"Employees get {20 + i} days of leave per year.",
            }
            for i in range(4)
        ]

    def start_run(self, config_path, stages=None):
        from tui.replay import ReplayRun

        self._call("start_run", str(config_path), stages)
        run = ReplayRun(RUN_EVENTS, Path(config_path).parent, rate=self.rate)
        self.runs.append(run)
        return run

    def attach(self, ws):
        self._call("attach")
        return None

    def ask(self, ws, question, top_k=5, dim=None):
        from tui.engine_client import AskResult

        self._call("ask", question)
        return AskResult(
            ranked={
                "base": [("handbook/sla.md", 0.61, "..."), ("handbook/leave.md", 0.55, "...")],
                "tuned": [("handbook/leave.md", 0.83, "..."), ("handbook/sla.md", 0.41, "...")],
            }
        )

    def export(self, cfg, ws, push):
        self._call("export", push)
        return {"embedder": str(ws.embedder_dir)}

    def model_card(self, cfg, ws):
        self._call("model_card")
        return "# handbook-embed\n\nFine-tuned from all-MiniLM-L6-v2 on 640 pairs."


@pytest.fixture(autouse=True)
def user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "user-config"
    monkeypatch.setenv("RAGTUNE_CONFIG_DIR", str(folder))
    monkeypatch.delenv("NO_COLOR", raising=False)
    return folder


@pytest.fixture
def fake_engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """A small document folder with one broken PDF, to browse and scan."""
    root = tmp_path / "docs"
    (root / "handbook").mkdir(parents=True)
    (root / "handbook" / "leave.md").write_text("# Leave\n\nEmployees get 25 days.\n")
    (root / "handbook" / "sla.txt").write_text("Response within 4 hours.\n")
    (root / "handbook" / "scan.pdf").write_bytes(b"%PDF")
    (root / "notes.md").write_text("# Notes\n")
    return root


@pytest.fixture
def finished_run(tmp_path: Path) -> Path:
    """A workspace whose run has finished: events, metrics and a config."""
    from engine.config import RunConfig

    ws = tmp_path / "runs" / "handbook"
    (ws / ".state").mkdir(parents=True)
    shutil.copy(RUN_EVENTS, ws / "events.jsonl")
    shutil.copy(METRICS, ws / "metrics.json")
    cfg = RunConfig()
    cfg.run.name = "handbook"
    cfg.run.workspace = "."
    cfg.save(ws / "config.toml")
    for stage in ("ingest", "generate", "prepare", "train", "evaluate"):
        (ws / ".state" / f"{stage}.json").write_text(json.dumps({"fingerprint": "x"}))
    return ws
