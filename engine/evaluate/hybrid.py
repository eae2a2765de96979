"""BM25 and hybrid (BM25 fused with a dense model) scored like the dense model, on the same queries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ragtune.engine.evaluate.beir import IRData
from ragtune.engine.evaluate.ir import judged_queries, metric_key, ranking_metrics
from ragtune.engine.retrieval.fusion import FusionSettings, fuse

if TYPE_CHECKING:
    from ragtune.engine.retrieval.bm25 import Bm25Index

Ranked = list[tuple[str, float]]


def index_for(data: IRData, index: Bm25Index | None, settings: Any) -> Bm25Index:
    """``index`` when it covers exactly this corpus (the run's chunks), else one built over
    the corpus in memory (a benchmark that brings its own passages)."""
    from ragtune.engine.retrieval.bm25 import Bm25Index

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


def evaluate_with_bm25(
    model: Any,
    data: IRData,
    dims: Sequence[int],
    retrieval: Any,
    **encode_kw: Any,
) -> dict[str, Any]:
    """One model on one labelled folder beside BM25 over that folder's corpus and their
    fusion, in metrics.json's suite layout (``results.parse_suite`` reads it): what
    ``ragtune eval`` reports, with ``base`` standing for the model evaluated."""
    from ragtune.engine.evaluate.ir import evaluate_retrieval, training_gains
    from ragtune.engine.retrieval.settings import bm25_settings, fusion_settings

    per_query: dict[str, dict[str, np.ndarray]] = {"base": {}}
    rankings: dict[int, list[Ranked]] = {}
    dense = evaluate_retrieval(
        model,
        data,
        dims,
        per_query=per_query["base"],
        rankings=rankings,
        depth=retrieval.depth,
        **encode_kw,
    )
    k_kw = {"k_values": encode_kw["k_values"]} if "k_values" in encode_kw else {}
    bm25 = bm25_rankings(index_for(data, None, bm25_settings(retrieval)), data, retrieval.depth)
    flat_b, per_query["bm25"] = score_bm25(bm25, data, dims, **k_kw)
    flat_h, per_query["hybrid_base"] = score_hybrid(
        rankings, bm25, data, fusion_settings(retrieval), **k_kw
    )
    n = len(judged_queries(data))
    return {
        "queries": len(data.queries),
        "corpus": len(data.corpus),
        "base": dense,
        "retrievers": {"bm25": flat_b, "hybrid_base": flat_h},
        "changes": {
            k: {
                "against": "dense base",
                "queries": n,
                "by_dim": training_gains(per_query[k], per_query["base"], dims),
            }
            for k in ("bm25", "hybrid_base")
        },
        "fusion": fusion_settings(retrieval).describe(),
    }
