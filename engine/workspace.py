"""The run folder: where each stage's output lives and which stages are already done."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import RagtuneError

STAGES = ("ingest", "generate", "prepare", "train", "evaluate", "rerank", "export")


def fingerprint(*parts: Any) -> str:
    """A short stable hash of settings and upstream fingerprints; a change re-runs the stage."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def create(cls, root: str | Path) -> Workspace:
        ws = cls(Path(root).expanduser().resolve())
        ws.root.mkdir(parents=True, exist_ok=True)
        ws.state_dir.mkdir(exist_ok=True)
        return ws

    @property
    def config_path(self) -> Path:
        return self.root / "config.toml"

    @property
    def chunks_path(self) -> Path:
        return self.root / "chunks.parquet"

    @property
    def generated_path(self) -> Path:
        return self.root / "generated.jsonl"

    @property
    def prompts_dir(self) -> Path:
        return self.root / "prompts"

    @property
    def dataset_dir(self) -> Path:
        return self.root / "dataset"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def embedder_dir(self) -> Path:
        return self.models_dir / "embedder"

    @property
    def reranker_dir(self) -> Path:
        return self.models_dir / "reranker"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def events_path(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.json"

    @property
    def report_path(self) -> Path:
        return self.root / "report.md"

    @property
    def state_dir(self) -> Path:
        return self.root / ".state"

    def _state_file(self, stage: str) -> Path:
        return self.state_dir / f"{stage}.json"

    def is_done(self, stage: str, fp: str) -> bool:
        path = self._state_file(stage)
        if not path.exists():
            return False
        try:
            return json.loads(path.read_text())["fingerprint"] == fp
        except (json.JSONDecodeError, KeyError):
            return False

    def mark_done(self, stage: str, fp: str, summary: dict[str, Any] | None = None) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._state_file(stage).with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"fingerprint": fp, "finished": time.time(), "summary": summary or {}})
        )
        tmp.replace(self._state_file(stage))

    def clear(self, stage: str) -> None:
        self._state_file(stage).unlink(missing_ok=True)

    def stage_summary(self, stage: str) -> dict[str, Any] | None:
        path = self._state_file(stage)
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text()).get("summary", {})
        except json.JSONDecodeError:
            return None

    def status(self) -> dict[str, str]:
        """done / not started per stage, for `ragtune status` and the TUI's start screen."""
        out = {}
        for stage in STAGES:
            out[stage] = "done" if self._state_file(stage).exists() else "not started"
        if out["generate"] != "done" and self.generated_path.exists():
            out["generate"] = "partial"
        return out

    def lock(self) -> WorkspaceLock:
        return WorkspaceLock(self.state_dir / "run.lock")


class WorkspaceLock:
    """One writer per workspace; a lock left by a dead process is taken over."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def holder(self) -> int | None:
        try:
            pid = int(self.path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    def __enter__(self) -> WorkspaceLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        pid = self.holder()
        if pid is not None and pid != os.getpid():
            raise RagtuneError(
                f"another ragtune process (pid {pid}) is running in this workspace",
                where=str(self.path.parent.parent),
                hint="wait for it, stop it, or use another workspace",
            )
        self.path.write_text(str(os.getpid()))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.holder() == os.getpid():
            self.path.unlink(missing_ok=True)
