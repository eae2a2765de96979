"""The Python API that the CLI, the TUI and user scripts call; one function per user action.

Everything here takes a ``RunConfig`` (or a workspace) and an optional
``Emitter``, and returns plain data. Long calls accept a ``threading.Event``
to cancel cooperatively. Nothing here prints.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.engine.config import RunConfig, load_config
from ragtune.engine.core.events import Emitter, JsonlEventLog
from ragtune.engine.core.workspace import Workspace
from ragtune.engine.stages import STAGES

if TYPE_CHECKING:
    from ragtune.engine.generate.llm_cost import CostEstimate
    from ragtune.engine.generate.rows import GeneratedRow

__all__ = [
    "STAGES",
    "Emitter",
    "RunConfig",
    "Workspace",
    "ask",
    "load_config",
    "open_workspace",
    "results",
    "run_pipeline",
    "sample_generation",
    "start_run_process",
]


def open_workspace(cfg: RunConfig) -> Workspace:
    return Workspace.create(cfg.workspace_dir)


def workspace_emitter(ws: Workspace, *extra: Any) -> Emitter:
    """An emitter that writes ``events.jsonl`` plus any extra sinks (a CLI renderer, a TUI)."""
    return Emitter(JsonlEventLog(ws.events_path), *extra)


def run_pipeline(
    cfg: RunConfig,
    *,
    events: Emitter | None = None,
    cancel: threading.Event | None = None,
    stages: list[str] | None = None,
    api_key: str | None = None,
) -> Workspace:
    """Run (or resume) every stage in order; stages whose output is current are skipped.

    Progress comes as events, so the libraries' own bars and notices are turned off (unless
    their variables are already set), as in the CLI. ``api_key``: one typed in, kept in memory.
    """
    from ragtune.engine.core.quiet import quiet_libraries
    from ragtune.engine.pipeline import Pipeline

    quiet_libraries()
    return Pipeline(cfg, events=events, cancel=cancel, api_key=api_key).run(stages)


@dataclass
class RunProcess:
    """A pipeline running in a child process; it outlives the UI that started it."""

    pid: int
    workspace: Path
    popen: subprocess.Popen | None = None

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def cancel(self) -> None:
        """SIGINT: the child stops at the next step, saves what it has, and exits."""
        import signal

        if self.alive():
            os.kill(self.pid, signal.SIGINT)


def start_run_process(
    config_path: str | Path,
    *,
    stages: list[str] | None = None,
    log_path: Path | None = None,
    api_key: str | None = None,
) -> RunProcess:
    """Start ``ragtune run CONFIG`` detached (own session), so a dropped SSH session cannot kill it.

    A key typed into the wizard reaches the child in its environment only (under
    ``generation.llm.api_key_env``, or ``RAGTUNE_LLM_API_KEY``), never in a file.
    """
    from ragtune.engine.generate.llm_client import child_key_variable

    cfg = load_config(config_path)
    ws = open_workspace(cfg)
    cmd = [sys.executable, "-m", "ragtune.engine", "run", str(config_path), "--quiet"]
    if stages:
        cmd += ["--stages", ",".join(stages)]
    env = dict(os.environ)
    if api_key:
        env[child_key_variable(cfg.generation.llm)] = api_key
    log = open(log_path or ws.root / "run.log", "ab")  # noqa: SIM115
    popen = subprocess.Popen(
        cmd,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    (ws.state_dir / "child.pid").write_text(str(popen.pid))
    return RunProcess(pid=popen.pid, workspace=ws.root, popen=popen)


def attach_run_process(ws: Workspace) -> RunProcess | None:
    """The child still running in a workspace, if any (for re-attaching after a restart)."""
    pid_file = ws.state_dir / "child.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    proc = RunProcess(pid=pid, workspace=ws.root)
    return proc if proc.alive() else None


def sample_generation(
    cfg: RunConfig, *, k: int | None = None, api_key: str | None = None
) -> tuple[list[GeneratedRow], CostEstimate | None]:
    """K rows exactly as the full run would write them, from chunks spread across sources.

    The one sampler for the CLI (``ragtune generate --sample``), the wizard and scripts.
    Chunks are brought up to date first (ingest is a no-op when current), so a sample after
    a chunking change is drawn from the new chunks. Sampling writes to the workspace (the
    chunks; the LLM's calls to ``generated.jsonl``, which the full run reuses), so it holds
    the workspace lock: while a run holds it, sampling is refused and writes nothing.
    Returns the rows and, for the LLM generator, the cost estimate of the full run.
    """
    from ragtune.engine.core.errors import ConfigError
    from ragtune.engine.core.records import read_chunks

    if k is not None and k < 1:
        raise ConfigError("sample size", k, "a whole number of at least 1")
    ws = Workspace(cfg.workspace_dir)
    action = "draw sample rows"
    with ws.lock(action):
        pass  # refused here, with what was asked, before ingest can write anything
    run_pipeline(cfg, stages=["ingest"], api_key=api_key)
    k = k or cfg.generation.llm.sample_size
    with ws.lock(action):
        chunks = read_chunks(ws.chunks_path)
        from ragtune.engine.generate.registry import generator_for

        return generator_for(cfg).sample(cfg, ws, chunks, k, api_key)


def ask(ws: Workspace, question: str, **options: Any) -> Any:
    """Ranked passages for ``question`` from the retriever evaluation recommended (dense,
    hybrid or BM25), reranked when a reranker ships; each hit says where it came from
    (dense rank, BM25 rank, fused score). Options as ``ragtune.engine.serve.ask.ask``."""
    from ragtune.engine.serve.ask import ask as ask_workspace

    return ask_workspace(ws, question, **options)


def results(ws: Workspace) -> Any:
    """The typed results of a workspace (``ragtune.engine.evaluate.results.Results``): every
    retriever per size with its intervals, the recommendation, the reranker."""
    from ragtune.engine.evaluate.results import read_results

    return read_results(ws.metrics_path)
