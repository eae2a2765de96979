"""The BM25 index over the chunks and how it is fused with the dense model."""

from __future__ import annotations

from dataclasses import dataclass

from ragtune.engine.config.base import Section, setting
from ragtune.engine.core.errors import ConfigError

# PyStemmer's algorithms; "" = no stemming.
STEMMERS = (
    "", "arabic", "armenian", "basque", "catalan", "czech", "danish", "dutch", "english",
    "finnish", "french", "german", "greek", "hindi", "hungarian", "indonesian", "irish",
    "italian", "lithuanian", "nepali", "norwegian", "porter", "portuguese", "romanian",
    "russian", "serbian", "spanish", "swedish", "tamil", "turkish", "yiddish",
)  # fmt: skip
# bm25s's stop-word lists; "" = keep every word.
STOPWORDS = (
    "", "en", "en_plus", "de", "nl", "fr", "es", "pt", "it", "ru", "sv", "no", "zh", "tr",
    "ko", "da",
)  # fmt: skip


@dataclass
class RetrievalConfig(Section):
    k1: float = setting(
        1.5, help="BM25 term-frequency saturation (bm25s's default)", minimum=0.0, maximum=10.0
    )
    b: float = setting(
        0.75, help="BM25 length normalisation: 0 = none, 1 = full", minimum=0.0, maximum=1.0
    )
    stemmer: str = setting(
        "english", help="PyStemmer stemmer for BM25 words; empty = no stemming", choices=STEMMERS
    )
    stopwords: str = setting(
        "en", help="stop-word list BM25 drops (bm25s's lists); empty = none", choices=STOPWORDS
    )
    fusion: str = setting(
        "zscore",
        help="how BM25 and the dense model are fused: zscore or minmax = weighted sum of each "
        "list's normalised scores; rrf = reciprocal-rank fusion",
        choices=("zscore", "minmax", "rrf"),
    )
    weight: float = setting(
        0.3,
        help="BM25's share in the fusion (0 = dense only, 1 = BM25 only); -1 = choose it on "
        "queries that can judge it (your benchmark, or LLM-written held-out queries), never on "
        "LLM-free pseudo-queries, which copy words from their chunk and flatter BM25",
        minimum=-1.0,
        maximum=1.0,
    )
    rrf_k: int = setting(60, help="RRF's rank constant (with fusion = rrf)", minimum=0)
    depth: int = setting(
        100, help="how many results of each retriever take part in the fusion", minimum=10
    )

    def inactive(self) -> set[str]:
        return set() if self.fusion == "rrf" else {"rrf_k"}

    def check(self) -> None:
        if -1.0 < self.weight < 0.0:
            raise ConfigError(
                "retrieval.weight", self.weight, "-1 (choose on judging queries) or 0 to 1"
            )
