"""The train stage as the pipeline sees it: every embedder setting in, the fine-tuned model out,
in this process or across torchrun's processes."""

from __future__ import annotations

from typing import Any

from engine.core.outputs import Output, model_reads
from engine.core.stages import WORLD, Stage, StageContext


def uses_launcher(cfg: Any) -> bool:
    """Several processes (or nodes) train through torchrun; one trains here."""
    return cfg.distributed.nproc_per_node > 1 or cfg.distributed.nnodes > 1


def _run(ctx: StageContext) -> dict[str, Any]:
    if uses_launcher(ctx.cfg):
        from engine.training.launch import launch_training

        return launch_training(ctx.cfg, ctx.ws, ctx.events, "embedder", ctx.cancel)
    from engine.core.gpu import GpuMonitor
    from engine.embedder.train import train_embedder

    with GpuMonitor(ctx.events):
        return train_embedder(ctx.cfg, ctx.ws, ctx.events, ctx.cancel)


STAGE = Stage(
    "train",
    settings=("embedder", *WORLD, "run.seed"),
    upstream=("prepare",),
    outputs=(Output("embedder", lambda ws: ws.embedder_dir, model_reads),),
    partial=lambda ws: ws.checkpoints_dir / "embedder",
    run=_run,
)
