"""Hard negatives mined with a bi-encoder: one miner for the embedder's and the reranker's training.

Both stages want the same thing from the corpus, passages the retriever ranks high for a
query but that are not its chunk; they differ only in the rank window they sample from.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datasets import Dataset
    from sentence_transformers import CrossEncoder, SentenceTransformer


@dataclass(frozen=True)
class MiningWindow:
    """Which ranks negatives are drawn from; the defaults are the reranker's."""

    num_negatives: int = 4
    range_min: int = 2
    range_max: int = 50
    sampling: str = "random"
    margin: float = 0.0
    max_score: float = 0.98
    use_faiss: bool = True
    seed: int = 42

    def fitted(self, corpus_size: int) -> MiningWindow:
        """Shrunk to fit a small corpus (the miner rejects a window larger than the corpus)."""
        range_max = min(self.range_max, max(1, corpus_size - 1))
        range_min = min(self.range_min, max(0, range_max - self.num_negatives))
        num = min(self.num_negatives, range_max - range_min)
        return replace(self, num_negatives=num, range_min=range_min, range_max=range_max)


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


def build_groups(train: Dataset) -> list[QueryGroup]:
    """One group per distinct query of the prepared training split (which has ``chunk_id``)."""
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


def match_key(text: str) -> str:
    """Lowercase words only, so texts that differ in case and punctuation compare equal."""
    return re.sub(r"\W+", " ", text.lower()).strip()


def _faiss_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("faiss") is not None


def faiss_used(window: MiningWindow) -> bool:
    return window.use_faiss and _faiss_available()


def mine(
    groups: Sequence[QueryGroup],
    corpus: Mapping[str, str],
    embedder: SentenceTransformer,
    window: MiningWindow,
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
    fit = window.fitted(len(texts))
    if fit.num_negatives < 1 or not groups or len(texts) < 2:
        return counts
    anchors = [g.query for g in groups]
    positives = [corpus.get(g.chunk_id, g.positive) for g in groups]
    state = random.getstate()
    random.seed(window.seed)
    try:
        with _without_progress_bars(embedder):
            mined = mine_hard_negatives(
                Dataset.from_dict({"query": anchors, "passage": positives}),
                embedder,
                anchor_column_name="query",
                positive_column_name="passage",
                corpus=texts,
                cross_encoder=cross_encoder,
                range_min=fit.range_min,
                range_max=fit.range_max,
                max_score=fit.max_score,
                absolute_margin=fit.margin if fit.margin >= 0 else None,
                num_negatives=fit.num_negatives,
                sampling_strategy=fit.sampling,
                output_format="labeled-list",
                batch_size=batch_size,
                # Its default block (16,384 queries x corpus) is 6 GiB at 100k chunks; ~256 MiB here.
                faiss_batch_size=max(1, min(16_384, 2**26 // len(texts))),
                use_faiss=faiss_used(fit),
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
        needle = match_key(query)
        for doc, label in zip(docs, labels, strict=True):
            if label:
                continue
            if len(needle) >= 20 and needle in match_key(doc):
                counts["mined_dropped_contains_query"] += 1
                continue
            if group.add(doc, "mined"):
                counts["mined"] += 1
                found.add(query)
    counts["mined_queries_without"] = len(groups) - len(found)
    return counts


def add_random_negatives(
    groups: Sequence[QueryGroup],
    corpus: Mapping[str, str],
    per_query: int,
    seed: int,
    *,
    up_to: bool = False,
) -> dict[str, int]:
    """Uniform negatives: ``per_query`` more for each group, or with ``up_to`` only as many as
    bring a group to ``per_query`` (filling where mining found too few)."""
    counts = {"random": 0}
    ids = sorted(corpus)
    if per_query < 1 or len(ids) < 2:
        return counts
    rng = random.Random(seed)
    for g in groups:
        wanted = per_query - len(g.negatives) if up_to else per_query
        tries = 0
        added = 0
        while added < wanted and tries < per_query * 10:
            tries += 1
            cid = ids[rng.randrange(len(ids))]
            if cid == g.chunk_id:
                continue
            if g.add(corpus[cid], "random"):
                added += 1
        counts["random"] += added
    return counts
