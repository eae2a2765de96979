"""Negatives for the reranker: mined with the embedder, written by the LLM, and random, each counted."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ragtune.engine.config.reranker import RerankerConfig
from ragtune.engine.core.events import Emitter
from ragtune.engine.data.mining import (
    MiningWindow,
    QueryGroup,
    add_random_negatives,
    build_groups,
    faiss_used,
    match_key,
    mine,
)
from ragtune.engine.generate.rows import GeneratedRow

if TYPE_CHECKING:
    from datasets import Dataset
    from sentence_transformers import CrossEncoder, SentenceTransformer

SOURCES = ("mined", "llm_passage", "llm_query", "random")


@dataclass
class NegativesResult:
    """The mixed training groups plus the counts that go into the report and the model card."""

    groups: list[QueryGroup]
    counts: dict[str, int]
    recipe: dict[str, Any]
    # (query, passage) label-0 pairs whose query has no positive (LLM "negative_retrieval").
    extra_negatives: list[tuple[str, str]] = field(default_factory=list)

    @property
    def positives(self) -> int:
        return len(self.groups)

    @property
    def negatives(self) -> int:
        return sum(len(g.negatives) for g in self.groups) + len(self.extra_negatives)

    @property
    def pos_weight(self) -> float:
        """BCE weight on positives so that both labels weigh the same in the loss."""
        return self.negatives / self.positives if self.positives else 1.0

    def pairs(self, seed: int = 42) -> Dataset:
        """(query, passage, label) rows for BinaryCrossEntropyLoss, shuffled."""
        from datasets import Dataset

        rows: list[tuple[str, str, float]] = []
        for g in self.groups:
            rows.append((g.query, g.positive, 1.0))
            rows.extend((g.query, passage, 0.0) for passage, _ in g.negatives)
        rows.extend((query, passage, 0.0) for query, passage in self.extra_negatives)
        random.Random(seed).shuffle(rows)
        return Dataset.from_dict(
            {
                "query": [r[0] for r in rows],
                "passage": [r[1] for r in rows],
                "label": [r[2] for r in rows],
            }
        )

    def lists(self) -> Dataset:
        """(query, [positive, negatives...], [1, 0, ...]) rows for listwise losses."""
        from datasets import Dataset

        groups = [g for g in self.groups if g.negatives]
        return Dataset.from_dict(
            {
                "query": [g.query for g in groups],
                "docs": [[g.positive] + [p for p, _ in g.negatives] for g in groups],
                "labels": [[1.0] + [0.0] * len(g.negatives) for g in groups],
            }
        )

    def tuples(self) -> Dataset:
        """(query, positive, negative_1..n) rows for in-batch losses; n is the smallest group's."""
        from datasets import Dataset

        n = min((len(g.negatives) for g in self.groups), default=0)
        data: dict[str, list[str]] = {
            "query": [g.query for g in self.groups],
            "positive": [g.positive for g in self.groups],
        }
        for i in range(n):
            data[f"negative_{i + 1}"] = [g.negatives[i][0] for g in self.groups]
        return Dataset.from_dict(data)


def mining_window(cfg: RerankerConfig) -> MiningWindow:
    return MiningWindow(
        num_negatives=cfg.num_negatives,
        range_min=cfg.range_min,
        range_max=cfg.range_max,
        sampling=cfg.sampling,
        margin=cfg.margin,
        max_score=cfg.max_score,
        use_faiss=cfg.use_faiss,
        seed=cfg.seed,
    )


def add_llm_negatives(
    groups: Sequence[QueryGroup], rows: Iterable[GeneratedRow], corpus: Mapping[str, str]
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The generator's hard negatives: passages that look relevant to a query but are not,
    and queries that look answerable by a chunk but are not (returned as label-0 pairs)."""
    counts = {"llm_passage": 0, "llm_query": 0}
    by_query = {match_key(g.query): g for g in groups}
    train_chunks = {g.chunk_id for g in groups}
    pairs: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for row in rows:
        passage = " ".join(row.negative_reranking.split())
        group = by_query.get(match_key(row.question))
        if passage and group is not None and group.add(passage, "llm_passage"):
            counts["llm_passage"] += 1
        neg_query = " ".join(row.negative_retrieval.split())
        if neg_query and row.chunk_id in train_chunks and row.chunk_id in corpus:
            pair = (neg_query, corpus[row.chunk_id])
            if pair not in seen:
                seen.add(pair)
                pairs.append(pair)
                counts["llm_query"] += 1
    return counts, pairs


def collect_negatives(
    train: Dataset,
    corpus: Mapping[str, str],
    cfg: RerankerConfig,
    *,
    embedder: SentenceTransformer | None,
    exclude_chunks: Iterable[str] = (),
    llm_rows: Iterable[GeneratedRow] = (),
    cross_encoder: CrossEncoder | None = None,
    events: Emitter | None = None,
    batch_size: int = 64,
) -> NegativesResult:
    """Mix every negative source for the training queries.

    ``exclude_chunks`` (the held-out eval chunks) are never used as negatives, so no
    evaluation passage is trained on in any role.
    """
    excluded = set(exclude_chunks)
    pool = {cid: text for cid, text in corpus.items() if cid not in excluded}
    groups = build_groups(train)
    counts: dict[str, int] = {"queries": len(groups)}
    window = mining_window(cfg)
    if embedder is not None and cfg.num_negatives > 0:
        counts.update(
            mine(groups, pool, embedder, window, cross_encoder=cross_encoder, batch_size=batch_size)
        )
    extra: list[tuple[str, str]] = []
    if cfg.llm_negatives:
        llm_counts, extra = add_llm_negatives(groups, llm_rows, pool)
        counts.update(llm_counts)
    counts.update(add_random_negatives(groups, pool, cfg.random_negatives, cfg.seed))
    result = NegativesResult(groups=groups, counts={}, recipe={}, extra_negatives=extra)
    for source in SOURCES:
        counts.setdefault(source, 0)
    counts["positives"] = result.positives
    counts["negatives"] = result.negatives
    result.counts = counts
    result.recipe = {
        "num_negatives": cfg.num_negatives,
        "range_min": cfg.range_min,
        "range_max": cfg.range_max,
        "sampling": cfg.sampling,
        "margin": cfg.margin,
        "max_score": cfg.max_score,
        "rescore_model": cfg.rescore_model or None,
        "random_negatives": cfg.random_negatives,
        "llm_negatives": cfg.llm_negatives,
        "faiss": faiss_used(window),
    }
    if events is not None:
        events.info(
            "negatives: "
            + ", ".join(f"{counts[s]} {s.replace('_', ' ')}" for s in SOURCES)
            + f" for {counts['queries']} queries (pos_weight {result.pos_weight:.2f})"
        )
    return result
