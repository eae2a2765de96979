"""Fusion of a dense and a BM25 ranking: reciprocal-rank fusion and weighted fusion of normalised scores.

Both work on ranked lists of ``(doc id, score)``, best first, as any search returns them, so
the same fusion can be rebuilt in another stack (``docs/hybrid.md``). ``weight`` is always
BM25's share: 0 is the dense ranking, 1 the BM25 ranking.

The default (z-score fusion, BM25 weight 0.3, each list's top 100) was picked on the untrained
all-MiniLM-L6-v2 over medline and cisi (``bench/README.md``, "Hybrid retrieval"): it is the
setting that beat the dense model on both; reciprocal-rank fusion lost on cisi.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

METHODS = ("zscore", "minmax", "rrf")
DEFAULT_METHOD = "zscore"
DEFAULT_WEIGHT = 0.3
DEFAULT_RRF_K = 60
DEFAULT_DEPTH = 100

Ranked = Sequence[tuple[str, float]]
"""``(doc id, score)`` pairs, best first."""


@dataclass(frozen=True)
class FusionSettings:
    """How two rankings become one; ``depth`` is how many of each list take part."""

    method: str = DEFAULT_METHOD
    weight: float = DEFAULT_WEIGHT
    rrf_k: int = DEFAULT_RRF_K
    depth: int = DEFAULT_DEPTH

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"fusion method {self.method!r} is not one of {', '.join(METHODS)}")
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"fusion weight {self.weight} is outside 0..1")
        if self.rrf_k < 0 or self.depth < 1:
            raise ValueError("rrf_k must be >= 0 and depth >= 1")

    def describe(self) -> str:
        """One line a reader can act on, e.g. 'z-score fusion, BM25 weight 0.3, top 100'."""
        name = {"zscore": "z-score", "minmax": "min-max", "rrf": f"RRF (k={self.rrf_k})"}
        return f"{name[self.method]} fusion, BM25 weight {self.weight:g}, top {self.depth} of each"


@dataclass(frozen=True)
class FusedHit:
    """One fused result and where it came from (ranks are 1-based; None = not in that list)."""

    doc_id: str
    score: float
    dense_rank: int | None
    bm25_rank: int | None
    dense_score: float | None
    bm25_score: float | None


def normalize(scores: np.ndarray, method: str) -> np.ndarray:
    """Scores of one list on a shared scale: z-score (mean 0, unit spread) or min-max (0..1).

    A list whose scores are all equal carries no order, so it maps to zeros."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        return scores
    if method == "zscore":
        spread = scores.std()
        return (scores - scores.mean()) / spread if spread > 0 else np.zeros_like(scores)
    if method == "minmax":
        low, high = scores.min(), scores.max()
        return (scores - low) / (high - low) if high > low else np.zeros_like(scores)
    raise ValueError(f"normalisation {method!r} is not zscore or minmax")


def score_fusion(
    lists: Sequence[Ranked], weights: Sequence[float], method: str = DEFAULT_METHOD
) -> list[tuple[str, float]]:
    """Weighted sum of each list's normalised scores, best first.

    A document missing from a list gets that list's lowest normalised score (it ranked
    below everything the list returned), the same floor for every list.
    """
    _check(lists, weights)
    normed: list[dict[str, float]] = []
    floors: list[float] = []
    for ranked in lists:
        values = normalize(np.array([s for _, s in ranked], dtype=np.float64), method)
        normed.append({doc: float(v) for (doc, _), v in zip(ranked, values, strict=True)})
        floors.append(float(values.min()) if values.size else 0.0)
    fused = {
        doc: sum(w * n.get(doc, f) for w, n, f in zip(weights, normed, floors, strict=True))
        for doc in _union(lists)
    }
    return _sorted(fused)


def rrf(
    lists: Sequence[Ranked], k: int = DEFAULT_RRF_K, weights: Sequence[float] | None = None
) -> list[tuple[str, float]]:
    """Reciprocal-rank fusion (Cormack et al. 2009): sum of ``weight / (k + rank)``; equal
    weights give the usual RRF order. Scores are ignored, only ranks count."""
    weights = list(weights) if weights is not None else [1.0] * len(lists)
    _check(lists, weights)
    fused: dict[str, float] = dict.fromkeys(_union(lists), 0.0)
    for w, ranked in zip(weights, lists, strict=True):
        for rank, (doc, _) in enumerate(ranked, start=1):
            fused[doc] += w / (k + rank)
    return _sorted(fused)


def fuse(dense: Ranked, bm25: Ranked, settings: FusionSettings | None = None) -> list[FusedHit]:
    """The hybrid ranking of one query with each hit's provenance, best first."""
    s = settings or FusionSettings()
    dense, bm25 = list(dense)[: s.depth], list(bm25)[: s.depth]
    weights = (1.0 - s.weight, s.weight)
    if s.method == "rrf":
        ranked = rrf((dense, bm25), s.rrf_k, weights)
    else:
        ranked = score_fusion((dense, bm25), weights, s.method)
    d_pos = {doc: (i, score) for i, (doc, score) in enumerate(dense, start=1)}
    b_pos = {doc: (i, score) for i, (doc, score) in enumerate(bm25, start=1)}
    return [
        FusedHit(
            doc_id=doc,
            score=score,
            dense_rank=d_pos[doc][0] if doc in d_pos else None,
            bm25_rank=b_pos[doc][0] if doc in b_pos else None,
            dense_score=float(d_pos[doc][1]) if doc in d_pos else None,
            bm25_score=float(b_pos[doc][1]) if doc in b_pos else None,
        )
        for doc, score in ranked
    ]


def fuse_many(
    dense: Sequence[Ranked], bm25: Sequence[Ranked], settings: FusionSettings | None = None
) -> list[list[FusedHit]]:
    """``fuse`` for a batch of queries (the lists are paired by position)."""
    if len(dense) != len(bm25):
        raise ValueError(f"{len(dense)} dense rankings but {len(bm25)} BM25 rankings")
    return [fuse(d, b, settings) for d, b in zip(dense, bm25, strict=True)]


def _check(lists: Sequence[Ranked], weights: Sequence[float]) -> None:
    if len(lists) != len(weights):
        raise ValueError(f"{len(lists)} rankings but {len(weights)} weights")


def _union(lists: Sequence[Ranked]) -> list[str]:
    """Every document once, in first-seen order (which breaks exact ties)."""
    return list(dict.fromkeys(doc for ranked in lists for doc, _ in ranked))


def _sorted(fused: dict[str, float]) -> list[tuple[str, float]]:
    # Python's sort is stable: equal scores keep first-seen order (the dense list's first).
    return sorted(fused.items(), key=lambda item: -item[1])
