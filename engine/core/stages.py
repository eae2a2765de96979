"""What each stage depends on and writes, and the fingerprints, skip/rerun and status derived from it.

A stage's fingerprint hashes the result-changing settings it declares (see
``setting(fingerprint=False)``) and its upstream stages' fingerprints, so changing any
setting re-runs exactly the stages that read it, and everything downstream of them.
"""

from __future__ import annotations

import functools
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
    are not settings, such as the state of the source files; ``enabled`` says whether the
    stage runs at all under a config (a switched-off stage depends on nothing else)."""

    name: str
    settings: tuple[str, ...]
    upstream: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    derived: Callable[[RunConfig], dict[str, Any]] | None = None
    enabled: Callable[[RunConfig], bool] | None = None


# Where the sources sit is not among them: the files and dataset read are inputs by name,
# size and mtime (``_ingest_inputs``), so a moved or cloned project is the same run.
SOURCE_SETTINGS = tuple(
    f"sources.{key}"
    for key in (
        "include",
        "exclude",
        "dataset_config",
        "dataset_split",
        "text_column",
        "id_column",
        "title_column",
        "max_rows",
    )
)


def _ingest_inputs(cfg: RunConfig) -> dict[str, Any]:
    """The files read (size and mtime), the tokenizer that cuts them, and, for a run with only
    a description, what the LLM is asked to write the passages from."""
    from engine.ingest import discover_sources, source_name

    src = cfg.sources
    files = []
    if src.paths:
        for p, name in discover_sources(src, cfg.base_dir, missing="skip").items():
            st = p.stat()
            files.append([name, st.st_size, int(st.st_mtime)])
    dataset: Any = src.dataset
    local = cfg.resolve(src.dataset) if src.dataset else None
    if local is not None and local.exists():
        st = local.stat()
        dataset = [source_name(local), st.st_size, int(st.st_mtime)]
    out: dict[str, Any] = {"source files": files, "source dataset": dataset}
    if src.has_documents:
        out["tokenizer"] = cfg.chunking.tokenizer or cfg.embedder.base_model
        out["embedder.trust_remote_code"] = cfg.embedder.trust_remote_code
    else:
        # Synthetic passages: written by the LLM from the description (engine.generate.llm_describe).
        out["sources.description"] = src.description
        _flatten("generation.llm", _llm_results(cfg), out)
        out.update(_prompt_files(cfg, DESCRIBE_PROMPTS))
    return out


def _llm_results(cfg: RunConfig) -> dict[str, Any]:
    return cfg.generation.llm.result_settings()


# Which prompt files each stage reads: editing one re-runs only the stage that sends it.
GENERATE_PROMPTS = ("system", "queries", "answer")
DESCRIBE_PROMPTS = ("system", "draft_system", "passages")


def _prompt_files(cfg: RunConfig, names: tuple[str, ...]) -> dict[str, Any]:
    """The prompts a stage will use, which a user may edit between runs.

    A missing file counts as its default (generation writes it), and a system prompt still as
    drafted from the description counts as "drafted" (the description is an input already),
    so the files a run itself writes do not make it stale.
    """
    from engine.generate.llm_prompts import PROMPT_FILES
    from engine.generate.rows import make_key

    folder = cfg.workspace_dir / "prompts"
    out: dict[str, str] = {}
    for name, (filename, default) in PROMPT_FILES.items():
        if name not in names:
            continue
        path = folder / filename
        text = path.read_text(encoding="utf-8") if path.is_file() else default
        marker = folder / ".system_drafted"
        if name == "system" and cfg.sources.description:
            drafted = marker.is_file() and marker.read_text(encoding="utf-8") == make_key(
                cfg.sources.description, text
            )
            if drafted or not marker.is_file():
                out[name] = "drafted from sources.description"
                continue
        out[name] = digest(text)
    return {"prompts": out}


def _generate_inputs(cfg: RunConfig) -> dict[str, Any]:
    """Only the generator that runs: an LLM setting does not redo LLM-free rows and back."""
    gen = cfg.generation
    out: dict[str, Any] = {"generator": gen.resolved}
    if gen.resolved == "litellm":
        _flatten("generation.llm", _llm_results(cfg), out)
        out["sources.description"] = cfg.sources.description
        # The quality gate (dedup, round trip) embeds with the base model.
        out["embedder.base_model"] = cfg.embedder.base_model
        out.update(_prompt_files(cfg, GENERATE_PROMPTS))
    else:
        _flatten("generation.llm_free", gen.llm_free.result_settings(), out)
    out["sample review"] = _review(cfg)
    return out


def _review(cfg: RunConfig) -> str:
    """The reviewed sample rows: rejecting or editing one changes what generation writes."""
    from engine.core.workspace import Workspace
    from engine.generate.review import load_review, review_digest

    return review_digest(load_review(Workspace(cfg.workspace_dir)))


def _benchmark_files(cfg: RunConfig) -> dict[str, Any]:
    """The labelled files by name, size and mtime (None without a benchmark), so a moved
    project is not stale and a removed benchmark is."""
    if not cfg.eval.benchmark:
        return {"benchmark files": None}
    folder = cfg.resolve(cfg.eval.benchmark)
    files = sorted(folder.glob("*")) if folder.is_dir() else []
    return {"benchmark files": [[f.name, f.stat().st_size, int(f.stat().st_mtime)] for f in files]}


def _reranker_enabled(cfg: RunConfig) -> bool:
    return cfg.reranker.enabled


# Process counts change the global batch (and so the in-batch negatives); the backend and
# the rendezvous only change where the work runs.
WORLD = ("distributed.nproc_per_node", "distributed.nnodes")
# What the embedder stage's dependants read of the embedder settings themselves (the rest
# reaches them through the trained model).
EMBEDDER_USE = (
    "embedder.base_model",
    "embedder.trust_remote_code",
    "embedder.query_prompt",
    "embedder.document_prompt",
)

STAGE_SPECS: tuple[StageSpec, ...] = (
    StageSpec("ingest", ("chunking", *SOURCE_SETTINGS), (), ("chunks_path",), _ingest_inputs),
    StageSpec("generate", ("run.seed",), ("ingest",), ("generated_path",), _generate_inputs),
    StageSpec("prepare", ("data",), ("generate",), ("dataset_dir",)),
    StageSpec("train", ("embedder", *WORLD, "run.seed"), ("prepare",), ("embedder_dir",)),
    StageSpec(
        "evaluate",
        ("eval", *EMBEDDER_USE, "embedder.matryoshka_dims"),
        ("train",),
        ("metrics_path",),
        _benchmark_files,
    ),
    StageSpec(
        "deploy",
        (
            "deploy",
            *EMBEDDER_USE,
            "embedder.matryoshka_dims",
            "embedder.corpus_rotation",
            "embedder.seed",
            "run.seed",
        ),
        # Not evaluate: its k-values and metric names change nothing here (the untrained
        # baseline it copies from metrics.json changes only with inputs listed above).
        ("train",),
        ("metrics_path",),
        _benchmark_files,
        enabled=lambda cfg: cfg.deploy.enabled,
    ),
    StageSpec(
        "rerank",
        ("reranker", *WORLD, *EMBEDDER_USE, "run.seed"),
        ("train",),
        ("reranker_dir",),
        enabled=_reranker_enabled,
    ),
    StageSpec("export", ("export",), ("evaluate", "deploy", "rerank"), ()),
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


def _changed(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """Input names whose value differs. A setting that did not exist when the stage ran
    counts as unchanged while it holds its default (that is what the old code did); one
    recorded then but not read now (``Section.inactive``, or removed) changes nothing."""
    a = {k: digest(v) for k, v in before.items()}
    b = {k: digest(v) for k, v in now.items()}
    return sorted(k for k in b if a.get(k) != b[k] and not (k not in a and _is_default(k, now[k])))


@functools.lru_cache(maxsize=1)
def _defaults() -> Any:
    from engine.config import RunConfig

    return RunConfig()


def _is_default(key: str, value: Any) -> bool:
    from engine.config.base import Section

    node: Any = _defaults()
    for part in key.split("."):
        if not isinstance(node, Section) or not hasattr(node, part):
            return False
        node = getattr(node, part)
    if isinstance(node, Section):
        return False
    return digest(list(node) if isinstance(node, tuple) else node) == digest(value)


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
            if not self.enabled(stage):
                # Off: nothing it would read matters, so its dependants do not re-run when a
                # setting of a stage that does not run changes.
                self._inputs[stage] = {"enabled": False}
                return self._inputs[stage]
            for dotted in spec.settings:
                _flatten(dotted, _setting(self.cfg, dotted), flat)
            if spec.derived is not None:
                for key, value in spec.derived(self.cfg).items():
                    _flatten(key, value, flat)
            for up in spec.upstream:
                # What the upstream stage produced, not only what it was asked: a stage that
                # finished work it had left (failed LLM calls retried) re-runs its dependants.
                recorded = self.ws.stage_state(up) if self.ws is not None else None
                output = (recorded or {}).get("output", "")
                flat[f"stage:{up}"] = f"{self.fingerprint(up)}/{output}"
            self._inputs[stage] = flat
        return self._inputs[stage]

    def enabled(self, stage: str) -> bool:
        spec = SPECS[stage]
        return spec.enabled is None or spec.enabled(self.cfg)

    def fingerprint(self, stage: str) -> str:
        """The recorded fingerprint while the stage is current, else one from today's inputs.

        Keeping the recorded one means a setting added in a later ragtune version (at its
        default) changes no identity, so it re-runs nothing downstream either.
        """
        if stage not in self._fps:
            recorded = self.ws.stage_state(stage) if self.ws is not None else None
            if recorded and recorded.get("fingerprint") and self.is_current(stage, self.ws):
                self._fps[stage] = str(recorded["fingerprint"])
            else:
                self._fps[stage] = digest([stage, self.inputs(stage)])
        return self._fps[stage]

    def is_current(self, stage: str, ws: Workspace | None = None) -> bool:
        ws = ws or self.ws
        recorded = ws.stage_state(stage) if ws is not None else None
        if not recorded or recorded.get("incomplete") or "inputs" not in recorded:
            return False
        return not _changed(recorded["inputs"] or {}, self.inputs(stage))

    def why_stale(self, stage: str, ws: Workspace) -> list[str]:
        """What changed since the stage last finished, by name; empty when it is current."""
        recorded = ws.stage_state(stage)
        if recorded is None or self.is_current(stage, ws):
            return []
        changed = _changed(recorded.get("inputs") or {}, self.inputs(stage))
        named = [
            k.removeprefix("stage:") + " (upstream)" if k.startswith("stage:") else k
            for k in changed
        ]
        return named or ["recorded by an earlier ragtune version"]

    def status(self, ws: Workspace) -> dict[str, StageStatus]:
        self.ws = ws
        out: dict[str, StageStatus] = {}
        running = ws.lock().holder()
        current = ws.current_stage() if running else None
        for stage in STAGES:
            recorded = ws.stage_state(stage)
            if stage == current:
                out[stage] = StageStatus("running", [f"pid {running}"] if running > 0 else [])
            elif not self.enabled(stage):
                out[stage] = StageStatus("off", ["switched off in the config"])
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
    """``state`` is done / stale / to do / partial / incomplete / running / off; ``reasons``
    say why."""

    state: str
    reasons: list[str]

    def __str__(self) -> str:
        if not self.reasons:
            return self.state
        return f"{self.state} ({', '.join(self.reasons)})"
