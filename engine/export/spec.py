"""The export stage as the pipeline sees it: model cards from the measured tables, and the Hub
push when the config asks for it."""

from __future__ import annotations

from typing import Any

from ragtune.engine.core.stages import Stage, StageContext


def _run(ctx: StageContext) -> dict[str, Any]:
    from ragtune.engine.export.stage import export_models

    return export_models(ctx.cfg, ctx.ws, ctx.events, push=ctx.cfg.export.push_to_hub)


STAGE = Stage("export", settings=("export",), upstream=("evaluate", "deploy", "rerank"), run=_run)
