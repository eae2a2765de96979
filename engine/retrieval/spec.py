"""The index stage as the pipeline sees it: the BM25 settings and the chunks in, a BM25 index out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ragtune.engine.core.outputs import Output
from ragtune.engine.core.stages import Stage, StageContext

# The BM25 settings; the fusion settings change only what evaluation reports.
BM25_SETTINGS = tuple(f"retrieval.{key}" for key in ("k1", "b", "stemmer", "stopwords"))


def _index_reads(path: Path) -> str:
    """bm25s's arrays and our settings file are there and the settings parse."""
    import json

    from ragtune.engine.retrieval.bm25 import INDEX_FILES, SETTINGS_FILE

    missing = [f for f in (*INDEX_FILES, SETTINGS_FILE) if not (path / f).is_file()]
    if missing:
        return f"has no {missing[0]}"
    try:
        json.loads((path / SETTINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"cannot be read ({type(exc).__name__})"
    return ""


def _run(ctx: StageContext) -> dict[str, Any]:
    from ragtune.engine.retrieval.stage import run_index

    return run_index(ctx.cfg, ctx.ws, ctx.events)


def _index_path(ws: Any) -> Path:
    from ragtune.engine.retrieval.stage import index_dir

    return index_dir(ws.root)


STAGE = Stage(
    "index",
    settings=BM25_SETTINGS,
    upstream=("ingest",),
    outputs=(Output("bm25 index", _index_path, _index_reads),),
    run=_run,
)
