"""Runs the stages in order, skipping those whose output is current, and reports each as events."""

from __future__ import annotations

import threading
import time
from typing import Any

from ragtune.engine.config import RunConfig
from ragtune.engine.core.errors import Cancelled, ConfigError, RagtuneError, StageStopped
from ragtune.engine.core.events import (
    Emitter,
    JsonlEventLog,
    RunFailed,
    RunFinished,
    StageFinished,
    StageSkipped,
    StageStarted,
)
from ragtune.engine.core.gpu import named_oom
from ragtune.engine.core.memory import release_freed_memory
from ragtune.engine.core.stages import Stage, StageContext
from ragtune.engine.core.workspace import Workspace
from ragtune.engine.stages import PIPELINE, STAGES, plan


class Pipeline:
    def __init__(
        self,
        cfg: RunConfig,
        *,
        events: Emitter | None = None,
        cancel: threading.Event | None = None,
        api_key: str | None = None,
    ) -> None:
        self.ws = Workspace.create(cfg.workspace_dir)
        # Stages run on the workspace copy (absolute paths), the same config a replay reads,
        # so a stage launched in a child process computes the same fingerprints.
        self.cfg = cfg.for_workspace(self.ws.root)
        self.cancel = cancel or threading.Event()
        self.api_key = api_key
        self.events = events or Emitter()
        self.plan = plan(self.cfg, self.ws)

    def fingerprint(self, stage: str) -> str:
        return self.plan.fingerprint(stage)

    # -- running

    def run(self, stages: list[str] | None = None) -> Workspace:
        wanted = list(stages or STAGES)
        unknown = [s for s in wanted if s not in STAGES]
        if unknown:
            raise ConfigError("--stages", ",".join(unknown), " | ".join(STAGES))
        if not self.cfg.sources.has_documents and not self.cfg.sources.description:
            raise ConfigError(
                "sources", "nothing", "paths, a dataset, or a description of the domain"
            )
        if self.cfg.eval.benchmark and "evaluate" in wanted:
            from ragtune.engine.evaluate.labels import check_benchmark

            # Before training, not when evaluation reaches it minutes or hours later.
            check_benchmark(self.cfg.resolve(self.cfg.eval.benchmark))
        started = time.monotonic()
        # Nothing is written before the lock is ours: a refused run must not touch the
        # workspace of the run that holds it.
        with self.ws.lock():
            self.cfg.save(self.ws.config_path)
            log = JsonlEventLog(self.ws.events_path)
            self.events.add(log)
            try:
                for stage in PIPELINE:
                    if stage.name in wanted:
                        self._run_stage(stage)
                self.events.emit(
                    RunFinished(workspace=str(self.ws.root), seconds=time.monotonic() - started)
                )
            except RagtuneError as exc:
                self.events.emit(
                    RunFailed(error=exc.message, hint=exc.hint, error_type=type(exc).__name__)
                )
                raise
            except KeyboardInterrupt:
                self.events.emit(RunFailed(error="interrupted", error_type="Cancelled"))
                raise Cancelled() from None
            except Exception as exc:
                self.events.emit(
                    RunFailed(
                        error=f"{type(exc).__name__}: {exc}",
                        error_type=type(exc).__name__,
                        hint=f"see {self.ws.root / 'run.log'} or rerun with --debug",
                    )
                )
                raise
            finally:
                self.ws.set_current(None)
                self.events.remove(log)
                log.close()
        return self.ws

    def _run_stage(self, spec: Stage) -> None:
        stage = spec.name
        ev = self.events.for_stage(stage)
        self.events.stage = stage
        if not self.plan.enabled(stage):
            ev.emit(StageSkipped(reason="switched off in the config"))
            return
        broken = self.plan.output_problems(stage, self.ws)
        if self.plan.is_current(stage, self.ws) and not broken:
            ev.emit(StageSkipped(reason="up to date"))
            return
        if self.cancel.is_set():
            raise Cancelled()
        self.ws.set_current(stage)
        ev.emit(StageStarted())
        if broken and self.plan.is_current(stage, self.ws):
            ev.warning(f"rebuilding {stage}: {'; '.join(broken)}")
        t0 = time.monotonic()
        _seed_everything(self.cfg.run.seed)
        assert spec.run is not None, f"stage {stage} declares no run"
        ctx = StageContext(self.cfg, self.ws, ev, self.cancel, self.api_key)
        try:
            with named_oom(stage, self.cfg):
                summary = self.plan.record(stage, spec.run(ctx) or {})
        except StageStopped as stopped:
            self.plan.record(stage, stopped.summary)  # incomplete: the next run retries the rest
            raise
        finally:
            release_freed_memory()
        ev.emit(StageFinished(seconds=time.monotonic() - t0, summary=summary))

    def record(self, stage: str, summary: dict[str, Any]) -> dict[str, Any]:
        """Mark ``stage`` finished as a run would (the torchrun worker records through this)."""
        return self.plan.record(stage, summary)


def _seed_everything(seed: int) -> None:
    """``run.seed``: whatever has no seed of its own (fresh heads, dropout, shuffles)."""
    import random

    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover
        pass
    import torch

    torch.manual_seed(seed)
