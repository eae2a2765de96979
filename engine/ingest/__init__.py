"""The ingest stage: documents and datasets into token-aware chunks with stable ids."""

from ragtune.engine.ingest.datasets import load_dataset_rows, preview_dataset
from ragtune.engine.ingest.discovery import (
    FILE_SUFFIXES,
    discover_files,
    discover_sources,
)
from ragtune.engine.ingest.readers import decode_text, read_file, source_name
from ragtune.engine.ingest.stage import (
    iter_documents,
    make_chunker,
    preview_chunks,
    run_ingest,
    tokenizer_name,
)

__all__ = [
    "FILE_SUFFIXES",
    "decode_text",
    "discover_files",
    "discover_sources",
    "iter_documents",
    "load_dataset_rows",
    "make_chunker",
    "preview_chunks",
    "preview_dataset",
    "read_file",
    "run_ingest",
    "source_name",
    "tokenizer_name",
]
