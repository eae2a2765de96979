"""Per-query nDCG@10 of stored embeddings at each size and precision, and encoder speed.

A size keeps the first ``dim`` coordinates at unit length, as evaluation does. int8 and binary
go through sentence-transformers' ``quantize_embeddings`` (for a 2-D array it returns an
array; a list only for a list of multi-vector matrices). int8 stores the corpus with per-
coordinate ranges calibrated on the corpus and scores the float query against the corpus
restored from those codes (sentence-transformers' int8 rescoring); binary scores by Hamming
distance between the query's and the passages' sign bits, as a binary index does.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ragtune.engine.evaluate.ir import ndcg_per_query

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from ragtune.engine.evaluate.beir import IRData
    from ragtune.engine.evaluate.ir import SuiteEmbeddings

PRECISIONS = ("float32", "int8", "binary")
K = 10
SEARCH_DEPTH = 100


@dataclass
class Encoded:
    """Full-size float32 embeddings of a suite's judged queries and its corpus, row-aligned
    with the relevance judgments."""

    queries: np.ndarray
    corpus: np.ndarray
    relevant: list[set[int]]
    n_relevant: np.ndarray

    @classmethod
    def from_suite(cls, emb: SuiteEmbeddings, data: IRData) -> Encoded:
        """The evaluate stage's embeddings of the suite (same query and corpus order)."""
        query_ids, corpus_ids, relevant, n_relevant = judged(data)
        if emb.query_ids != query_ids or emb.corpus_ids != corpus_ids:
            raise ValueError("the embeddings are not of this suite's queries and corpus")
        return cls(
            emb.queries.float().cpu().numpy(),
            emb.corpus.float().cpu().numpy(),
            relevant,
            n_relevant,
        )


def judged(data: IRData) -> tuple[list[str], list[str], list[set[int]], np.ndarray]:
    """Query ids with a judged passage, corpus ids, relevant corpus rows, relevant counts."""
    query_ids = [qid for qid in data.queries if data.relevant.get(qid)]
    # Ties rank by corpus id, as the evaluate stage (and sentence-transformers' evaluator) ranks them.
    corpus_ids = sorted(data.corpus)
    position = {cid: i for i, cid in enumerate(corpus_ids)}
    relevant = [{position[c] for c in data.relevant[q] if c in position} for q in query_ids]
    n_relevant = np.array([len(data.relevant[q]) for q in query_ids])
    return query_ids, corpus_ids, relevant, n_relevant


def encode_suite(
    model: SentenceTransformer,
    data: IRData,
    *,
    batch_size: int,
    query_prompt: str | None,
    document_prompt: str | None,
) -> Encoded:
    query_ids, corpus_ids, relevant, n_relevant = judged(data)
    common = {"batch_size": batch_size, "convert_to_numpy": True, "show_progress_bar": False}
    queries = model.encode_query(
        [data.queries[q] for q in query_ids], prompt=query_prompt, **common
    )
    corpus = model.encode_document(
        [data.corpus[c] for c in corpus_ids], prompt=document_prompt, **common
    )
    return Encoded(
        np.asarray(queries, np.float32), np.asarray(corpus, np.float32), relevant, n_relevant
    )


def stored(queries: np.ndarray, corpus: np.ndarray, precision: str) -> tuple[Any, Any, int]:
    """What search compares at this precision (query side, corpus side, both float32 arrays
    whose inner product ranks as the stored index does), and the stored bytes per passage."""
    from sentence_transformers import quantize_embeddings

    if precision == "float32":
        codes = quantize_embeddings(corpus, precision="float32")
        return queries, codes, codes.nbytes // max(1, len(codes))
    if precision == "int8":
        ranges = np.vstack((corpus.min(axis=0), corpus.max(axis=0)))
        codes = quantize_embeddings(corpus, precision="int8", ranges=ranges)
        steps = (ranges[1] - ranges[0]) / 255
        steps = np.where(steps == 0, 1, steps)
        restored = (codes.astype(np.float64) + 128) * steps + ranges[0]
        return queries, _unit(restored), codes.nbytes // max(1, len(codes))
    if precision == "binary":
        codes = quantize_embeddings(corpus, precision="ubinary")
        query_codes = quantize_embeddings(queries, precision="ubinary")
        # Sign vectors of +-1: inner product = dim - 2 x Hamming distance, so it ranks alike.
        dim = corpus.shape[1]
        return _signs(query_codes, dim), _signs(codes, dim), codes.nbytes // max(1, len(codes))
    raise ValueError(f"unknown precision {precision!r}")


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _signs(codes: np.ndarray, dim: int) -> np.ndarray:
    bits = np.unpackbits(codes.astype(np.uint8), axis=1)[:, :dim]
    return (bits.astype(np.float32) * 2) - 1


def per_query_ndcg(queries: np.ndarray, corpus: np.ndarray, enc: Encoded) -> np.ndarray:
    from ragtune.engine.core.search import topk_search

    # A deeper search than 10 keeps ties at rank 10 ordered by id, not by where search cut.
    scores, indices = topk_search(queries, corpus, SEARCH_DEPTH)
    order = np.lexsort((indices, -scores), axis=1)
    indices = np.take_along_axis(indices, order, axis=1)[:, :K]
    hits = np.array(
        [
            [i in rows for i in ranked]
            for rows, ranked in zip(enc.relevant, indices.tolist(), strict=True)
        ],
        dtype=bool,
    ).reshape(indices.shape)
    return ndcg_per_query(hits, enc.n_relevant, K)


def score(enc: Encoded, dim: int, precision: str) -> tuple[np.ndarray, int, float]:
    """Per-query nDCG@10, bytes per passage, and seconds to quantise the corpus."""
    from ragtune.engine.core.search import truncate_normalize

    queries = truncate_normalize(enc.queries, dim)
    corpus = truncate_normalize(enc.corpus, dim)
    t0 = time.perf_counter()
    q, c, size = stored(queries, corpus, precision)
    seconds = time.perf_counter() - t0
    return per_query_ndcg(q, c, enc), size, seconds / max(1, len(corpus))


def texts_per_second(
    model: SentenceTransformer,
    texts: Sequence[str],
    *,
    batch_size: int,
    document_prompt: str | None,
) -> float:
    """Passages per second through ``encode_document`` after one warm-up batch."""
    model.encode_document(
        list(texts[:batch_size]),
        prompt=document_prompt,
        batch_size=batch_size,
        show_progress_bar=False,
    )
    t0 = time.perf_counter()
    model.encode_document(
        list(texts), prompt=document_prompt, batch_size=batch_size, show_progress_bar=False
    )
    return len(texts) / max(time.perf_counter() - t0, 1e-9)
