"""The run folder: where each stage's output lives and which stages are already done."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragtune.engine.core.errors import RagtuneError
from ragtune.engine.core.stages import digest


def fingerprint(*parts: Any) -> str:
    """A short stable hash of settings and inputs."""
    return digest(list(parts))


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

    def stage_state(self, stage: str) -> dict[str, Any] | None:
        """What the stage recorded when it last finished: fingerprint, inputs, summary."""
        try:
            data = json.loads(self._state_file(stage).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return data if isinstance(data, dict) else None

    def is_done(self, stage: str, fp: str) -> bool:
        state = self.stage_state(stage)
        return bool(state) and state.get("fingerprint") == fp and not state.get("incomplete")

    def mark_done(
        self,
        stage: str,
        fp: str,
        summary: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        incomplete: str = "",
        output: str = "",
    ) -> None:
        """``incomplete`` records a stage that ran but left work to do (e.g. failed LLM calls):
        it is not done, so the next run takes it up again."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._state_file(stage).with_suffix(".tmp")
        record = {
            "fingerprint": fp,
            "finished": time.time(),
            "summary": summary or {},
            "inputs": inputs or {},
            "output": output,
        }
        if incomplete:
            record["incomplete"] = incomplete
        tmp.write_text(json.dumps(record, default=str))
        tmp.replace(self._state_file(stage))

    def clear(self, stage: str) -> None:
        self._state_file(stage).unlink(missing_ok=True)

    def stage_summary(self, stage: str) -> dict[str, Any] | None:
        state = self.stage_state(stage)
        return None if state is None else state.get("summary", {})

    def set_current(self, stage: str | None) -> None:
        """The stage now running, so ``ragtune status`` can say so from another process."""
        path = self.state_dir / "current_stage"
        if stage is None:
            # Cleanup on the way out of a failed run (a workspace turned read-only): a file
            # left behind is ignored once the lock is free, and the first error is the one
            # the user must see.
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        else:
            path.write_text(stage)

    def current_stage(self) -> str | None:
        try:
            return (self.state_dir / "current_stage").read_text().strip() or None
        except FileNotFoundError:
            return None

    def lock(self, action: str = "") -> WorkspaceLock:
        """``action`` (e.g. "draw sample rows") names what a refusal stops, for its message."""
        return WorkspaceLock(self.state_dir / "run.lock", action=action)


def resumable_checkpoint(folder: Path, fingerprint: str) -> str | None:
    """The checkpoint (``checkpoint-N``) in a trainer's ``folder`` that the next run resumes:
    the newest complete one, made with these settings (the trainers wipe any other)."""
    try:
        if (folder / "ragtune_fingerprint").read_text().strip() != fingerprint:
            return None
    except OSError:
        return None
    # A kill during a save leaves checkpoint-N/ without trainer_state.json: not resumed.
    steps = [
        int(p.name.removeprefix("checkpoint-"))
        for p in folder.glob("checkpoint-*")
        if p.name.removeprefix("checkpoint-").isdigit() and (p / "trainer_state.json").is_file()
    ]
    return f"checkpoint-{max(steps)}" if steps else None


class WorkspaceLock:
    """One writer per workspace, held as an ``flock`` on ``.state/run.lock``.

    The kernel drops the lock when its process dies (SIGKILL, OOM, a lost SSH session), so a
    dead run never blocks the next one and a reused pid cannot fake a live holder; the file
    holds the pid only so the refusal can name it. Nothing is written unless the lock is ours.
    """

    def __init__(self, path: Path, *, action: str = "") -> None:
        self.path = path
        self.action = action
        self._fd: int | None = None

    def holder(self) -> int | None:
        """The pid of the process holding the lock (this one included), else ``None``."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.read(fd, 32).decode(errors="replace").strip()
                return int(text) if text.isdigit() else -1
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def __enter__(self) -> WorkspaceLock:
        """Of two runs starting together exactly one gets it; the other is refused by pid."""
        if self._fd is not None:
            raise RagtuneError(
                "the workspace lock is already held by this run", where=str(self.path)
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(LOCK_ATTEMPTS):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                # ``holder`` probes with a shared lock for a moment: try again before refusing.
                if attempt < LOCK_ATTEMPTS - 1:
                    time.sleep(0.05)
                    continue
                pid = self.holder()
                who = f" (pid {pid})" if pid and pid > 0 else ""
                refused = f"cannot {self.action} now: " if self.action else ""
                raise RagtuneError(
                    f"{refused}another ragtune process{who} is running in this workspace",
                    where=str(self.path.parent.parent),
                    hint="wait for it, stop it, or use another workspace",
                ) from None
            if not _same_file(fd, self.path):
                # The previous holder unlinked the file between our open and flock.
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            self._fd = fd
            return self
        raise RagtuneError("could not take the workspace lock", where=str(self.path))

    def __exit__(self, *exc: object) -> None:
        if self._fd is None:
            return
        # Unlinked while still held, so a run that opened the old file sees it is gone. Closing
        # is what frees the lock: a read-only workspace must not hide the run's own error.
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


LOCK_ATTEMPTS = 5


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False
