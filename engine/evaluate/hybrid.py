"""BM25 and hybrid (BM25 fused with a dense model) scored like the dense model, on the same queries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.evaluate.beir import IRData
from engine.evaluate.ir import judged_queries, metric_key, ranking_metrics
from engine.retrieval.fusion import FusionSettings, fuse

if TYPE_CHECKING:
    from engine.retrieval.bm25 import Bm25Index

Ranked = list[tuple[str, float]]


def index_for(data: IRData, index: Bm25Index | None, settings: Any) -> Bm25Index:
    """``index`` when it covers exactly this corpus (the run's chunks), else one built over
    the corpus in memory (a benchmark that brings its own passages)."""
    from engine.retrieval.bm25 import Bm25Index

    if index is not None and len(index) == len(data.corpus) and set(index.ids) == set(data.corpus):
        return index
    # The corpus text is what the dense model embeds (title and body joined).
    return Bm25Index.build(data.corpus.items(), settings)


def bm25_rankings(index: Bm25Index, data: IRData, depth: int) -> list[Ranked]:
    """Top ``depth`` per judged query (``judged_queries`` order)."""
    return index.search([data.queries[q] for q in judged_queries(data)], depth)


def fused_ids(
    dense: Sequence[Ranked], bm25: Sequence[Ranked], settings: FusionSettings
) -> list[list[str]]:
    return [[h.doc_id for h in fuse(d, b, settings)] for d, b in zip(dense, bm25, strict=True)]


def score_bm25(
    bm25: Sequence[Ranked], data: IRData, dims: Sequence[int], **metric_kw: Any
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """BM25's metrics under every size's keys (it has no size: the same numbers each time),
    so it lines up with the dense rows; and its per-query nDCG@10 under the same keys."""
    metrics, per_q = ranking_metrics([[d for d, _ in r] for r in bm25], data, **metric_kw)
    flat = {metric_key(d, m): v for d in dims for m, v in metrics.items()}
    return flat, {metric_key(d, "ndcg@10"): per_q for d in dims}


def score_hybrid(
    dense: dict[int, list[Ranked]],
    bm25: Sequence[Ranked],
    data: IRData,
    settings: FusionSettings,
    **metric_kw: Any,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """The fused ranking at every size the dense rankings cover: flat metrics and per-query
    nDCG@10, keyed like ``evaluate_retrieval``'s."""
    flat: dict[str, float] = {}
    per_query: dict[str, np.ndarray] = {}
    for dim, rankings in dense.items():
        metrics, per_q = ranking_metrics(fused_ids(rankings, bm25, settings), data, **metric_kw)
        flat.update({metric_key(dim, m): v for m, v in metrics.items()})
        per_query[metric_key(dim, "ndcg@10")] = per_q
    return flat, per_query
