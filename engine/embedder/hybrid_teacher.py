"""The hybrid teacher: candidates and a listwise target from BM25 fused with the base model.

On domain text, plain BM25 fused with the untrained base model ranks better than the base
model alone, and no LLM or label is needed for it. Training the embedder to reproduce the
fused ranking over each pseudo-query's top fused candidates lets a single dense model learn
what the lexical side adds (SPAR, Chen et al. 2022: a dense model taught to imitate BM25
matches hybrids; Tamber et al. 2025: listwise distillation from fused retrievers beats
contrastive training on synthetic queries).

The fusion is the project's hybrid retriever (``ragtune.engine.retrieval``: BM25 with bm25s, z-score
fusion of each list's top ``depth``, BM25 weight ``bm25_weight``). The fused score is put
back in the base model's cosine units (the mean and spread of its top-``depth`` cosines),
so the teacher's logits are ``scale`` times a cosine-like score: the units of the student's
scores and of ``distill``'s in-batch target; with weight 0 they are the base model's own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ragtune.engine.data.mining import match_key
from ragtune.engine.embedder.teacher import TEACHER_COLUMN, precompute_teacher, with_column
from ragtune.engine.retrieval import Bm25Index

if TYPE_CHECKING:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer

# Queries scored against the whole pool at once: bounds memory at 256 x pool floats.
QUERY_BLOCK = 256


@dataclass(frozen=True)
class HybridTeacher:
    candidates: int = 3
    bm25_weight: float = 0.3
    scale: float = 20.0
    depth: int = 100


def fused_ranking(
    cosines: np.ndarray,
    lexical: Sequence[tuple[str, float]],
    ids: Sequence[str],
    teacher: HybridTeacher,
) -> tuple[list[str], dict[str, float]]:
    """One query's fused ranking (best first) and each ranked passage's fused score in the
    base model's cosine units; ``cosines`` are the base model's over the whole pool."""
    from ragtune.engine.retrieval import FusionSettings, fuse

    depth = min(teacher.depth, len(ids))
    top = np.argpartition(-cosines, depth - 1)[:depth]
    top = top[np.argsort(-cosines[top], kind="stable")]
    dense = [(ids[i], float(cosines[i])) for i in top]
    hits = fuse(dense, lexical, FusionSettings("zscore", teacher.bm25_weight, depth=depth))
    mean, spread = float(cosines[top].mean()), float(cosines[top].std())
    return [h.doc_id for h in hits], {h.doc_id: mean + spread * h.score for h in hits}


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
    index = Bm25Index.build(zip(ids, texts, strict=True))

    chosen = np.zeros((len(anchors), k), dtype=np.int64)
    logits = np.zeros((len(anchors), k + 1), dtype=np.float32)
    positive_top = 0
    for start in range(0, len(anchors), QUERY_BLOCK):
        block = slice(start, start + QUERY_BLOCK)
        lexical = index.search(anchors[block], teacher.depth)
        for r, cosines in enumerate(queries[block] @ docs.T):
            q = start + r
            ranked, fused = fused_ranking(cosines, lexical[r], ids, teacher)
            needle = match_key(anchors[q])
            own_id = ids[own[q]]
            positive_top += int(ranked[0] == own_id)
            picked = [
                position[d]
                for d in ranked
                if d != own_id and not (len(needle) >= 20 and needle in match_key(pool[d]))
            ][:k]
            if len(picked) < k:
                # Fewer fused hits than candidates: fill from the dense order, lowest score.
                rest = [int(i) for i in np.argsort(-cosines) if int(i) not in {own[q], *picked}]
                picked += rest[: k - len(picked)]
            floor = min(fused.values())
            chosen[q] = picked
            logits[q] = teacher.scale * np.array(
                [fused.get(ids[d], floor) for d in [own[q], *picked]], dtype=np.float32
            )

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
