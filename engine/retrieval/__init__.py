"""Lexical retrieval and its fusion with the dense model: BM25 over the chunks, RRF and score fusion."""

from ragtune.engine.retrieval.bm25 import Bm25Index, Bm25Settings
from ragtune.engine.retrieval.fusion import (
    DEFAULT_DEPTH,
    DEFAULT_METHOD,
    DEFAULT_RRF_K,
    DEFAULT_WEIGHT,
    METHODS,
    FusedHit,
    FusionSettings,
    fuse,
    fuse_many,
    normalize,
    rrf,
    score_fusion,
)

__all__ = [
    "DEFAULT_DEPTH",
    "DEFAULT_METHOD",
    "DEFAULT_RRF_K",
    "DEFAULT_WEIGHT",
    "METHODS",
    "Bm25Index",
    "Bm25Settings",
    "FusedHit",
    "FusionSettings",
    "fuse",
    "fuse_many",
    "normalize",
    "rrf",
    "score_fusion",
]
