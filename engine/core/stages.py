"""What a stage is (``Stage``), and the fingerprints, skip/rerun, records and status derived from
the stages' declarations.

A stage's fingerprint hashes the result-changing settings it declares (see
``setting(fingerprint=False)``) and its upstream stages' fingerprints, so changing any
setting re-runs exactly the stages that read it, and everything downstream of them. The
stages themselves live in their packages and are listed in order in ``ragtune.engine.stages``: this
module knows none of them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.engine.core.outputs import Output, problems

if TYPE_CHECKING:
    from ragtune.engine.config import RunConfig
    from ragtune.engine.core.events import Emitter
    from ragtune.engine.core.workspace import Workspace


@dataclass(frozen=True)
class StageContext:
    """What a stage's ``run`` gets: the workspace's own copy of the config (absolute paths),
    its events (already tagged with the stage), the cancel flag and a typed API key."""

    cfg: RunConfig
    ws: Workspace
    events: Emitter
    cancel: threading.Event
    api_key: str | None = None


@dataclass(frozen=True)
class Stage:
    """One step of a run, declared by its package.

    ``settings`` are dotted config paths (a section or one key) whose values change its
    result; ``derived`` adds inputs that are not settings, such as the state of the source
    files; ``upstream`` are the stages whose outputs it reads; ``outputs`` are what it
    promises to leave, checked before it counts as done; ``enabled`` says whether it runs at
    all under a config (a switched-off stage depends on nothing else); ``partial`` is where a
    stopped run leaves work the next one continues; ``run`` does the work and returns the
    summary that is recorded; ``produced`` is what dependants read of its outputs (by default
    its summary), so a rebuild that made the same thing re-runs nothing after it.
    """

    name: str
    settings: tuple[str, ...]
    upstream: tuple[str, ...] = ()
    outputs: tuple[Output, ...] = ()
    derived: Callable[[RunConfig], dict[str, Any]] | None = None
    enabled: Callable[[RunConfig], bool] | None = None
    partial: Callable[[Workspace], Path] | None = None
    run: Callable[[StageContext], dict[str, Any]] | None = None
    produced: Callable[[Workspace], Any] | None = None


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


def _setting(cfg: RunConfig, dotted: str) -> Any:
    from ragtune.engine.config.base import Section

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


def flatten_into(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            flatten_into(f"{prefix}.{key}" if prefix else str(key), inner, out)
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
    from ragtune.engine.config import RunConfig

    return RunConfig()


def _is_default(key: str, value: Any) -> bool:
    """Whether ``value`` is what a run made before the setting ``key`` existed behaved as:
    its default, or the ``before`` value of a setting whose default changed results."""
    from dataclasses import fields

    from ragtune.engine.config.base import Section

    node: Any = _defaults()
    meta: Any = {}
    for part in key.split("."):
        if not isinstance(node, Section) or not hasattr(node, part):
            return False
        meta = next((f.metadata for f in fields(node) if f.name == part), {})
        node = getattr(node, part)
    if isinstance(node, Section):
        return False
    if "before" in meta:
        node = meta["before"]
    return digest(list(node) if isinstance(node, tuple) else node) == digest(value)


class StagePlan:
    """Fingerprints and inputs of every stage for one config, computed once each.

    ``stages`` is the ordered pipeline (``ragtune.engine.stages.PIPELINE``; ``ragtune.engine.stages.plan``
    builds this for it).
    """

    def __init__(
        self, cfg: RunConfig, ws: Workspace | None = None, *, stages: Sequence[Stage]
    ) -> None:
        self.cfg = cfg
        self.ws = ws
        self.stages = tuple(stages)
        self.specs = {stage.name: stage for stage in self.stages}
        self.names = tuple(self.specs)
        self._inputs: dict[str, dict[str, Any]] = {}
        self._fps: dict[str, str] = {}

    def inputs(self, stage: str) -> dict[str, Any]:
        """Flat ``{setting or input name: value}``, upstream stages as ``stage:<name>``."""
        if stage not in self._inputs:
            spec = self.specs[stage]
            flat: dict[str, Any] = {}
            if not self.enabled(stage):
                # Off: nothing it would read matters, so its dependants do not re-run when a
                # setting of a stage that does not run changes.
                self._inputs[stage] = {"enabled": False}
                return self._inputs[stage]
            for dotted in spec.settings:
                flatten_into(dotted, _setting(self.cfg, dotted), flat)
            if spec.derived is not None:
                for key, value in spec.derived(self.cfg).items():
                    flatten_into(key, value, flat)
            for up in spec.upstream:
                # What the upstream stage produced, not only what it was asked: a stage that
                # finished work it had left (failed LLM calls retried) re-runs its dependants.
                recorded = self.ws.stage_state(up) if self.ws is not None else None
                output = (recorded or {}).get("output", "")
                flat[f"stage:{up}"] = f"{self.fingerprint(up)}/{output}"
            self._inputs[stage] = flat
        return self._inputs[stage]

    def enabled(self, stage: str) -> bool:
        spec = self.specs[stage]
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

    def output_problems(self, stage: str, ws: Workspace | None = None) -> list[str]:
        """The promised outputs that are missing or do not read; only asked of a stage whose
        record says it finished."""
        ws = ws or self.ws
        recorded = ws.stage_state(stage) if ws is not None else None
        if ws is None or recorded is None:
            return []
        return problems(self.specs[stage].outputs, ws, recorded.get("summary") or {})

    def is_done(self, stage: str, ws: Workspace | None = None) -> bool:
        """Current inputs *and* outputs that are there and read: what lets a run skip it."""
        return self.is_current(stage, ws) and not self.output_problems(stage, ws)

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

    def has_partial(self, stage: str, ws: Workspace) -> bool:
        """Whether a stopped run left work that the next run continues: a trainer's
        checkpoints only when one of them will be resumed (``resumes_from``)."""
        where = self.specs[stage].partial
        if where is None or not where(ws).exists():
            return False
        return not where(ws).is_dir() or self.resumes_from(stage, ws) is not None

    def resumes_from(self, stage: str, ws: Workspace) -> str | None:
        """The checkpoint the next run of ``stage`` resumes, if it left one for these settings."""
        from ragtune.engine.core.workspace import resumable_checkpoint

        where = self.specs[stage].partial
        if where is None or not where(ws).is_dir():
            return None
        return resumable_checkpoint(where(ws), self.fingerprint(stage))

    def record(self, stage: str, summary: dict[str, Any]) -> dict[str, Any]:
        """Mark ``stage`` finished with the inputs it ran on and a digest of what it produced:
        the one recorder, for the pipeline and for a torchrun worker run by hand."""
        if self.ws is None:
            raise ValueError("recording a stage needs the workspace")
        summary = json.loads(json.dumps(summary, default=str))
        incomplete = str(summary.pop("incomplete", "") or "")
        self.ws.mark_done(
            stage,
            self.fingerprint(stage),
            summary,
            inputs=self.inputs(stage),
            incomplete=incomplete,
            output=self._output_digest(stage, summary),
        )
        return summary

    def _output_digest(self, stage: str, summary: dict[str, Any]) -> str:
        """What dependants read: the record keys where the stage lists them (generation), so a
        retry that produced the same rows (calls cached, counters moved) re-runs nothing."""
        assert self.ws is not None
        produced = self.specs[stage].produced
        if produced is not None:
            return digest(produced(self.ws))
        keys = self.ws.state_dir / f"{stage}_keys.txt"
        if keys.exists():
            return digest(keys.read_text())
        return digest(summary)

    def status(self, ws: Workspace) -> dict[str, StageStatus]:
        self.ws = ws
        out: dict[str, StageStatus] = {}
        running = ws.lock().holder()
        current = ws.current_stage() if running else None
        for stage in self.names:
            recorded = ws.stage_state(stage)
            if stage == current:
                out[stage] = StageStatus("running", [f"pid {running}"] if running > 0 else [])
            elif not self.enabled(stage):
                out[stage] = StageStatus("off", ["switched off in the config"])
            elif recorded is not None and recorded.get("incomplete"):
                out[stage] = StageStatus("incomplete", [str(recorded["incomplete"])])
            elif recorded is not None and (broken := self.output_problems(stage, ws)):
                out[stage] = StageStatus("to do", [*broken, "the next run rebuilds it"])
            elif recorded is not None and self.is_current(stage, ws):
                out[stage] = StageStatus("done", [])
            elif checkpoint := self.resumes_from(stage, ws):
                # Stopped mid-way (Ctrl-C, SIGKILL) with these settings: the next run resumes.
                out[stage] = StageStatus("partial", [f"resumes from {checkpoint}"])
            elif recorded is None:
                out[stage] = StageStatus("partial" if self.has_partial(stage, ws) else "to do", [])
            else:
                out[stage] = StageStatus("stale", self.why_stale(stage, ws))
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
