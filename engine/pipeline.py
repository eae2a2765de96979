"""Runs the stages in order, skipping those whose output is current, and reports each as events."""

from __future__ import annotations

import threading
import time
from typing import Any

from engine.config import RunConfig
from engine.core.errors import Cancelled, ConfigError, RagtuneError
from engine.core.events import (
    Emitter,
    JsonlEventLog,
    RunFailed,
    RunFinished,
    StageFinished,
    StageSkipped,
    StageStarted,
)
from engine.core.stages import STAGES, StagePlan, digest
from engine.core.workspace import Workspace


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
        self.plan = StagePlan(self.cfg, self.ws)

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
            from engine.evaluate.labels import check_benchmark

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
                for stage in STAGES:
                    if stage in wanted:
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

    def _run_stage(self, stage: str) -> None:
        ev = self.events.for_stage(stage)
        self.events.stage = stage
        if not self.plan.enabled(stage):
            ev.emit(StageSkipped(reason="switched off in the config"))
            return
        if self.plan.is_current(stage, self.ws):
            ev.emit(StageSkipped(reason="up to date"))
            return
        if self.cancel.is_set():
            raise Cancelled()
        self.ws.set_current(stage)
        ev.emit(StageStarted())
        t0 = time.monotonic()
        _seed_everything(self.cfg.run.seed)
        summary = self.record(stage, getattr(self, f"_stage_{stage}")(ev) or {})
        ev.emit(StageFinished(seconds=time.monotonic() - t0, summary=summary))

    def record(self, stage: str, summary: dict[str, Any]) -> dict[str, Any]:
        """Mark ``stage`` finished with the inputs it ran on and a digest of what it produced;
        the distributed worker records hand-launched runs through here too."""
        summary = _jsonable(summary)
        incomplete = str(summary.pop("incomplete", "") or "")
        self.ws.mark_done(
            stage,
            self.fingerprint(stage),
            summary,
            inputs=self.plan.inputs(stage),
            incomplete=incomplete,
            output=self._output_digest(stage, summary),
        )
        return summary

    def _output_digest(self, stage: str, summary: dict[str, Any]) -> str:
        """What dependants read: the record keys where the stage lists them (generation), so a
        retry that produced the same rows (calls cached, counters moved) re-runs nothing."""
        keys = self.ws.state_dir / f"{stage}_keys.txt"
        if keys.exists():
            return digest(keys.read_text())
        return digest(summary)

    # -- stages

    def _stage_ingest(self, ev: Emitter) -> dict[str, Any]:
        if not self.cfg.sources.has_documents:
            from engine.core.records import write_chunks
            from engine.generate.llm_describe import synthesize_chunks

            chunks = synthesize_chunks(
                self.cfg, self.ws, ev, cancel=self.cancel, api_key=self.api_key
            )
            return {"documents": 0, "synthetic_chunks": write_chunks(self.ws.chunks_path, chunks)}
        from engine.ingest import run_ingest

        return run_ingest(self.cfg, self.ws, ev)

    def _stage_generate(self, ev: Emitter) -> dict[str, Any]:
        from dataclasses import asdict

        from engine.core.records import read_chunks

        chunks = read_chunks(self.ws.chunks_path)
        if self.cfg.generation.resolved == "litellm":
            from engine.generate.llm import run_llm_generation

            summary = run_llm_generation(
                self.cfg, self.ws, chunks, ev, cancel=self.cancel, api_key=self.api_key
            )
        else:
            from engine.generate.llm_free import LlmFreeGenerator

            summary = LlmFreeGenerator(self.cfg.generation.llm_free).generate(
                chunks, self.ws, ev, self.cancel
            )
        (self.ws.state_dir / "generate_keys.txt").write_text("\n".join(summary.keys))
        out = asdict(summary)
        out.pop("keys")
        if summary.failed:
            out["incomplete"] = _failed_calls(summary)
            share = summary.failed / max(1, summary.chunks)
            limit = self.cfg.generation.max_failed_share
            if share > limit:
                raise RagtuneError(
                    f"{out['incomplete']} ({share:.0%} of {summary.chunks} chunks, over the "
                    f"{limit:.0%} allowed by generation.max_failed_share)",
                    where="generate",
                    hint="run again: finished calls are kept and only the failed ones are "
                    "retried; see the reasons above (rate limits, timeouts, bad JSON)",
                )
            ev.warning(
                f"{out['incomplete']}; training goes on without them and the next run retries them"
            )
        return out

    def _stage_prepare(self, ev: Emitter) -> dict[str, Any]:
        from engine.core.records import read_chunks
        from engine.data.prepare import run_prepare
        from engine.generate.rows import read_rows

        keys_file = self.ws.state_dir / "generate_keys.txt"
        keys = keys_file.read_text().split("\n") if keys_file.exists() else None
        rows = read_rows(self.ws.generated_path, keys)
        chunks = read_chunks(self.ws.chunks_path)
        return run_prepare(self.cfg.data, self.ws, rows, chunks, ev)

    def _stage_train(self, ev: Emitter) -> dict[str, Any]:
        from engine.core.gpu import GpuMonitor

        if self.cfg.distributed.nproc_per_node > 1 or self.cfg.distributed.nnodes > 1:
            from engine.training.launch import launch_training

            return launch_training(self.cfg, self.ws, ev, "embedder", self.cancel)
        from engine.embedder.train import train_embedder

        with GpuMonitor(ev):
            return train_embedder(self.cfg, self.ws, ev, self.cancel)

    def _stage_evaluate(self, ev: Emitter) -> dict[str, Any]:
        from engine.evaluate.stage import run_evaluate

        summary = run_evaluate(self.cfg, self.ws, ev)
        self._write_report()
        return {"suites": summary["suites"]}

    def _stage_deploy(self, ev: Emitter) -> dict[str, Any]:
        from engine.deploy.stage import run_deploy

        summary = run_deploy(self.cfg, self.ws, ev)
        self._write_report()
        return summary

    def _stage_rerank(self, ev: Emitter) -> dict[str, Any]:
        if self.cfg.distributed.nproc_per_node > 1 or self.cfg.distributed.nnodes > 1:
            from engine.training.launch import launch_training

            summary = launch_training(self.cfg, self.ws, ev, "reranker", self.cancel)
        else:
            from engine.core.gpu import GpuMonitor
            from engine.reranker.train import run_reranker_stage

            with GpuMonitor(ev):
                summary = run_reranker_stage(self.cfg, self.ws, ev, self.cancel)
        if summary.get("report"):
            (self.ws.root / "report_reranker.md").write_text(summary["report"], encoding="utf-8")
        self._write_report()
        summary.pop("report", None)
        return summary

    def _stage_export(self, ev: Emitter) -> dict[str, Any]:
        from engine.export.stage import export_models

        return export_models(self.cfg, self.ws, ev, push=self.cfg.export.push_to_hub)

    def _write_report(self) -> None:
        parts = [f"# ragtune report: {self.cfg.run.name}\n"]
        for name in ("report_embedder.md", "report_deploy.md", "report_reranker.md"):
            path = self.ws.root / name
            if path.exists():
                parts.append(path.read_text(encoding="utf-8"))
        self.ws.report_path.write_text("\n".join(parts), encoding="utf-8")


def _failed_calls(summary: Any) -> str:
    from engine.generate.base import failure_reasons

    reasons = failure_reasons(summary.failures_by_reason)
    return f"{summary.failed} chunks failed" + (f" ({reasons})" if reasons else "")


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


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))
