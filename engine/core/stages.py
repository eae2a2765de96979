"""What each stage depends on and writes, and the fingerprints, skip/rerun and status derived from it.

A stage's fingerprint hashes the result-changing settings it declares (see
``setting(fingerprint=False)``) and its upstream stages' fingerprints, so changing any
setting re-runs exactly the stages that read it, and everything downstream of them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.config import RunConfig
    from engine.core.workspace import Workspace


@dataclass(frozen=True)
class StageSpec:
    """``settings`` are dotted config paths (a section or one key); ``derived`` adds inputs that
    are not settings, such as the state of the source files."""

    name: str
    settings: tuple[str, ...]
    upstream: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    derived: Callable[[RunConfig], dict[str, Any]] | None = None


def _source_files(cfg: RunConfig) -> dict[str, Any]:
    from engine.ingest import discover_files

    src = cfg.sources
    files = []
    if src.paths:
        for p in discover_files(src, cfg.base_dir, missing="skip"):
            st = p.stat()
            files.append([str(p), st.st_size, int(st.st_mtime)])
    dataset: Any = src.dataset
    local = cfg.resolve(src.dataset) if src.dataset else None
    if local is not None and local.exists():
        st = local.stat()
        dataset = [str(local), st.st_size, int(st.st_mtime)]
    return {
        "source files": files,
        "source dataset": dataset,
        "tokenizer": cfg.chunking.tokenizer or cfg.embedder.base_model,
    }


def _benchmark_files(cfg: RunConfig) -> dict[str, Any]:
    if not cfg.eval.benchmark:
        return {}
    folder = cfg.resolve(cfg.eval.benchmark)
    files = sorted(folder.glob("*")) if folder.is_dir() else []
    return {"benchmark files": [[f.name, f.stat().st_size, int(f.stat().st_mtime)] for f in files]}


STAGE_SPECS: tuple[StageSpec, ...] = (
    StageSpec("ingest", ("sources", "chunking"), (), ("chunks_path",), _source_files),
    StageSpec("generate", ("generation", "run.seed"), ("ingest",), ("generated_path",)),
    StageSpec("prepare", ("data",), ("generate",), ("dataset_dir",)),
    StageSpec("train", ("embedder", "distributed", "run.seed"), ("prepare",), ("embedder_dir",)),
    StageSpec("evaluate", ("eval",), ("train",), ("metrics_path",), _benchmark_files),
    StageSpec(
        "rerank",
        ("reranker", "distributed", "embedder.query_prompt", "embedder.document_prompt"),
        ("train",),
        ("reranker_dir",),
    ),
    StageSpec("export", ("export",), ("evaluate", "rerank"), ()),
)
SPECS = {spec.name: spec for spec in STAGE_SPECS}
STAGES = tuple(spec.name for spec in STAGE_SPECS)


def _setting(cfg: RunConfig, dotted: str) -> Any:
    from engine.config.base import Section

    node: Any = cfg
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if isinstance(node, Section) and i == len(parts) - 1:
            from dataclasses import fields

            meta = next(f.metadata for f in fields(node) if f.name == part)
            if not meta.get("fingerprint", True):
                return None
        node = getattr(node, part)
    return node.result_settings() if isinstance(node, Section) else node


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = value


def digest(value: Any) -> str:
    blob = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class StagePlan:
    """Fingerprints and inputs of every stage for one config, computed once each."""

    def __init__(self, cfg: RunConfig, ws: Workspace | None = None) -> None:
        self.cfg = cfg
        self.ws = ws
        self._inputs: dict[str, dict[str, Any]] = {}
        self._fps: dict[str, str] = {}

    def inputs(self, stage: str) -> dict[str, Any]:
        """Flat ``{setting or input name: value}``, upstream stages as ``stage:<name>``."""
        if stage not in self._inputs:
            spec = SPECS[stage]
            flat: dict[str, Any] = {}
            for dotted in spec.settings:
                _flatten(dotted, _setting(self.cfg, dotted), flat)
            if spec.derived is not None:
                flat.update(spec.derived(self.cfg))
            for up in spec.upstream:
                # What the upstream stage produced, not only what it was asked: a stage that
                # finished work it had left (failed LLM calls retried) re-runs its dependants.
                recorded = self.ws.stage_state(up) if self.ws is not None else None
                output = (recorded or {}).get("output", "")
                flat[f"stage:{up}"] = f"{self.fingerprint(up)}/{output}"
            self._inputs[stage] = flat
        return self._inputs[stage]

    def fingerprint(self, stage: str) -> str:
        if stage not in self._fps:
            self._fps[stage] = digest([stage, self.inputs(stage)])
        return self._fps[stage]

    def is_current(self, stage: str, ws: Workspace) -> bool:
        recorded = ws.stage_state(stage)
        if not recorded or recorded.get("incomplete"):
            return False
        before = recorded.get("inputs") or {}
        return digest(before) == digest(self.inputs(stage))

    def why_stale(self, stage: str, ws: Workspace) -> list[str]:
        """What changed since the stage last finished, by name; empty when it is current."""
        recorded = ws.stage_state(stage)
        if recorded is None or self.is_current(stage, ws):
            return []
        before = {k: digest(v) for k, v in (recorded.get("inputs") or {}).items()}
        now = {k: digest(v) for k, v in self.inputs(stage).items()}
        changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
        named = [
            k.removeprefix("stage:") + " (upstream)" if k.startswith("stage:") else k
            for k in changed
        ]
        return named or ["an earlier ragtune version's settings"]

    def status(self, ws: Workspace) -> dict[str, StageStatus]:
        self.ws = ws
        out: dict[str, StageStatus] = {}
        running = ws.lock().holder()
        current = ws.current_stage() if running else None
        for stage in STAGES:
            recorded = ws.stage_state(stage)
            if stage == current:
                out[stage] = StageStatus("running", [f"pid {running}"])
            elif recorded is None:
                partial = ws.has_partial_output(stage)
                out[stage] = StageStatus("partial" if partial else "to do", [])
            elif recorded.get("incomplete"):
                out[stage] = StageStatus("incomplete", [str(recorded["incomplete"])])
            else:
                why = self.why_stale(stage, ws)
                out[stage] = StageStatus("stale" if why else "done", why)
        return out


@dataclass(frozen=True)
class StageStatus:
    """``state`` is done / stale / to do / partial / incomplete / running; ``reasons`` say why."""

    state: str
    reasons: list[str]

    def __str__(self) -> str:
        if not self.reasons:
            return self.state
        return f"{self.state} ({', '.join(self.reasons)})"
