"""The generate stage as the pipeline sees it: what it reads (the generator that runs, its
prompts, the sample review), what it leaves, and how it runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ragtune.engine.core.errors import StageStopped
from ragtune.engine.core.outputs import Output, is_file
from ragtune.engine.core.stages import Stage, StageContext, digest

if TYPE_CHECKING:
    from ragtune.engine.config import RunConfig

# Which prompt files each stage reads: editing one re-runs only the stage that sends it.
GENERATE_PROMPTS = ("system", "queries", "answer")
DESCRIBE_PROMPTS = ("system", "draft_system", "passages")


def prompt_inputs(cfg: RunConfig, names: tuple[str, ...]) -> dict[str, Any]:
    """The prompts a stage will use, which a user may edit between runs.

    A missing file counts as its default (generation writes it), and a system prompt still as
    drafted from the description counts as "drafted" (the description is an input already),
    so the files a run itself writes do not make it stale.
    """
    from ragtune.engine.generate.llm_prompts import PROMPT_FILES
    from ragtune.engine.generate.rows import make_key

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


def _inputs(cfg: RunConfig) -> dict[str, Any]:
    """Only the generator that runs: an LLM setting does not redo LLM-free rows and back."""
    from ragtune.engine.generate.registry import generator_for

    out: dict[str, Any] = {"generator": cfg.generation.resolved}
    out.update(generator_for(cfg).inputs(cfg))
    out["sample review"] = _review(cfg)
    return out


def _review(cfg: RunConfig) -> str:
    """The reviewed sample rows: rejecting or editing one changes what generation writes."""
    from ragtune.engine.core.workspace import Workspace
    from ragtune.engine.generate.review import load_review, review_digest

    return review_digest(load_review(Workspace(cfg.workspace_dir)))


def _run(ctx: StageContext) -> dict[str, Any]:
    from ragtune.engine.core.records import read_chunks

    cfg, ws, ev = ctx.cfg, ctx.ws, ctx.events
    from ragtune.engine.generate.registry import generator_for

    chunks = read_chunks(ws.chunks_path)
    summary = generator_for(cfg).run(ctx, chunks)
    (ws.state_dir / "generate_keys.txt").write_text("\n".join(summary.keys))
    out = summary.to_dict()
    if summary.failed:
        out["incomplete"] = _failed_calls(summary)
        share = summary.failed / max(1, summary.chunks)
        limit = cfg.generation.max_failed_share
        if share > limit:
            raise StageStopped(
                f"{out['incomplete']} ({share:.0%} of {summary.chunks} chunks, over the "
                f"{limit:.0%} allowed by generation.max_failed_share)",
                where="generate",
                hint="fix what the reasons name (a server that is down or a wrong api_base "
                "for connection, rate limits, timeouts), then run again: finished calls are "
                "kept and only the failed ones are retried",
                summary=out,
            )
        ev.warning(
            f"{out['incomplete']}; training goes on without them and the next run retries them"
        )
    return out


def _failed_calls(summary: Any) -> str:
    from ragtune.engine.generate.base import failure_reasons

    reasons = failure_reasons(summary.failures_by_reason)
    return f"{summary.failed} chunks failed" + (f" ({reasons})" if reasons else "")


STAGE = Stage(
    "generate",
    settings=("run.seed",),
    upstream=("ingest",),
    outputs=(
        Output("generated rows", lambda ws: ws.generated_path, is_file),
        Output("generated keys", lambda ws: ws.state_dir / "generate_keys.txt", is_file),
    ),
    derived=_inputs,
    partial=lambda ws: ws.generated_path,
    run=_run,
)
