"""Token-aware chunking of documents into passages, with dedup, length filters and statistics."""

from __future__ import annotations

import hashlib
import json
import re
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ragtune.engine.config import ChunkingConfig
from ragtune.engine.core.errors import ConfigError
from ragtune.engine.core.records import Chunk, Document, chunk_id_for

# Tokenizers that report no real limit use a huge sentinel (1e30); treat those as "unknown".
_NO_LIMIT = 1_000_000
# A batch of documents is tokenised in one call; bounded so memory stays flat on big corpora.
_BATCH_DOCS = 64
_BATCH_CHARS = 2_000_000
HISTOGRAM_BINS = 8

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_FENCE = re.compile(r"^(```|~~~).*?(?:^\1[^\n]*$|\Z)", re.MULTILINE | re.DOTALL)
_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
_SENTENCE = re.compile(
    r"(?<=[.!?…])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9\u00c0-\u00de])"
    r"|(?<=[。！？])"
    r"|\n(?=[ \t]*(?:[-*+•]|\d{1,3}[.)]|\|)[ \t])"
)


@lru_cache(maxsize=4)
def cached_tokenizer(name: str, trust_remote_code: bool = False) -> Any:
    """The TUI re-chunks on every settings change; loading a tokenizer each time would lag."""
    from ragtune.engine.core.models import load_tokenizer

    return load_tokenizer(name, trust_remote_code=trust_remote_code)


def model_max_tokens(name: str, tokenizer: Any) -> int | None:
    """The sequence limit the embedder will use: sentence-transformers' own, else the tokenizer's."""
    from ragtune.engine.core.models import resolve_model

    folder = Path(resolve_model(name))
    st_config = folder / "sentence_bert_config.json"
    if st_config.is_file():
        try:
            value = json.loads(st_config.read_text(encoding="utf-8")).get("max_seq_length")
        except (OSError, ValueError):
            value = None
        if isinstance(value, int) and value > 0:
            return value
    value = getattr(tokenizer, "model_max_length", None)
    if isinstance(value, int) and 0 < value < _NO_LIMIT:
        return value
    return None


class _Encoder:
    """Offsets and counts from a fast tokenizer's Rust backend, bypassing per-call Python wrapping."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is not None:
            from tokenizers import Tokenizer

            # A copy, so switching off truncation and padding never changes the caller's tokenizer.
            backend = Tokenizer.from_str(backend.to_str())
            backend.no_truncation()
            backend.no_padding()
        self.backend = backend

    def offsets(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        if self.backend is not None:
            return [e.offsets for e in self.backend.encode_batch(texts, add_special_tokens=False)]
        out = []
        for text in texts:
            spans: list[tuple[int, int]] = []
            for m in re.finditer(r"\S+", text):
                n = len(self.tokenizer.tokenize(m.group()))
                spans.extend([(m.start(), m.end())] * n)
            out.append(spans)
        return out

    def counts(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        if self.backend is not None:
            return [len(e.ids) for e in self.backend.encode_batch(texts, add_special_tokens=False)]
        return [len(self.tokenizer.tokenize(t)) for t in texts]


@dataclass
class _Span:
    """A planned chunk: a character range of a document and the heading above it."""

    start: int
    end: int
    heading: str


class Chunker:
    """Cuts documents into passages no longer than the model can read, at the best boundary.

    Preference order for a cut: heading (a hard break), paragraph, sentence, word, token.
    A chunk is packed greedily and only ends at a paragraph or sentence boundary when that
    keeps it at least half full; otherwise a monster sentence is cut between words.
    """

    def __init__(
        self, cfg: ChunkingConfig, tokenizer: Any, *, model_max_length: int | None = None
    ) -> None:
        self.cfg = cfg
        self.tokenizer = tokenizer
        self._encoder = _Encoder(tokenizer)
        limit = cfg.max_tokens
        model_max = model_max_length
        if model_max is None:
            value = getattr(tokenizer, "model_max_length", None)
            model_max = value if isinstance(value, int) and 0 < value < _NO_LIMIT else None
        if model_max is not None:
            specials = _num_special_tokens(tokenizer)
            limit = min(limit, model_max - specials)
        if limit < 8:
            raise ConfigError(
                "chunking.max_tokens", limit, "a model and limit that allow at least 8 tokens"
            )
        self.limit = limit
        self.overlap = min(cfg.overlap_tokens, limit // 2)

    def chunk(self, doc: Document) -> list[Chunk]:
        return self.chunk_many([doc])[0]

    def chunk_many(self, docs: list[Document]) -> list[list[Chunk]]:
        """Chunks per document; one tokeniser call for all texts keeps the per-call cost low."""
        all_offsets = self._encoder.offsets([d.text for d in docs])
        planned = [self._plan(doc, offsets) for doc, offsets in zip(docs, all_offsets, strict=True)]
        texts = [
            doc.text[s.start : s.end].strip()
            for doc, spans in zip(docs, planned, strict=True)
            for s in spans
        ]
        counts = iter(self._encoder.counts(texts))
        text_iter = iter(texts)
        out: list[list[Chunk]] = []
        for doc, spans in zip(docs, planned, strict=True):
            chunks: list[Chunk] = []
            pages = _page_index(doc)
            for span in spans:
                text, n = next(text_iter), next(counts)
                if not text:
                    continue
                for piece, n_piece in self._fit(text, n):
                    chunks.append(
                        Chunk(
                            chunk_id=chunk_id_for(doc.source, piece),
                            doc_id=doc.doc_id,
                            text=piece,
                            source=doc.source,
                            title=doc.title,
                            heading=span.heading,
                            page=_page_at(pages, span.start),
                            n_tokens=n_piece,
                        )
                    )
            out.append(chunks)
        return out

    def _fit(self, text: str, n: int) -> list[tuple[str, int]]:
        """Re-tokenising a slice can differ by a token from the whole; halve the rare overflow."""
        if n <= self.limit:
            return [(text, n)]
        words = list(re.finditer(r"\S+", text))
        if len(words) < 2:
            mid = len(text) // 2
            halves = [text[:mid], text[mid:]]
        else:
            mid = words[len(words) // 2].start()
            halves = [text[:mid].strip(), text[mid:].strip()]
        result: list[tuple[str, int]] = []
        for half, count in zip(halves, self._encoder.counts(halves), strict=True):
            result.extend(self._fit(half, count))
        return result

    def _plan(self, doc: Document, offsets: list[tuple[int, int]]) -> list[_Span]:
        text = doc.text
        if not offsets:
            return []
        starts = [o[0] for o in offsets]
        headings = _headings(text)
        head_pos = [h[0] for h in headings]
        sections = _sections(text, headings, self.cfg.respect_headings)
        bounds = [bisect_left(starts, c) for c, _ in sections] + [len(offsets)]
        paragraphs = [bisect_left(starts, m.end()) for m in _PARAGRAPH.finditer(text)]
        sentences = sorted(
            set(paragraphs) | {bisect_left(starts, m.end()) for m in _SENTENCE.finditer(text)}
        )
        spans: list[_Span] = []
        for (_, body), ts, te in zip(sections, bounds, bounds[1:], strict=False):
            if te <= ts:
                continue
            for a, b in self._pack(ts, te, offsets, paragraphs, sentences):
                cs, ce = offsets[a][0], offsets[b - 1][1]
                i = bisect_right(head_pos, max(cs, body)) - 1
                spans.append(_Span(cs, ce, headings[i][1] if i >= 0 else ""))
        return spans

    def _pack(
        self,
        ts: int,
        te: int,
        offsets: list[tuple[int, int]],
        paragraphs: list[int],
        sentences: list[int],
    ) -> Iterator[tuple[int, int]]:
        limit, overlap = self.limit, self.overlap
        pos = ts
        while True:
            if te - pos <= limit:
                yield pos, te
                return
            hi = pos + limit
            half = pos + max(limit // 2, 1)
            cut = _last_in(paragraphs, half, hi) or _last_in(sentences, half, hi)
            if cut is None:
                cut = _last_word_start(offsets, half, hi) or hi
            yield pos, cut
            nxt = cut
            if overlap and cut - overlap > pos:
                lo = cut - overlap
                nxt = (
                    _first_in(sentences, lo, cut - 1)
                    or _first_word_start(offsets, lo, cut - 1)
                    or lo
                )
            pos = max(nxt, pos + 1)


def _num_special_tokens(tokenizer: Any) -> int:
    try:
        return int(tokenizer.num_special_tokens_to_add(pair=False))
    except (AttributeError, TypeError, ValueError):
        return 2


def _last_in(points: list[int], lo: int, hi: int) -> int | None:
    """The largest point in [lo, hi], or None."""
    i = bisect_right(points, hi) - 1
    return points[i] if i >= 0 and points[i] >= lo else None


def _first_in(points: list[int], lo: int, hi: int) -> int | None:
    i = bisect_left(points, lo)
    return points[i] if i < len(points) and points[i] <= hi else None


def _is_word_start(offsets: list[tuple[int, int]], i: int) -> bool:
    return i == 0 or offsets[i][0] > offsets[i - 1][1]


def _last_word_start(offsets: list[tuple[int, int]], lo: int, hi: int) -> int | None:
    for i in range(min(hi, len(offsets) - 1), lo - 1, -1):
        if _is_word_start(offsets, i):
            return i
    return None


def _first_word_start(offsets: list[tuple[int, int]], lo: int, hi: int) -> int | None:
    for i in range(lo, min(hi, len(offsets) - 1) + 1):
        if _is_word_start(offsets, i):
            return i
    return None


def _headings(text: str) -> list[tuple[int, str]]:
    """(offset, title) of markdown '#' lines outside fenced code blocks."""
    if "#" not in text:
        return []
    fences = (
        [(m.start(), m.end()) for m in _FENCE.finditer(text)]
        if "```" in text or "~~~" in text
        else []
    )
    out = []
    for m in _HEADING.finditer(text):
        if any(a <= m.start() < b for a, b in fences):
            continue
        out.append((m.start(), m.group(2).strip()))
    return out


def _body_start(text: str, start: int, end: int) -> int:
    """Offset of the first line in [start, end) that is not blank and not a heading (or end)."""
    pos = start
    while pos < end:
        line_end = text.find("\n", pos, end)
        line_end = end if line_end < 0 else line_end
        line = text[pos:line_end]
        if line.strip() and not _HEADING.match(line):
            return pos
        pos = line_end + 1
    return end


def _sections(text: str, headings: list[tuple[int, str]], split: bool) -> list[tuple[int, int]]:
    """(start, body start) per section; a heading with no body joins the next section."""
    starts: list[tuple[int, int]] = []
    start = 0
    for pos in [h[0] for h in headings] if split else []:
        if pos <= start:
            continue
        body = _body_start(text, start, pos)
        if body < pos:
            starts.append((start, body))
            start = pos
    starts.append((start, _body_start(text, start, len(text))))
    return starts


def _page_index(doc: Document) -> tuple[list[int], list[int]] | None:
    if not doc.page_starts:
        return None
    pairs = sorted(doc.page_starts)
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _page_at(index: tuple[list[int], list[int]] | None, offset: int) -> int | None:
    if index is None:
        return None
    i = bisect_right(index[0], offset) - 1
    return index[1][max(i, 0)]


def normalised_hash(text: str) -> bytes:
    """Whitespace-insensitive identity, so a re-wrapped copy of a passage counts as a duplicate."""
    return hashlib.blake2b(" ".join(text.split()).encode("utf-8"), digest_size=16).digest()


@dataclass
class ChunkStats:
    """Counts and the token-length distribution of one ingest, for the summary and the TUI."""

    documents: int = 0
    chunks: int = 0
    duplicates: int = 0
    too_short: int = 0
    skipped_files: int = 0
    max_tokens: int = 0
    lengths: Counter[int] = field(default_factory=Counter)

    def add_length(self, n: int) -> None:
        self.lengths[n] += 1

    @property
    def histogram(self) -> dict[str, int]:
        """Equal-width bins over 0..max_tokens, labelled "lo-hi" (inclusive)."""
        top = max(self.max_tokens, max(self.lengths, default=0), 1)
        width = -(-top // HISTOGRAM_BINS)
        bins: dict[str, int] = {}
        for b in range(HISTOGRAM_BINS):
            lo, hi = b * width + (1 if b == 0 else 0), (b + 1) * width
            bins[f"{lo}-{hi}"] = 0
        keys = list(bins)
        for n, count in self.lengths.items():
            bins[keys[min(max(n - 1, 0) // width, HISTOGRAM_BINS - 1)]] += count
        return bins

    @property
    def token_min(self) -> int:
        return min(self.lengths, default=0)

    @property
    def token_max(self) -> int:
        return max(self.lengths, default=0)

    @property
    def token_median(self) -> float:
        total = sum(self.lengths.values())
        if not total:
            return 0.0
        ordered = sorted(self.lengths.items())

        def nth(k: int) -> int:
            seen = 0
            for n, count in ordered:
                seen += count
                if seen > k:
                    return n
            return ordered[-1][0]

        if total % 2:
            return float(nth(total // 2))
        return (nth(total // 2 - 1) + nth(total // 2)) / 2

    def to_dict(self) -> dict[str, Any]:
        return {
            "documents": self.documents,
            "chunks": self.chunks,
            "duplicates": self.duplicates,
            "too_short": self.too_short,
            "skipped_files": self.skipped_files,
            "max_tokens": self.max_tokens,
            "tokens": {"min": self.token_min, "median": self.token_median, "max": self.token_max},
            "histogram": self.histogram,
        }


def _batches(docs: Iterable[Document]) -> Iterator[list[Document]]:
    batch: list[Document] = []
    chars = 0
    for doc in docs:
        batch.append(doc)
        chars += len(doc.text)
        if len(batch) >= _BATCH_DOCS or chars >= _BATCH_CHARS:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


def chunk_documents(
    docs: Iterable[Document], chunker: Chunker, stats: ChunkStats
) -> Iterator[Chunk]:
    """Stream chunks, dropping exact (whitespace-normalised) duplicates and too-short ones.

    Only one batch of documents and the set of 16-byte hashes are held, never the corpus.
    """
    seen: set[bytes] = set()
    stats.max_tokens = chunker.limit
    min_tokens = chunker.cfg.min_tokens
    for batch in _batches(docs):
        stats.documents += len(batch)
        for chunks in chunker.chunk_many(batch):
            for chunk in chunks:
                if chunk.n_tokens < min_tokens:
                    stats.too_short += 1
                    continue
                key = normalised_hash(chunk.text)
                if key in seen:
                    stats.duplicates += 1
                    continue
                seen.add(key)
                stats.chunks += 1
                stats.add_length(chunk.n_tokens)
                yield chunk
