"""How generated rows become training and evaluation sets."""

from __future__ import annotations

from dataclasses import dataclass

from ragtune.engine.config.base import Section, setting


@dataclass
class DataConfig(Section):
    eval_fraction: float = setting(
        0.1,
        help="share of chunks held out for evaluation; their queries are never trained on",
        minimum=0.0,
        maximum=0.5,
    )
    max_eval_queries: int = setting(
        1000, help="cap on held-out queries, to keep evaluation quick", minimum=1
    )
    min_query_chars: int = setting(8, help="shorter queries are dropped", minimum=1)
    max_query_chars: int = setting(600, help="longer queries are dropped", minimum=16)
    seed: int = setting(42, help="seed for the split")
