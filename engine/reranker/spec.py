"""The rerank stage as the pipeline sees it: reranker settings and the trained embedder in; the
cross-encoder (when it is worth training) and metrics.json's "reranker" results out."""

from __future__ import annotations

from typing import Any

from ragtune.engine.core.outputs import Output, metrics_has, model_reads
from ragtune.engine.core.payloads import RerankSummary
from ragtune.engine.core.stages import EMBEDDER_USE, Stage, StageContext
from ragtune.engine.embedder.spec import uses_launcher, world_inputs


def _run(ctx: StageContext) -> dict[str, Any]:
    from ragtune.engine.evaluate.report import write_report

    if uses_launcher(ctx.cfg, "reranker"):
        from ragtune.engine.training.launch import launch_training

        summary = launch_training(ctx.cfg, ctx.ws, ctx.events, "reranker", ctx.cancel)
    else:
        from ragtune.engine.core.gpu import GpuMonitor
        from ragtune.engine.reranker.train import run_reranker_stage

        with GpuMonitor(ctx.events):
            summary = run_reranker_stage(ctx.cfg, ctx.ws, ctx.events, ctx.cancel)
    if summary.get("report"):
        (ctx.ws.root / "report_reranker.md").write_text(summary["report"], encoding="utf-8")
    write_report(ctx.cfg, ctx.ws)
    summary.pop("report", None)
    return summary


STAGE = Stage(
    "rerank",
    settings=("reranker", *EMBEDDER_USE, "run.seed"),
    derived=world_inputs("reranker"),
    upstream=("train",),
    outputs=(
        Output("reranker metrics", lambda ws: ws.metrics_path, metrics_has("reranker")),
        Output(
            "reranker",
            lambda ws: ws.reranker_dir,
            model_reads,
            # A reranker the stage decided not to train leaves no folder, and says so.
            when=lambda summary: not RerankSummary.from_dict(summary).not_trained,
        ),
    ),
    enabled=lambda cfg: cfg.reranker.enabled,
    partial=lambda ws: ws.checkpoints_dir / "reranker",
    run=_run,
)
