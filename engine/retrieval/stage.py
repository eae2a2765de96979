"""The index stage: BM25 over the run's chunks, saved in the workspace for evaluation, ask and export."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ragtune.engine.config import RunConfig
from ragtune.engine.core.events import Emitter
from ragtune.engine.core.payloads import IndexSummary
from ragtune.engine.core.workspace import Workspace
from ragtune.engine.retrieval.bm25 import Bm25Index
from ragtune.engine.retrieval.settings import bm25_settings


def index_dir(root: Path) -> Path:
    """Where a workspace keeps its BM25 index (beside the cached corpus embeddings)."""
    return Path(root) / "index" / "bm25"


def run_index(cfg: RunConfig, ws: Workspace, events: Emitter) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from ragtune.engine.core.records import iter_chunks

    total = pq.ParquetFile(str(ws.chunks_path)).metadata.num_rows

    def docs() -> Iterator[tuple[str, str]]:
        for done, chunk in enumerate(iter_chunks(ws.chunks_path), start=1):
            yield chunk.chunk_id, chunk.text
            events.progress(done, total, unit="chunks")

    index = Bm25Index.build(docs(), bm25_settings(cfg.retrieval))
    index.save(index_dir(ws.root))
    return IndexSummary(documents=len(index), terms=len(index.retriever.vocab_dict)).to_dict()


def load_index(ws: Workspace) -> Bm25Index:
    return Bm25Index.load(index_dir(ws.root))
