"""The deploy stage as the pipeline sees it: the deploy settings and the trained embedder in;
metrics.json's "deploy" table (and, when asked, the interpolated model) out."""

from __future__ import annotations

from typing import Any

from ragtune.engine.core.outputs import Output, metrics_has
from ragtune.engine.core.stages import EMBEDDER_USE, Stage, StageContext
from ragtune.engine.evaluate.spec import _benchmark_files


def _run(ctx: StageContext) -> dict[str, Any]:
    from ragtune.engine.deploy.stage import run_deploy
    from ragtune.engine.evaluate.report import write_report

    summary = run_deploy(ctx.cfg, ctx.ws, ctx.events)
    write_report(ctx.cfg, ctx.ws)
    return summary


STAGE = Stage(
    "deploy",
    settings=(
        "deploy",
        *EMBEDDER_USE,
        "embedder.matryoshka_dims",
        "embedder.corpus_rotation",
        "embedder.seed",
        "run.seed",
    ),
    # Not evaluate: its k-values and metric names change nothing here (the untrained
    # baseline it copies from metrics.json changes only with the inputs listed above).
    upstream=("train",),
    outputs=(Output("deploy table", lambda ws: ws.metrics_path, metrics_has("deploy")),),
    derived=_benchmark_files,
    enabled=lambda cfg: cfg.deploy.enabled,
    run=_run,
)
