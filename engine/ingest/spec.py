"""The ingest stage as the pipeline sees it: the sources and chunking it reads, the chunks
file it leaves, and how it runs (from documents, or passages an LLM writes from a
description)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ragtune.engine.core.outputs import Output, parquet_reads
from ragtune.engine.core.payloads import IngestSummary
from ragtune.engine.core.stages import Stage, StageContext, flatten_into

if TYPE_CHECKING:
    from ragtune.engine.config import RunConfig
    from ragtune.engine.core.workspace import Workspace

# Where the sources sit is not among them: the files and dataset read are inputs by name,
# size and mtime (``_inputs``), so a moved or cloned project is the same run.
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


def _inputs(cfg: RunConfig) -> dict[str, Any]:
    """The files read (size and mtime), the tokenizer that cuts them, and, for a run with only
    a description, what the LLM is asked to write the passages from."""
    from ragtune.engine.generate.spec import DESCRIBE_PROMPTS, prompt_inputs
    from ragtune.engine.ingest import discover_sources, source_name

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
        flatten_into("generation.llm", cfg.generation.llm.result_settings(), out)
        out.update(prompt_inputs(cfg, DESCRIBE_PROMPTS))
    return out


def _run(ctx: StageContext) -> dict[str, Any]:
    cfg, ws = ctx.cfg, ctx.ws
    if not cfg.sources.has_documents:
        from ragtune.engine.core.records import write_chunks
        from ragtune.engine.generate.llm_describe import synthesize_chunks

        chunks = synthesize_chunks(cfg, ws, ctx.events, cancel=ctx.cancel, api_key=ctx.api_key)
        written = write_chunks(ws.chunks_path, chunks)
        return IngestSummary(documents=0, synthetic_chunks=written).to_dict()
    from ragtune.engine.ingest.stage import run_ingest

    return run_ingest(cfg, ws, ctx.events)


def _chunk_ids(ws: Workspace) -> list[str]:
    """Chunk ids hash each passage with its source's name: the same chunks from the same
    sources, wherever the workspace sits, are the same output."""
    import pyarrow.parquet as pq

    return pq.read_table(ws.chunks_path, columns=["chunk_id"]).column(0).to_pylist()


STAGE = Stage(
    "ingest",
    settings=("chunking", *SOURCE_SETTINGS),
    outputs=(Output("chunks", lambda ws: ws.chunks_path, parquet_reads),),
    derived=_inputs,
    run=_run,
    produced=_chunk_ids,
)
