"""Cross-encoder reranker training settings."""

from __future__ import annotations

from dataclasses import dataclass

from engine.config.base import Section, setting
from engine.config.training import PRECISIONS


@dataclass
class RerankerConfig(Section):
    enabled: bool = setting(True, help="train and evaluate a reranker after the embedder")
    base_model: str = setting(
        "cross-encoder/ms-marco-MiniLM-L6-v2",
        help="a reranker checkpoint or an encoder (a fresh 1-label head is added)",
    )
    loss: str = setting("bce", help="training loss", choices=("bce", "lambda", "mnrl"))
    num_negatives: int = setting(4, help="hard negatives mined per query", minimum=0)
    random_negatives: int = setting(1, help="random negatives per query, for easy cases", minimum=0)
    range_min: int = setting(
        10, help="skip the top mined candidates (likely false negatives)", minimum=0
    )
    range_max: int = setting(100, help="mine among this many top candidates", minimum=1)
    margin: float = setting(0.0, help="negative must score this much below the positive")
    max_score: float = setting(1.0, help="drop candidates scoring above this (near duplicates)")
    rescore_model: str = setting("", help="cross-encoder that drops false negatives; empty = off")
    batch_size: int = setting(32, minimum=1)
    learning_rate: float = setting(2e-5, minimum=0.0, maximum=1.0)
    epochs: float = setting(1.0, minimum=0.01)
    warmup_ratio: float = setting(0.1, minimum=0.0, maximum=0.9)
    precision: str = setting("auto", choices=PRECISIONS)
    max_length: int = setting(512, help="query + passage tokens", minimum=16)
    top_k: int = setting(30, help="retriever candidates the reranker reorders", minimum=1)
    seed: int = setting(42)
