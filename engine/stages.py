"""The pipeline's stages in the order they run, and what is derived from the list: plans,
status, stage names. Each stage declares itself in its own package (``<package>/spec.py``);
this is the one place that names them all, above ``ragtune.engine.core``, which knows none of them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ragtune.engine.core.stages import Stage, StagePlan, StageStatus
from ragtune.engine.data.spec import STAGE as PREPARE
from ragtune.engine.deploy.spec import STAGE as DEPLOY
from ragtune.engine.embedder.spec import STAGE as TRAIN
from ragtune.engine.evaluate.spec import STAGE as EVALUATE
from ragtune.engine.export.spec import STAGE as EXPORT
from ragtune.engine.generate.spec import STAGE as GENERATE
from ragtune.engine.ingest.spec import STAGE as INGEST
from ragtune.engine.reranker.spec import STAGE as RERANK
from ragtune.engine.retrieval.spec import STAGE as INDEX

if TYPE_CHECKING:
    from ragtune.engine.config import RunConfig
    from ragtune.engine.core.workspace import Workspace

PIPELINE: tuple[Stage, ...] = (
    INGEST,
    INDEX,
    GENERATE,
    PREPARE,
    TRAIN,
    EVALUATE,
    DEPLOY,
    RERANK,
    EXPORT,
)
STAGES: tuple[str, ...] = tuple(stage.name for stage in PIPELINE)


def plan(cfg: RunConfig, ws: Workspace | None = None) -> StagePlan:
    return StagePlan(cfg, ws, stages=PIPELINE)


def stage_statuses(ws: Workspace, cfg: Any = None) -> dict[str, StageStatus]:
    """Per stage: done / stale (what changed) / to do / partial / incomplete / running / off.

    Without a config it reads the workspace's own ``config.toml``.
    """
    from ragtune.engine.core.errors import RagtuneError

    if cfg is None:
        from ragtune.engine.config import load_config

        try:
            cfg = load_config(ws.config_path)
        except RagtuneError:
            cfg = None
    if cfg is None:
        return {s: StageStatus("done" if ws.stage_state(s) else "to do", []) for s in STAGES}
    return plan(cfg).status(ws)


def status_text(ws: Workspace, cfg: Any = None) -> dict[str, str]:
    """``stage_statuses`` as text, for ``ragtune status``."""
    return {k: str(v) for k, v in stage_statuses(ws, cfg).items()}
