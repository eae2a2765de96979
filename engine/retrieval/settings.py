"""The ``[retrieval]`` config section as the BM25 index and the fusion take it."""

from __future__ import annotations

from ragtune.engine.config.retrieval import RetrievalConfig
from ragtune.engine.retrieval.bm25 import Bm25Settings
from ragtune.engine.retrieval.fusion import DEFAULT_WEIGHT, FusionSettings


def bm25_settings(rc: RetrievalConfig) -> Bm25Settings:
    return Bm25Settings(k1=rc.k1, b=rc.b, stemmer=rc.stemmer, stopwords=rc.stopwords)


def fusion_settings(rc: RetrievalConfig, weight: float | None = None) -> FusionSettings:
    """With ``weight`` when it was chosen on judging queries, else the configured one (the
    documented default when the config says choose but nothing can judge)."""
    w = weight if weight is not None else (rc.weight if rc.weight >= 0 else DEFAULT_WEIGHT)
    return FusionSettings(method=rc.fusion, weight=w, rrf_k=rc.rrf_k, depth=rc.depth)
