"""Negatives for the reranker: mined with the embedder, written by the LLM, and random, each counted."""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.config.reranker import RerankerConfig
from engine.core.events import Emitter
from engine.generate.rows import GeneratedRow

if TYPE_CHECKING:
    from datasets import Dataset
    from sentence_transformers import CrossEncoder, SentenceTransformer

SOURCES = ("mined", "llm_passage", "llm_query", "random")


@contextmanager
def _without_progress_bars(model: SentenceTransformer) -> Iterator[None]:
    """mine_hard_negatives asks for tqdm bars unconditionally; ours come from events."""
    names = ("encode_query", "encode_document", "encode")
    originals = {name: getattr(model, name) for name in names}

    def quiet(fn: Any) -> Any:
        return lambda *args, **kwargs: fn(*args, **{**kwargs, "show_progress_bar": False})

    for name, fn in originals.items():
        setattr(model, name, quiet(fn))
    try:
        yield
    finally:
        for name in names:
            delattr(model, name)


def _key(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


@dataclass
class QueryGroup:
    """One training query with its positive passage and its negatives, tagged by source."""

    query: str
    positive: str
    chunk_id: str
    negatives: list[tuple[str, str]] = field(default_factory=list)

    def add(self, passage: str, source: str) -> bool:
        if not passage or passage == self.positive or any(p == passage for p, _ in self.negatives):
            return False
        self.negatives.append((passage, source))
        return True


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


def _window(cfg: RerankerConfig, corpus_size: int) -> tuple[int, int, int]:
    """range_min, range_max, num_negatives shrunk to fit a small corpus (the miner rejects misfits)."""
    range_max = min(cfg.range_max, max(1, corpus_size - 1))
    range_min = min(cfg.range_min, max(0, range_max - cfg.num_negatives))
    return range_min, range_max, min(cfg.num_negatives, range_max - range_min)


def _faiss_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("faiss") is not None


def mine(
    groups: Sequence[QueryGroup],
    corpus: Mapping[str, str],
    embedder: SentenceTransformer,
    cfg: RerankerConfig,
    *,
    cross_encoder: CrossEncoder | None = None,
    batch_size: int = 64,
) -> dict[str, int]:
    """Adds mined negatives to ``groups`` in place; returns what was kept and dropped.

    Mining runs with each query's whole chunk as the positive, so the chunk the query came
    from is never its own negative, even when the training positive is a cut-down passage
    (inverse cloze). Candidates that contain the query verbatim are dropped too: with
    overlapping chunks a neighbour can hold the held-out sentence.
    """
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    counts = {"mined": 0, "mined_dropped_contains_query": 0, "mined_queries_without": 0}
    texts = list(dict.fromkeys(corpus.values()))
    range_min, range_max, num = _window(cfg, len(texts))
    if num < 1 or not groups or len(texts) < 2:
        return counts
    anchors = [g.query for g in groups]
    positives = [corpus.get(g.chunk_id, g.positive) for g in groups]
    state = random.getstate()
    random.seed(cfg.seed)
    try:
        with _without_progress_bars(embedder):
            mined = mine_hard_negatives(
                Dataset.from_dict({"query": anchors, "passage": positives}),
                embedder,
                anchor_column_name="query",
                positive_column_name="passage",
                corpus=texts,
                cross_encoder=cross_encoder,
                range_min=range_min,
                range_max=range_max,
                max_score=cfg.max_score,
                absolute_margin=cfg.margin if cfg.margin >= 0 else None,
                num_negatives=num,
                sampling_strategy=cfg.sampling,
                output_format="labeled-list",
                batch_size=batch_size,
                # Its default block (16,384 queries x corpus) is 6 GiB at 100k chunks; ~256 MiB here.
                faiss_batch_size=max(1, min(16_384, 2**26 // len(texts))),
                use_faiss=cfg.use_faiss and _faiss_available(),
                verbose=False,
            )
    finally:
        random.setstate(state)
    by_query = {g.query: g for g in groups}
    found: set[str] = set()
    for query, docs, labels in zip(mined["query"], mined["passage"], mined["labels"], strict=True):
        group = by_query.get(query)
        if group is None:
            continue
        needle = _key(query)
        for doc, label in zip(docs, labels, strict=True):
            if label:
                continue
            if len(needle) >= 20 and needle in _key(doc):
                counts["mined_dropped_contains_query"] += 1
                continue
            if group.add(doc, "mined"):
                counts["mined"] += 1
                found.add(query)
    counts["mined_queries_without"] = len(groups) - len(found)
    return counts


def add_llm_negatives(
    groups: Sequence[QueryGroup], rows: Iterable[GeneratedRow], corpus: Mapping[str, str]
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The generator's hard negatives: passages that look relevant to a query but are not,
    and queries that look answerable by a chunk but are not (returned as label-0 pairs)."""
    counts = {"llm_passage": 0, "llm_query": 0}
    by_query = {_key(g.query): g for g in groups}
    train_chunks = {g.chunk_id for g in groups}
    pairs: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for row in rows:
        passage = " ".join(row.negative_reranking.split())
        group = by_query.get(_key(row.question))
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


def add_random_negatives(
    groups: Sequence[QueryGroup], corpus: Mapping[str, str], per_query: int, seed: int
) -> dict[str, int]:
    """Uniform negatives: a reranker trained only on hard ones can get worse on easy cases."""
    counts = {"random": 0}
    ids = sorted(corpus)
    if per_query < 1 or len(ids) < 2:
        return counts
    rng = random.Random(seed)
    for g in groups:
        tries = 0
        added = 0
        while added < per_query and tries < per_query * 10:
            tries += 1
            cid = ids[rng.randrange(len(ids))]
            if cid == g.chunk_id:
                continue
            if g.add(corpus[cid], "random"):
                added += 1
        counts["random"] += added
    return counts


def build_groups(train: Dataset) -> list[QueryGroup]:
    seen: set[str] = set()
    groups: list[QueryGroup] = []
    for query, positive, chunk_id in zip(
        train["anchor"], train["positive"], train["chunk_id"], strict=True
    ):
        if query in seen:
            continue
        seen.add(query)
        groups.append(QueryGroup(query=query, positive=positive, chunk_id=chunk_id))
    return groups


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
    if embedder is not None and cfg.num_negatives > 0:
        counts.update(
            mine(groups, pool, embedder, cfg, cross_encoder=cross_encoder, batch_size=batch_size)
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
        "faiss": bool(cfg.use_faiss and _faiss_available()),
    }
    if events is not None:
        events.info(
            "negatives: "
            + ", ".join(f"{counts[s]} {s.replace('_', ' ')}" for s in SOURCES)
            + f" for {counts['queries']} queries (pos_weight {result.pos_weight:.2f})"
        )
    return result
