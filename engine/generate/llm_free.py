"""Pseudo-queries cut from the chunks themselves: the default generator, with no key and no network.

Three kinds, each a known self-supervised signal for dense retrieval:
- inverse cloze: a sentence held out of the chunk is the query and the rest of the
  chunk the positive (Lee et al., 2019), so the model learns to match a statement
  to its context rather than to itself;
- titles and headings, which people write to say what a passage is about;
- keyword queries built from the chunk's rarest terms, the way people type into a
  search box.
"""

from __future__ import annotations

import math
import random
import re
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict

from ragtune.engine.config.generation import LlmFreeConfig
from ragtune.engine.core.errors import Cancelled
from ragtune.engine.core.events import Emitter
from ragtune.engine.core.records import Chunk
from ragtune.engine.core.workspace import Workspace
from ragtune.engine.generate.base import GenerationProgress, GenerationSummary
from ragtune.engine.generate.review import apply_review
from ragtune.engine.generate.rows import (
    CallRecord,
    GeneratedRow,
    RecordWriter,
    latest_records,
    make_key,
    read_rows,
)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9\-']+")
_STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    also may must shall might within without upon via per however thus therefore whether used
    using use one two three first second new well based found shown show study studies results
    paper article data method methods""".split()
)


_BLOCK_BREAK = re.compile(r"\n\s*\n|\n(?=\s*(?:#{1,6}\s|[-*+]\s|\d+[.)]\s|\|))|(?<=\|)[ \t]*\n")
_HAS_WORD = re.compile(r"[^\W_]")
_LINE_MARKUP = re.compile(r"^\s*(?:#{1,6}\s+|[-*+]\s+|>\s*)")
_INLINE_MARKUP = re.compile(r"(?<!\*)\*\*(?=\w)|(?<=\w)\*\*(?!\*)|`")


def plain(text: str) -> str:
    """A line of Markdown as a person would type it: no heading, bullet or quote marks, no
    bold or code ticks, no table pipes, one space between words."""
    return " ".join(_INLINE_MARKUP.sub("", _LINE_MARKUP.sub("", text)).replace("|", " ").split())


def split_sentences(text: str) -> list[str]:
    """Sentences in plain text: headings, list items and paragraphs end a sentence, lines
    wrapped inside a paragraph do not; lowercase text and abbreviations are tolerated by
    merging tiny pieces."""
    pieces = [
        sentence
        for block in _BLOCK_BREAK.split(text)
        for piece in _SENTENCE_END.split(plain(block))
        if _HAS_WORD.search(sentence := piece.strip())
    ]
    merged: list[str] = []
    for piece in pieces:
        if merged and len(piece.split()) < 3:
            merged[-1] = f"{merged[-1]} {piece}"
        else:
            merged.append(piece)
    return merged


def _terms(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text) if w.lower() not in _STOPWORDS and len(w) > 2]


class DocumentFrequencies:
    """Corpus-level document frequencies, so keyword queries pick terms that single a chunk out."""

    def __init__(self, chunks: Sequence[Chunk]) -> None:
        self.df: Counter[str] = Counter()
        for c in chunks:
            self.df.update(set(_terms(c.text)))
        self.n = max(1, len(chunks))

    def idf(self, term: str) -> float:
        return math.log((self.n + 1) / (self.df.get(term, 0) + 1)) + 1.0

    def keywords(self, text: str, rng: random.Random) -> list[str]:
        """3-6 of the chunk's top tf-idf terms, skipping terms unique to it (typos, ids) and
        terms in over half the corpus (they single nothing out)."""
        counts = Counter(_terms(text))
        usable = [t for t in counts if 2 <= self.df.get(t, 0) <= max(2, self.n // 2)]
        ranked = sorted(usable, key=lambda t: counts[t] * self.idf(t), reverse=True)[:12]
        if len(ranked) < 3:
            return []
        k = rng.randint(3, min(6, len(ranked)))
        return rng.sample(ranked[: max(k + 2, 8)], k)


class LlmFreeGenerator:
    name = "llm-free"

    def __init__(self, cfg: LlmFreeConfig) -> None:
        self.cfg = cfg

    def rows_for(self, chunk: Chunk, df: DocumentFrequencies) -> list[GeneratedRow]:
        cfg = self.cfg
        rng = random.Random(f"{cfg.seed}:{chunk.chunk_id}")
        rows: list[GeneratedRow] = []

        def add(kind: str, question: str, positive: str = "") -> None:
            rows.append(
                GeneratedRow(
                    chunk_id=chunk.chunk_id,
                    question=question,
                    context=chunk.text,
                    source=chunk.source,
                    kind=kind,
                    positive=positive,
                )
            )

        sentences = split_sentences(chunk.text)
        candidates = [
            i for i, s in enumerate(sentences) if len(s.split()) >= cfg.min_sentence_words
        ]
        if len(sentences) >= 2 and candidates:
            picks = rng.sample(candidates, min(cfg.cloze_queries, len(candidates)))
            for i in picks:
                keep = rng.random() < cfg.keep_sentence_prob
                rest = sentences if keep else sentences[:i] + sentences[i + 1 :]
                add("cloze", sentences[i], " ".join(rest))

        if cfg.title_queries:
            label = next(
                (plain(x) for x in (chunk.heading, chunk.title) if len(plain(x).split()) >= 2), ""
            )
            if label:
                add("title", label)
            elif len(sentences) >= 3 and len(sentences[0].split()) <= cfg.lead_max_words:
                add("lead", sentences[0], " ".join(sentences[1:]))

        for _ in range(cfg.keyword_queries):
            words = df.keywords(chunk.text, rng)
            if len(words) >= 3:
                add("keywords", " ".join(words))

        if cfg.max_queries_per_chunk and len(rows) > cfg.max_queries_per_chunk:
            rows = rng.sample(rows, cfg.max_queries_per_chunk)
        return rows

    def record_key(self, chunk: Chunk) -> str:
        return make_key(
            self.name, chunk.source, chunk.text, chunk.heading, chunk.title, asdict(self.cfg)
        )

    def generate(
        self,
        chunks: Sequence[Chunk],
        ws: Workspace,
        events: Emitter,
        cancel: threading.Event | None = None,
    ) -> GenerationSummary:
        """Rows for every chunk not done yet; the sample review's decisions are then applied."""
        summary = self._generate(chunks, ws, events, cancel)
        reviewed = apply_review(ws, summary.keys)
        if reviewed != summary.keys:
            summary.keys = reviewed
            summary.rows = len(read_rows(ws.generated_path, reviewed))
            events.info("sample review applied: rejected rows removed, edited rows used as edited")
        return summary

    def sample(self, chunks: Sequence[Chunk], k: int) -> list[GeneratedRow]:
        """``k`` rows from chunks spread over the sources, exactly as the full run writes them:
        every kind a chunk gives, chunk after chunk."""
        from ragtune.engine.generate.llm import spread_sample

        df = DocumentFrequencies(chunks)
        rows: list[GeneratedRow] = []
        for chunk in spread_sample(chunks, max(1, k)):
            rows.extend(self.rows_for(chunk, df))
            if len(rows) >= k:
                break
        return rows[:k]

    def _generate(
        self,
        chunks: Sequence[Chunk],
        ws: Workspace,
        events: Emitter,
        cancel: threading.Event | None = None,
    ) -> GenerationSummary:
        keys = [self.record_key(c) for c in chunks]
        done = {k for k, r in latest_records(ws.generated_path, keys).items() if r.status == "ok"}
        summary = GenerationSummary(chunks=len(chunks), keys=keys, skipped=len(done))
        todo = [(k, c) for k, c in zip(keys, chunks, strict=True) if k not in done]
        if not todo:
            summary.rows = sum(
                len(r.rows) for r in latest_records(ws.generated_path, keys).values()
            )
            return summary
        df = DocumentFrequencies(chunks)
        kinds: Counter[str] = Counter()
        with RecordWriter(ws.generated_path) as writer:
            for n, (key, chunk) in enumerate(todo, 1):
                if cancel is not None and cancel.is_set():
                    raise Cancelled()
                rows = self.rows_for(chunk, df)
                kinds.update(r.kind for r in rows)
                writer.write(
                    CallRecord(key=key, chunk_id=chunk.chunk_id, generator=self.name, rows=rows)
                )
                summary.done += 1
                summary.rows += len(rows)
                events.progress(
                    n, len(todo), unit="chunks", extra=GenerationProgress(rows=summary.rows)
                )
        events.info("pseudo-queries by kind: " + ", ".join(f"{k} {v}" for k, v in kinds.items()))
        summary.rows += sum(len(r.rows) for k, r in latest_records(ws.generated_path, done).items())
        return summary
