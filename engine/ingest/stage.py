"""The ingest stage: every source chunked into chunks.parquet, bad files skipped by name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ragtune.engine.config import RunConfig, SourcesConfig
from ragtune.engine.core.errors import InputError
from ragtune.engine.core.events import Emitter
from ragtune.engine.core.payloads import IngestSummary
from ragtune.engine.core.records import Chunk, ChunkWriter, Document
from ragtune.engine.core.workspace import Workspace
from ragtune.engine.ingest.chunking import (
    Chunker,
    ChunkStats,
    cached_tokenizer,
    chunk_documents,
    model_max_tokens,
)
from ragtune.engine.ingest.datasets import load_dataset_rows
from ragtune.engine.ingest.discovery import discover_sources
from ragtune.engine.ingest.readers import read_file


def iter_documents(
    cfg: SourcesConfig,
    base_dir: Path,
    events: Emitter,
    *,
    stats: ChunkStats | None = None,
    limit: int = 0,
) -> Iterator[Document]:
    """Files then dataset rows, one at a time; unusable files are reported and skipped."""

    def missing(path: Path) -> None:
        if stats is not None:
            stats.skipped_files += 1
        events.warning(
            "skipped: source path does not exist",
            where=str(path),
            hint="check sources.paths (relative paths are read from the config's folder)",
        )

    files = discover_sources(cfg, base_dir, missing="skip", on_missing=missing)
    yielded = 0
    for done, (path, name) in enumerate(files.items(), start=1):
        try:
            doc = read_file(path, name)
        except InputError as exc:
            if stats is not None:
                stats.skipped_files += 1
            events.warning(
                f"skipped {path.name}: {exc.message}",
                where=str(path),
                hint=exc.hint or "fix or remove the file; the other files are used",
            )
            events.progress(done, len(files), unit="files")
            continue
        events.progress(done, len(files), unit="files")
        yield doc
        yielded += 1
        if limit and yielded >= limit:
            return
    if cfg.dataset:
        total = cfg.max_rows or None
        for rows, doc in enumerate(load_dataset_rows(cfg, base_dir), start=1):
            yield doc
            yielded += 1
            events.progress(rows, total, unit="rows")
            if limit and yielded >= limit:
                return


def tokenizer_name(cfg: RunConfig) -> str:
    return cfg.chunking.tokenizer or cfg.embedder.base_model


def make_chunker(cfg: RunConfig) -> Chunker:
    """The chunker for a run: its tokenizer, capped by the length the saved model reads.

    ``embedder.max_seq_length`` only shortens training inputs, so it does not cap chunks.
    """
    name = tokenizer_name(cfg)
    tokenizer = cached_tokenizer(name, cfg.embedder.trust_remote_code)
    return Chunker(cfg.chunking, tokenizer, model_max_length=model_max_tokens(name, tokenizer))


def _no_documents(cfg: SourcesConfig) -> InputError:
    searched = ", ".join(cfg.paths) or "(no paths)"
    if cfg.dataset:
        searched += f"; dataset {cfg.dataset}"
    return InputError(
        f"no usable documents found in {searched}",
        where="sources",
        hint=f"check sources.paths and sources.include ({', '.join(cfg.include)}); "
        "skipped files are listed above with the reason",
    )


def run_ingest(cfg: RunConfig, ws: Workspace, events: Emitter) -> dict[str, Any]:
    """Chunk every source into ``chunks.parquet`` and return the summary the pipeline reports."""
    if not cfg.sources.has_documents:
        raise InputError(
            "no sources to ingest",
            where="sources",
            hint="set sources.paths or sources.dataset (a description-only run skips ingest)",
        )
    chunker = make_chunker(cfg)
    stats = ChunkStats()
    docs = iter_documents(cfg.sources, cfg.base_dir, events, stats=stats)
    writer = ChunkWriter(ws.chunks_path)
    try:
        for chunk in chunk_documents(docs, chunker, stats):
            writer.add(chunk)
        if stats.documents == 0:
            raise _no_documents(cfg.sources)
        if stats.chunks == 0:
            raise InputError(
                f"all {stats.too_short + stats.duplicates} chunks of {stats.documents} "
                f"document(s) were dropped ({stats.too_short} shorter than "
                f"{cfg.chunking.min_tokens} tokens, {stats.duplicates} duplicates)",
                where="chunking.min_tokens",
                hint="lower chunking.min_tokens, or add longer documents",
            )
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return IngestSummary(
        **stats.to_dict(), tokenizer=tokenizer_name(cfg), chunks_path=str(ws.chunks_path)
    ).to_dict()


def preview_chunks(
    cfg: RunConfig, limit_docs: int = 50, sample: int = 5
) -> tuple[list[Chunk], ChunkStats]:
    """Chunk only the first documents, for the TUI's live view of the chunking settings."""
    chunker = make_chunker(cfg)
    stats = ChunkStats()
    docs = iter_documents(cfg.sources, cfg.base_dir, Emitter(), stats=stats, limit=limit_docs)
    chunks = list(chunk_documents(docs, chunker, stats))
    if len(chunks) <= sample:
        return chunks, stats
    step = len(chunks) / sample
    return [chunks[int(i * step)] for i in range(sample)], stats
