"""The hybrid teacher: candidates and a listwise target from BM25 fused with the base model.

On domain text, plain BM25 fused with the untrained base model ranks better than the base
model alone, and no LLM or label is needed for it. Training the embedder to reproduce the
fused ranking over each pseudo-query's top fused candidates lets a single dense model learn
what the lexical side adds (SPAR, Chen et al. 2022: a dense model taught to imitate BM25
matches hybrids; Tamber et al. 2025: listwise distillation from fused retrievers beats
contrastive training on synthetic queries).

Fusion is z-score fusion: per query, each retriever's scores over the pool are standardised
and mixed with ``bm25_weight``. The fused score is expressed back in the base model's cosine
units (its per-query mean and spread), so the teacher's logits are ``scale`` times a
cosine-like score, the same units as the student's and as ``distill``'s in-batch target.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.data.mining import match_key
from engine.embedder.teacher import TEACHER_COLUMN, precompute_teacher, with_column

if TYPE_CHECKING:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer

# Queries scored against the whole pool at once: bounds memory at 2 x 256 x pool floats.
QUERY_BLOCK = 256


@dataclass(frozen=True)
class HybridTeacher:
    candidates: int = 3
    bm25_weight: float = 0.3
    scale: float = 20.0


def lexical_scorer(documents: Sequence[str]) -> Callable[[Sequence[str]], np.ndarray]:
    """BM25 over ``documents`` (bm25s, English stop words, Snowball stemming): returns a
    function scoring a block of queries against every document, (queries, documents).

    The one place the lexical retriever is built; ``engine.retrieval``'s index can replace it.
    """
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    tokens = bm25s.tokenize(
        list(documents), stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False
    )
    index = bm25s.BM25()
    index.index(tokens, show_progress=False)

    def score(queries: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(queries), len(documents)), dtype=np.float32)
        query_tokens = bm25s.tokenize(
            list(queries), stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False
        )
        for row, words in enumerate(query_tokens):
            ids = index.get_tokens_ids(words)
            if ids:
                out[row] = index.get_scores(ids)
        return out

    return score


def fuse(dense: np.ndarray, lexical: np.ndarray, bm25_weight: float) -> np.ndarray:
    """Per-row z-score fusion, in the dense scores' own units (each row's mean and spread)."""

    def z(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mean = x.mean(axis=1, keepdims=True)
        std = x.std(axis=1, keepdims=True)
        return (x - mean) / np.where(std > 0, std, 1.0), mean, std

    z_dense, mean, std = z(dense)
    z_lex, _, _ = z(lexical)
    return mean + std * ((1.0 - bm25_weight) * z_dense + bm25_weight * z_lex)


def hybrid_teacher_rows(
    train: Dataset,
    pool: Mapping[str, str],
    model: SentenceTransformer,
    teacher: HybridTeacher,
    prompts: Mapping[str, str],
    *,
    batch_size: int = 64,
) -> tuple[Dataset, dict[str, Any]]:
    """(anchor, positive, candidate_1..k, label) rows: per training query, its top fused
    candidates from ``pool`` (never its own chunk, nor a passage holding the query verbatim),
    and a label of shape (3, dim): the base model's embeddings of anchor and positive (for
    distill's in-batch term) and the teacher's logits over (own chunk, candidates), padded.

    ``model`` must hold the base weights. ``train`` needs ``anchor``, ``positive`` and
    ``chunk_id``; queries whose chunk is not in ``pool`` are dropped. A plain function with no
    collectives: a pre-training stage or any single process can run it.
    """
    from datasets import Dataset

    k = teacher.candidates
    ids = list(pool)
    texts = [pool[c] for c in ids]
    position = {cid: i for i, cid in enumerate(ids)}
    keep = [i for i, cid in enumerate(train["chunk_id"]) if cid in position]
    rows = train.select(keep) if len(keep) < len(train) else train
    anchors, positives = list(rows["anchor"]), list(rows["positive"])
    own = np.array([position[c] for c in rows["chunk_id"]])
    dim = model.get_embedding_dimension() if hasattr(model, "get_embedding_dimension") else 0
    if len(texts) <= k or (dim and k + 1 > dim):
        raise ValueError(f"{k} candidates need a pool of more than {k} passages and dim > {k}")

    encode = {"batch_size": batch_size, "normalize_embeddings": True, "show_progress_bar": False}
    docs = model.encode(texts, prompt=prompts.get("positive") or None, **encode)
    queries = model.encode(anchors, prompt=prompts.get("anchor") or None, **encode)
    lexical = lexical_scorer(texts)

    chosen = np.zeros((len(anchors), k), dtype=np.int64)
    logits = np.zeros((len(anchors), k + 1), dtype=np.float32)
    positive_top = 0
    for start in range(0, len(anchors), QUERY_BLOCK):
        block = slice(start, start + QUERY_BLOCK)
        fused = fuse(queries[block] @ docs.T, lexical(anchors[block]), teacher.bm25_weight)
        for r, scores in enumerate(fused):
            q = start + r
            needle = match_key(anchors[q])
            order = np.argsort(-scores, kind="stable")
            positive_top += int(order[0] == own[q])
            picked = []
            for d in order:
                if d == own[q]:
                    continue
                if len(needle) >= 20 and needle in match_key(texts[d]):
                    continue
                picked.append(d)
                if len(picked) == k:
                    break
            chosen[q] = picked
            logits[q] = teacher.scale * scores[[own[q], *picked]]

    data: dict[str, list[str]] = {"anchor": anchors, "positive": positives}
    for j in range(k):
        data[f"candidate_{j + 1}"] = [texts[d] for d in chosen[:, j]]
    out = Dataset.from_dict(data)
    embedded = precompute_teacher(
        model,
        out.select_columns(["anchor", "positive"]),
        {c: p for c, p in prompts.items() if c in ("anchor", "positive")},
        batch_size=batch_size,
    ).with_format("numpy")[TEACHER_COLUMN]
    embedded = np.asarray(embedded)
    packed = np.zeros((len(anchors), 3, embedded.shape[-1]), dtype=np.float32)
    packed[:, :2] = embedded
    packed[:, 2, : k + 1] = logits
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    summary = {
        "queries": len(anchors),
        "dropped_queries": len(train) - len(anchors),
        "candidates": k,
        "bm25_weight": teacher.bm25_weight,
        "own_chunk_first": round(positive_top / max(1, len(anchors)), 4),
        "mean_own_chunk_probability": round(float(probs[:, 0].mean()), 4),
    }
    return with_column(out, packed), summary
