"""What ships beside the exported model: the BM25 index, ``retrieval.json`` and the card's retriever section."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ragtune.engine.core.workspace import Workspace
from ragtune.engine.retrieval.bm25 import SETTINGS_FILE
from ragtune.engine.retrieval.stage import index_dir

RETRIEVAL_FILE = "retrieval.json"
BM25_FOLDER = "bm25"


def export_retrieval(ws: Workspace, folder: Path) -> dict[str, Any]:
    """Copy the BM25 index into ``folder/bm25`` and write ``folder/retrieval.json``: which
    retriever evaluation recommended and the fusion to rebuild it (docs/hybrid.md)."""
    from ragtune.engine.evaluate.results import read_results

    results = read_results(ws.metrics_path)
    rec, fusion = results.recommendation, results.fusion
    target = folder / BM25_FOLDER
    shutil.rmtree(target, ignore_errors=True)
    source = index_dir(ws.root)
    if (source / SETTINGS_FILE).is_file():
        shutil.copytree(source, target)
    info: dict[str, Any] = {
        "recommended": rec.retriever if rec else None,
        "label": rec.label if rec else None,
        "dense_model": None,
        "bm25_index": BM25_FOLDER if target.is_dir() else None,
        "fusion": None,
        "measured": None,
    }
    if rec is not None:
        if rec.uses_dense:
            info["dense_model"] = "." if rec.fine_tuned else _base_model(ws)
        if rec.hybrid and fusion is not None:
            info["fusion"] = {
                "method": fusion.method,
                "bm25_weight": fusion.weight,
                "rrf_k": fusion.rrf_k,
                "depth": fusion.depth,
            }
        info["measured"] = {
            "ndcg@10": rec.ndcg,
            "dim": rec.dim,
            "queries": rec.queries,
            "query_source": rec.query_source,
            "reason": rec.reason,
            "caveats": rec.caveats,
        }
    (folder / RETRIEVAL_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
    return {"retrieval": info["recommended"] or "", "bm25_index": str(target)}


def _base_model(ws: Workspace) -> str:
    from ragtune.engine.config import load_config

    return load_config(ws.config_path).embedder.base_model if ws.config_path.exists() else ""


def retrieval_card(ws: Workspace) -> str:
    """The model card's section: the recommended retriever, why, and every retriever's table."""
    from ragtune.engine.evaluate.results import read_results
    from ragtune.engine.evaluate.tables import recommendation_markdown, retrievers_markdown

    results = read_results(ws.metrics_path)
    if results.recommendation is None:
        return ""
    lines = ["### Which retriever to ship", "", recommendation_markdown(results.recommendation)]
    for name in ("benchmark", "held-out"):
        suite = results.suite(name)
        if suite is not None and suite.others:
            lines += [f"On {suite.title}:", "", retrievers_markdown(suite)]
    lines += [
        f"`{BM25_FOLDER}/` holds the BM25 index (load it with `bm25s` and `PyStemmer` alone) "
        f"and `{RETRIEVAL_FILE}` the fusion settings; docs/hybrid.md in ragtune shows the same "
        "fusion in Haystack and in a vector database with hybrid search.",
        "",
    ]
    return "\n".join(lines)
