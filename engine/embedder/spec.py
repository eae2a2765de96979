"""The train stage as the pipeline sees it: every embedder setting in, the fine-tuned model out,
in this process or across torchrun's processes."""

from __future__ import annotations

from typing import Any

from ragtune.engine.core.outputs import Output, model_reads
from ragtune.engine.core.stages import Stage, StageContext


def uses_launcher(cfg: Any, which: str = "embedder") -> bool:
    """Several processes (or nodes, or one GPU pinned among several) train through torchrun;
    one trains here."""
    from ragtune.engine.training.launch import uses_launcher as launched

    return launched(cfg, which)


def world_inputs(which: str) -> Any:
    """The process counts as numbers ("auto" resolved, without torch): they change the global
    batch, and a run with "auto" on one GPU stays current against one recorded with 1."""

    def derived(cfg: Any) -> dict[str, Any]:
        from ragtune.engine.training.launch import planned_processes

        return {
            "distributed.nproc_per_node": planned_processes(cfg, which),
            "distributed.nnodes": cfg.distributed.nnodes,
        }

    return derived


def _run(ctx: StageContext) -> dict[str, Any]:
    if uses_launcher(ctx.cfg):
        from ragtune.engine.training.launch import launch_training

        return launch_training(ctx.cfg, ctx.ws, ctx.events, "embedder", ctx.cancel)
    from ragtune.engine.core.gpu import GpuMonitor
    from ragtune.engine.embedder.train import train_embedder

    with GpuMonitor(ctx.events):
        return train_embedder(ctx.cfg, ctx.ws, ctx.events, ctx.cancel)


STAGE = Stage(
    "train",
    settings=("embedder", "run.seed"),
    derived=world_inputs("embedder"),
    upstream=("prepare",),
    outputs=(Output("embedder", lambda ws: ws.embedder_dir, model_reads),),
    partial=lambda ws: ws.checkpoints_dir / "embedder",
    run=_run,
)
