"""The evaluate stage as the pipeline sees it: the evaluation settings, the model's use and the
labelled files in; metrics.json's "embedder" results and report.md out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ragtune.engine.core.outputs import Output, metrics_has
from ragtune.engine.core.payloads import EvaluateSummary
from ragtune.engine.core.stages import EMBEDDER_USE, Stage, StageContext

if TYPE_CHECKING:
    from ragtune.engine.config import RunConfig


def _benchmark_files(cfg: RunConfig) -> dict[str, Any]:
    """The labelled files by name, size and mtime (None without a benchmark), so a moved
    project is not stale and a removed benchmark is."""
    if not cfg.eval.benchmark:
        return {"benchmark files": None}
    folder = cfg.resolve(cfg.eval.benchmark)
    files = sorted(folder.glob("*")) if folder.is_dir() else []
    return {"benchmark files": [[f.name, f.stat().st_size, int(f.stat().st_mtime)] for f in files]}


def _run(ctx: StageContext) -> dict[str, Any]:
    from ragtune.engine.evaluate.report import write_report
    from ragtune.engine.evaluate.stage import run_evaluate

    summary = run_evaluate(ctx.cfg, ctx.ws, ctx.events)
    write_report(ctx.cfg, ctx.ws)
    return EvaluateSummary(suites=summary["suites"]).to_dict()


STAGE = Stage(
    "evaluate",
    settings=("eval", "retrieval", *EMBEDDER_USE, "embedder.matryoshka_dims"),
    upstream=("train", "index"),
    outputs=(Output("metrics", lambda ws: ws.metrics_path, metrics_has("embedder")),),
    derived=_benchmark_files,
    run=_run,
)
