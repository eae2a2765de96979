"""Runs the stages in order, skipping those whose output is current, and reports each as events."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from engine.config import RunConfig
from engine.errors import Cancelled, ConfigError, RagtuneError
from engine.events import (
    Emitter,
    JsonlEventLog,
    RunFailed,
    RunFinished,
    StageFinished,
    StageSkipped,
    StageStarted,
)
from engine.workspace import STAGES, Workspace, fingerprint


class Pipeline:
    def __init__(
        self,
        cfg: RunConfig,
        *,
        events: Emitter | None = None,
        cancel: threading.Event | None = None,
        api_key: str | None = None,
    ) -> None:
        self.cfg = cfg
        self.ws = Workspace.create(cfg.workspace_dir)
        self.cancel = cancel or threading.Event()
        self.api_key = api_key
        self._log = JsonlEventLog(self.ws.events_path)
        self.events = events or Emitter()
        self.events.add(self._log)
        self._fps: dict[str, str] = {}
        # The workspace copy has absolute paths, so a replay of it matches the original run.
        self._canonical = cfg.for_workspace(self.ws.root)

    # -- fingerprints: a stage re-runs when its settings or anything upstream changed

    def _source_state(self) -> list[Any]:
        from engine.ingest import discover_files

        src = self.cfg.sources
        files = []
        if src.paths:
            for p in discover_files(src, self.cfg.base_dir):
                st = p.stat()
                files.append((str(p), st.st_size, int(st.st_mtime)))
        dataset = src.dataset
        local = self.cfg.resolve(dataset) if dataset else None
        if local is not None and local.exists():
            st = local.stat()
            dataset = f"{local}:{st.st_size}:{int(st.st_mtime)}"
        return [files, dataset]

    def fingerprint(self, stage: str) -> str:
        if stage in self._fps:
            return self._fps[stage]
        c = self._canonical
        parts: dict[str, Callable[[], list[Any]]] = {
            "ingest": lambda: [
                c.sources.to_dict(),
                c.chunking.to_dict(),
                c.chunking.tokenizer or c.embedder.base_model,
                self._source_state(),
            ],
            "generate": lambda: [self.fingerprint("ingest"), c.generation.to_dict()],
            "prepare": lambda: [self.fingerprint("generate"), c.data.to_dict()],
            "train": lambda: [self.fingerprint("prepare"), _training_settings(c)],
            "evaluate": lambda: [self.fingerprint("train"), c.eval.to_dict()],
            "rerank": lambda: [self.fingerprint("train"), c.reranker.to_dict()],
            "export": lambda: [
                self.fingerprint("evaluate"),
                self.fingerprint("rerank"),
                c.export.to_dict(),
            ],
        }
        self._fps[stage] = fingerprint(stage, *parts[stage]())
        return self._fps[stage]

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
        started = time.monotonic()
        self._canonical.save(self.ws.config_path)
        try:
            with self.ws.lock():
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
            self.events.remove(self._log)
            self._log.close()
        return self.ws

    def _run_stage(self, stage: str) -> None:
        if stage == "rerank" and not self.cfg.reranker.enabled:
            self.events.for_stage(stage).emit(StageSkipped(reason="reranker disabled in config"))
            return
        fp = self.fingerprint(stage)
        ev = self.events.for_stage(stage)
        self.events.stage = stage
        if self.ws.is_done(stage, fp):
            ev.emit(StageSkipped(reason="up to date"))
            return
        if self.cancel.is_set():
            raise Cancelled()
        ev.emit(StageStarted())
        t0 = time.monotonic()
        summary = getattr(self, f"_stage_{stage}")(ev) or {}
        self.ws.mark_done(stage, fp, _jsonable(summary))
        ev.emit(StageFinished(seconds=time.monotonic() - t0, summary=_jsonable(summary)))

    # -- stages

    def _stage_ingest(self, ev: Emitter) -> dict[str, Any]:
        if not self.cfg.sources.has_documents:
            from engine.generate.llm_describe import synthesize_chunks
            from engine.records import write_chunks

            chunks = synthesize_chunks(
                self.cfg, self.ws, ev, cancel=self.cancel, api_key=self.api_key
            )
            return {"documents": 0, "synthetic_chunks": write_chunks(self.ws.chunks_path, chunks)}
        from engine.ingest import run_ingest

        return run_ingest(self.cfg, self.ws, ev)

    def _stage_generate(self, ev: Emitter) -> dict[str, Any]:
        from dataclasses import asdict

        from engine.records import read_chunks

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
        return out

    def _stage_prepare(self, ev: Emitter) -> dict[str, Any]:
        from engine.generate.rows import read_rows
        from engine.prepare import run_prepare
        from engine.records import read_chunks

        keys_file = self.ws.state_dir / "generate_keys.txt"
        keys = keys_file.read_text().split("\n") if keys_file.exists() else None
        rows = read_rows(self.ws.generated_path, keys)
        chunks = read_chunks(self.ws.chunks_path)
        return run_prepare(self.cfg.data, self.ws, rows, chunks, ev)

    def _stage_train(self, ev: Emitter) -> dict[str, Any]:
        from engine.gpu import GpuMonitor

        if self.cfg.distributed.nproc_per_node > 1 or self.cfg.distributed.nnodes > 1:
            from engine.launch import launch_training

            return launch_training(self.cfg, self.ws, ev, "embedder", self.cancel)
        from engine.train_embedder import train_embedder

        with GpuMonitor(ev):
            return train_embedder(self.cfg, self.ws, ev, self.cancel)

    def _stage_evaluate(self, ev: Emitter) -> dict[str, Any]:
        from engine.eval_stage import run_evaluate

        summary = run_evaluate(self.cfg, self.ws, ev)
        self._write_report()
        return {"suites": summary["suites"]}

    def _stage_rerank(self, ev: Emitter) -> dict[str, Any]:
        if self.cfg.distributed.nproc_per_node > 1 or self.cfg.distributed.nnodes > 1:
            from engine.launch import launch_training

            summary = launch_training(self.cfg, self.ws, ev, "reranker", self.cancel)
        else:
            from engine.gpu import GpuMonitor
            from engine.reranker_training import run_reranker_stage

            with GpuMonitor(ev):
                summary = run_reranker_stage(self.cfg, self.ws, ev, self.cancel)
        if summary.get("report"):
            (self.ws.root / "report_reranker.md").write_text(summary["report"], encoding="utf-8")
        self._write_report()
        summary.pop("report", None)
        return summary

    def _stage_export(self, ev: Emitter) -> dict[str, Any]:
        from engine.export import export_models

        return export_models(self.cfg, self.ws, ev, push=self.cfg.export.push_to_hub)

    def _write_report(self) -> None:
        parts = [f"# ragtune report: {self.cfg.run.name}\n"]
        for name in ("report_embedder.md", "report_reranker.md"):
            path = self.ws.root / name
            if path.exists():
                parts.append(path.read_text(encoding="utf-8"))
        self.ws.report_path.write_text("\n".join(parts), encoding="utf-8")


def _training_settings(c: RunConfig) -> list[Any]:
    return [c.embedder.to_dict(), c.distributed.to_dict()]


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))
