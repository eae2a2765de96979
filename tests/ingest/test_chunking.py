"""Chunking: token limits by the tokenizer's own count, overlap, boundaries, ids, filters, stats."""

from __future__ import annotations

import itertools
import re

import pytest

from ragtune.engine.config import ChunkingConfig
from ragtune.engine.core.records import Document
from ragtune.engine.ingest.chunking import Chunker, ChunkStats, chunk_documents


@pytest.fixture(scope="module")
def tokenizer(minilm_path):
    from ragtune.engine.core.models import load_tokenizer

    return load_tokenizer(str(minilm_path))


def n_tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def prose(n: int, topic: str = "leave") -> str:
    return " ".join(
        f"Rule {i} of the {topic} policy says employees file form {i * 7} before day {i % 9}."
        for i in range(n)
    )


MIXED = (
    "# Handbook\n\n## Travel\n\n"
    + prose(40, "travel")
    + "\n\n"
    + "Monster "
    + " ".join(f"clause{i} and" for i in range(400))
    + " end.\n\n"
    + "https://example.com/"
    + "a1b2c3" * 300
    + "\n\n"
    + "## Expenses\n\n"
    + "中文句子。" * 200
    + "\n\n- item one is here\n- item two is here\n\n"
    + prose(25, "expense")
)


def make(tokenizer, **kw) -> Chunker:
    kw.setdefault("max_tokens", 64)
    kw.setdefault("overlap_tokens", 16)
    kw.setdefault("min_tokens", 4)
    return Chunker(ChunkingConfig(**kw), tokenizer, model_max_length=256)


def test_no_chunk_exceeds_limit_by_tokenizer_count(tokenizer):
    chunker = make(tokenizer)
    chunks = chunker.chunk(Document("d", MIXED, "mixed.md"))
    assert len(chunks) > 20
    for chunk in chunks:
        assert n_tokens(tokenizer, chunk.text) <= 64
        assert chunk.n_tokens == n_tokens(tokenizer, chunk.text)


def test_limit_capped_by_model_max_length_minus_special_tokens(tokenizer):
    chunker = Chunker(
        ChunkingConfig(max_tokens=4096, overlap_tokens=0, min_tokens=4),
        tokenizer,
        model_max_length=128,
    )
    assert chunker.limit == 126
    chunks = chunker.chunk(Document("d", MIXED, "mixed.md"))
    longest = max(len(tokenizer(c.text)["input_ids"]) for c in chunks)
    assert 100 < longest <= 128


def test_nothing_is_lost_without_overlap(tokenizer):
    chunker = make(tokenizer, overlap_tokens=0)
    chunks = chunker.chunk(Document("d", MIXED, "mixed.md"))
    joined = re.sub(r"\s+", "", "".join(c.text for c in chunks))
    assert joined == re.sub(r"\s+", "", MIXED)


def _shared(a: str, b: str) -> str:
    """Longest suffix of a that is a prefix of b."""
    for size in range(min(len(a), len(b)), 0, -1):
        if a.endswith(b[:size]):
            return b[:size]
    return ""


def test_overlap_present_and_bounded(tokenizer):
    chunker = make(tokenizer, overlap_tokens=16)
    chunks = chunker.chunk(Document("d", "# Policy\n\n" + prose(60), "p.md"))
    assert len(chunks) >= 5
    for a, b in itertools.pairwise(chunks):
        shared = _shared(a.text, b.text)
        assert shared.strip(), (a.text[-80:], b.text[:80])
        assert 1 <= n_tokens(tokenizer, shared) <= 16


def test_sentence_and_paragraph_boundaries_respected(tokenizer):
    paragraphs = [prose(3, f"topic{i}") for i in range(12)]
    text = "\n\n".join(paragraphs)
    chunks = make(tokenizer, overlap_tokens=0).chunk(Document("d", text, "p.txt"))
    assert len(chunks) > 3
    for chunk in chunks:
        assert chunk.text.endswith("."), chunk.text[-40:]
        assert chunk.text.startswith("Rule ")


def test_headings_start_new_chunks_and_are_recorded(tokenizer):
    text = (
        "# Guide\n\n## Leave\n\n"
        + prose(12, "leave")
        + "\n\n## Travel\n\n"
        + prose(3, "travel")
        + "\n\n```\n# not a heading\n```\n\n## Security\n\n"
        + prose(12, "security")
    )
    chunks = make(tokenizer).chunk(Document("d", text, "guide.md"))
    headings = [c.heading for c in chunks]
    assert set(headings) == {"Leave", "Travel", "Security"}
    for chunk in chunks:
        topics = {t for t in ("leave", "travel", "security") if f"the {t} policy" in chunk.text}
        assert topics == {chunk.heading.lower()}
    assert chunks[0].text.startswith("# Guide\n\n## Leave")
    assert "# not a heading" in next(c.text for c in chunks if c.heading == "Travel")


def test_headings_tracked_when_not_splitting(tokenizer):
    text = "## A\n\n" + prose(2, "alpha") + "\n\n## B\n\n" + prose(2, "beta")
    chunks = make(tokenizer, max_tokens=256, respect_headings=False).chunk(
        Document("d", text, "x.md")
    )
    assert len(chunks) == 1
    assert chunks[0].heading == "A"


def test_pages_come_from_page_starts(tokenizer):
    pages = [prose(8, f"page{p}") for p in range(1, 4)]
    text = "\n\n".join(pages)
    starts, offset = [], 0
    for number, page in enumerate(pages, start=1):
        starts.append((offset, number))
        offset += len(page) + 2
    chunks = make(tokenizer, overlap_tokens=0).chunk(
        Document("d", text, "x.pdf", page_starts=starts)
    )
    for chunk in chunks:
        assert f"the page{chunk.page} policy" in chunk.text
    assert {c.page for c in chunks} == {1, 2, 3}


def test_ids_stable_across_runs_and_unique(tokenizer):
    doc = Document("d", MIXED, "mixed.md")
    first = [c.chunk_id for c in make(tokenizer).chunk(doc)]
    second = [c.chunk_id for c in make(tokenizer).chunk(Document("d", MIXED, "mixed.md"))]
    assert first == second
    kept = [c.chunk_id for c in chunk_documents([doc], make(tokenizer), ChunkStats())]
    assert len(set(kept)) == len(kept) > 20
    other = [c.chunk_id for c in make(tokenizer).chunk(Document("d", MIXED, "other.md"))]
    assert not set(first) & set(other)


def test_duplicates_and_short_chunks_dropped_and_counted(tokenizer):
    body = prose(20)
    docs = [
        Document("a", body, "a.txt"),
        Document("b", body.replace(" ", "\n  "), "b.txt"),
        Document("c", "Too short.", "c.txt"),
        Document("d", prose(20, "travel"), "d.txt"),
    ]
    chunker = make(tokenizer, min_tokens=8)
    per_doc = [len(chunker.chunk(d)) for d in docs]
    stats = ChunkStats()
    chunks = list(chunk_documents(docs, chunker, stats))
    assert stats.documents == 4
    assert stats.duplicates == per_doc[1]
    assert stats.too_short == 1
    assert stats.chunks == len(chunks) == per_doc[0] + per_doc[3]
    assert {c.source for c in chunks} == {"a.txt", "d.txt"}
    assert all(c.n_tokens >= 8 for c in chunks)


def test_histogram_and_length_summary(tokenizer):
    docs = [Document(str(i), "# T\n\n" + prose(5 + 3 * i, f"t{i}"), f"{i}.md") for i in range(8)]
    stats = ChunkStats()
    chunks = list(chunk_documents(docs, make(tokenizer), stats))
    hist = stats.histogram
    assert sum(hist.values()) == stats.chunks == len(chunks)
    assert len(hist) == 8
    lengths = sorted(c.n_tokens for c in chunks)
    assert stats.token_min == lengths[0]
    assert stats.token_max == lengths[-1]
    mid = len(lengths) // 2
    expected = lengths[mid] if len(lengths) % 2 else (lengths[mid - 1] + lengths[mid]) / 2
    assert stats.token_median == expected
    summary = stats.to_dict()
    assert summary["tokens"]["max"] <= summary["max_tokens"] == 64


def test_documents_are_streamed(tokenizer):
    pulled = []

    def docs():
        for i in range(10_000):
            pulled.append(i)
            yield Document(str(i), prose(10, f"t{i}"), f"{i}.txt")

    stream = chunk_documents(docs(), make(tokenizer), ChunkStats())
    first = next(stream)
    assert first.source == "0.txt"
    assert len(pulled) < 200


def test_byte_level_bpe_tokenizer_counts_hold():
    """GPT-style tokenizers (ModernBERT's family) tokenise a slice differently from its context."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    corpus = [prose(30, t) for t in ("leave", "travel", "expense")]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(corpus, vocab_size=300, min_frequency=1, show_progress=False)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, model_max_length=512)
    chunker = Chunker(ChunkingConfig(max_tokens=48, overlap_tokens=8, min_tokens=4), tokenizer)
    assert chunker.limit == 48
    chunks = chunker.chunk(Document("d", MIXED, "mixed.md"))
    assert len(chunks) > 20
    for chunk in chunks:
        assert chunk.n_tokens == n_tokens(tokenizer, chunk.text) <= 48
