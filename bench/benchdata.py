"""The ``sources`` section that reads a BEIR folder's corpus, shared by the quality benches."""

from __future__ import annotations

from pathlib import Path


def beir_sources(folder: Path) -> dict[str, str]:
    """Train on ``corpus.jsonl`` only: its text, title and id columns, never the queries."""
    return {
        "dataset": str(folder / "corpus.jsonl"),
        "text_column": "text",
        "title_column": "title",
        "id_column": "_id",
    }
