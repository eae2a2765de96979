"""Fixtures for the wizard's tests: an isolated user config dir and a fake engine replaying a run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from ragtune.tui.engine_client import EngineClient

DATA = Path(__file__).parent / "data"
RUN_EVENTS = DATA / "run_events.jsonl"
METRICS = DATA / "metrics.json"


class FakeEngine:
    """A ``WizardEngine``: canned engine dataclasses for snapshots, and runs replayed from a
    recorded log.

    The real engine is what the flow tests use (tests/tui/test_real_engine.py); this
    one exists for stable pictures and for injecting failures: ``fail[name] = exc``
    makes that method raise. ``calls`` records (method, args). What a picture does not
    need faked (reading a workspace's results) goes to the real client.
    """

    def __init__(self, rate: float = 2000.0) -> None:
        self.real = EngineClient()
        self.rate = rate
        self.calls: list[tuple[str, Any]] = []
        self.runs: list[Any] = []
        self.fail: dict[str, BaseException] = {}

    def _call(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        if name in self.fail:
            raise self.fail[name]

    def discover(self, cfg):
        from ragtune.tui.engine_client import ScanResult

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
        from ragtune.tui.engine_client import DatasetPreview

        self._call("preview_dataset", cfg.sources.dataset)
        rows = [{"id": i, "body": f"passage {i}", "title": f"t{i}"} for i in range(n)]
        return DatasetPreview(columns=["id", "body", "title"], rows=rows)

    def preview_chunks(self, cfg):
        from collections import Counter

        from ragtune.engine.core.records import Chunk
        from ragtune.engine.ingest.chunking import ChunkStats
        from ragtune.tui.engine_client import ChunkPreview

        self._call("preview_chunks", cfg.chunking.max_tokens)
        chunks = [
            Chunk(
                chunk_id=f"c{i}",
                doc_id="handbook/leave.md",
                text=f"Chunk {i} text",
                source="handbook/leave.md",
                n_tokens=40 + 30 * i,
            )
            for i in range(5)
        ]
        lengths = Counter({24: 2, 60: 5, 110: 9, 180: 14, 220: 8, cfg.chunking.max_tokens: 3})
        stats = ChunkStats(
            documents=2, chunks=41, too_short=1, max_tokens=cfg.chunking.max_tokens, lengths=lengths
        )
        return ChunkPreview(chunks=chunks, stats=stats)

    warmed = False

    def llm_ready(self) -> bool:
        return self.warmed

    def warm_llm(self) -> float:
        self._call("warm_llm")
        self.warmed = True
        return 0.0

    def test_connection(self, llm, api_key):
        from ragtune.engine.generate.llm_connection import ConnectionResult

        self._call("test_connection", llm.model, api_key is not None)
        if llm.api_base.endswith(":9"):
            return ConnectionResult(False, "connection refused at " + llm.api_base, 0.01)
        return ConnectionResult(True, f"{llm.model} answered", 0.42)

    def estimate_cost(self, cfg, ws):
        from ragtune.engine.generate.llm_cost import CostEstimate

        self._call("estimate_cost", cfg.generation.llm.model)
        return CostEstimate(212, 98_000, 61_000, 0.05, "litellm price map")

    def ingest(self, cfg, ws):
        self._call("ingest")

    def sample_rows(self, cfg, ws, k, api_key):
        from ragtune.engine.generate.rows import GeneratedRow

        self._call("sample_rows", k)
        return [
            GeneratedRow(
                chunk_id=f"c{i}",
                question=f"How many leave days in case {i}?",
                response=f"{20 + i} days.",
                negative_retrieval=f"Who approves case {i}?",
                context=f"Employees get {20 + i} days of leave per year.",
            )
            for i in range(4)
        ]

    def start_run(self, config_path, stages=None, api_key=None):
        from ragtune.tui.replay import ReplayRun

        self._call("start_run", str(config_path), stages)
        run = ReplayRun(RUN_EVENTS, Path(config_path).parent, rate=self.rate)
        self.runs.append(run)
        return run

    def attach(self, ws):
        self._call("attach")
        return None

    def ask(self, ws, question, top_k=5, dim=None):
        from ragtune.engine.serve.ask import AskResult, Hit

        self._call("ask", question)

        def hit(rank: int, source: str, score: float) -> Hit:
            return Hit(rank, f"c{rank}", source, None, "", "", "...", score, None, score)

        return AskResult(
            question=question,
            hits=[hit(1, "handbook/leave.md", 0.83), hit(2, "handbook/sla.md", 0.41)],
            base_hits=[hit(1, "handbook/sla.md", 0.61), hit(2, "handbook/leave.md", 0.55)],
        )

    def results(self, ws):
        self._call("results")
        return self.real.results(ws)

    def deploy_results(self, ws):
        self._call("deploy_results")
        return self.real.deploy_results(ws)

    status: dict[str, Any] | None = None
    """Stage states the fake reports; every stage done (the recorded run finished) unless set."""

    def queries_prompt(self, ws):
        """The real prompt file of the test's workspace."""
        self._call("queries_prompt")
        return self.real.queries_prompt(ws)

    def save_queries_prompt(self, ws, text):
        self._call("save_queries_prompt")
        return self.real.save_queries_prompt(ws, text)

    def saved_review(self, ws):
        self._call("saved_review")
        return self.real.saved_review(ws)

    def save_review(self, ws, entries):
        self._call("save_review", len(entries))
        self.real.save_review(ws, entries)

    def run_status(self, root, cfg=None):
        """The real states of the run folder on disk (tests make real workspaces)."""
        self._call("run_status", str(root))
        return self.real.run_status(root, cfg)

    def run_statuses(self, runs_dir, current=None):
        self._call("run_statuses", str(runs_dir))
        return self.real.run_statuses(runs_dir, current)

    def stage_status(self, cfg, ws):
        from ragtune.engine.core.stages import StageStatus
        from ragtune.engine.stages import STAGES

        self._call("stage_status")
        states = self.status or {}
        return {s: StageStatus(states.get(s, "done"), []) for s in STAGES}

    def check_settings(self, cfg, ws):
        """Nothing found: a stable picture loads no model and probes no Hub."""
        from ragtune.tui.engine_client import SettingsCheck

        self._call("check_settings", cfg.embedder.base_model)
        return SettingsCheck()

    def check_benchmark(self, folder):
        """The real check (it reads only the folder's listing): a picture shows its verdict."""
        self._call("check_benchmark", str(folder))
        return self.real.check_benchmark(folder)

    def unloadable_models(self, names):
        """The real answer (local, packaged or cached; else the Hub probe, which a test
        makes slow by patching ``ragtune.engine.core.models.hub_reachable``)."""
        self._call("unloadable_models", list(names))
        return self.real.unloadable_models(names)

    def hub_reachable(self):
        """The real probe (HF_HUB_OFFLINE=1 in tests: no network is touched)."""
        self._call("hub_reachable")
        return self.real.hub_reachable()

    def propose_batch(self, cfg):
        """The engine's answer on a machine without a GPU, on every machine: a stable picture."""
        from ragtune.engine.core.gpu import BatchProposal

        self._call("propose_batch", cfg.embedder.batch_size)
        size = cfg.embedder.batch_size
        return BatchProposal(size, f"no GPU detected: the batch stays at {size}")

    def export(self, cfg, ws, push):
        from ragtune.tui.engine_client import ExportResult

        self._call("export", push)
        return ExportResult(paths={"embedder": str(ws.embedder_dir)})

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
    from ragtune.engine.config import RunConfig

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


@pytest.fixture(scope="session")
def tuned_run(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path):
    """Every stage on the tiny model; the reranker is trained and used by search (w set)."""
    from test_real_engine import tiny_run_config

    from ragtune.engine.api import run_pipeline
    from ragtune.engine.config import RunConfig

    root = tmp_path_factory.mktemp("tuned")
    cfg = tiny_run_config(root, tiny_bert)
    data = cfg.to_dict()
    data["reranker"]["fusion_weight"] = 0.5
    cfg = RunConfig.from_dict(data)
    run_pipeline(cfg)
    return cfg


def copy_run(cfg, dest: Path) -> Path:
    shutil.copytree(cfg.workspace_dir, dest)
    return dest
