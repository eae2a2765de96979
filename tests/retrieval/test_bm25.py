"""The BM25 index on the MEDLARS slice: scores equal a direct BM25 over the same words, and it
saves and loads with bm25s alone."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from ragtune.engine.core.errors import InputError
from ragtune.engine.retrieval import Bm25Index, Bm25Settings

SLICE = Path(__file__).resolve().parents[1] / "data" / "medline_slice"


def _read(name: str) -> list[dict]:
    return [json.loads(line) for line in (SLICE / name).read_text().splitlines() if line]


@pytest.fixture(scope="module")
def corpus() -> list[tuple[str, str]]:
    return [(row["_id"], row["text"]) for row in _read("corpus.jsonl")]


@pytest.fixture(scope="module")
def queries() -> list[str]:
    return [row["text"] for row in _read("queries.jsonl")]


def _words(text: str) -> list[str]:
    """The same words bm25s indexes, found here without bm25s's tokenizer: lower-cased runs of
    two or more word characters, minus the English stop words, Snowball-stemmed."""
    import Stemmer
    from bm25s.stopwords import STOPWORDS_EN

    stem = Stemmer.Stemmer("english").stemWord
    stop = set(STOPWORDS_EN)
    return [stem(w) for w in re.findall(r"\b\w\w+\b", text.lower()) if w not in stop]


def direct_bm25(docs: list[str], query: str, k1: float = 1.5, b: float = 0.75) -> np.ndarray:
    """BM25 by its formula (Lucene's idf, Robertson's term frequency) over term counts."""
    tokens = [_words(d) for d in docs]
    n = len(docs)
    avgdl = sum(len(t) for t in tokens) / n
    df = Counter(w for t in tokens for w in set(t))
    out = np.zeros(n)
    for i, t in enumerate(tokens):
        tf = Counter(t)
        for w in _words(query):
            if tf[w]:
                idf = math.log(1 + (n - df[w] + 0.5) / (df[w] + 0.5))
                out[i] += idf * tf[w] / (tf[w] + k1 * (1 - b + b * len(t) / avgdl))
    return out


@pytest.mark.parametrize("k1,b", [(1.5, 0.75), (0.9, 0.4)])
def test_scores_equal_the_formula_over_term_counts(corpus, queries, k1: float, b: float) -> None:
    index = Bm25Index.build(iter(corpus), Bm25Settings(k1=k1, b=b))
    texts = [text for _, text in corpus]
    for query in queries:
        expected = direct_bm25(texts, query, k1, b)
        assert expected.max() > 0  # every slice query shares words with its judged documents
        np.testing.assert_allclose(index.scores(query), expected, rtol=1e-5, atol=1e-6)
        # search returns the same scores, best first, and only documents sharing a word
        hits = index.search([query], 10)[0]
        order = np.argsort(-expected, kind="stable")[: len(hits)]
        np.testing.assert_allclose([s for _, s in hits], expected[order], rtol=1e-5)
        assert all(s > 0 for _, s in hits)


def test_stemming_and_stop_words_are_settings(corpus) -> None:
    stemmed = Bm25Index.build(iter(corpus))
    plain = Bm25Index.build(iter(corpus), Bm25Settings(stemmer="", stopwords=""))
    # "lesions" matches "lesion" only through the stemmer; "the" scores only without stop words
    assert (stemmed.scores("lesions") > 0).sum() > (plain.scores("lesions") > 0).sum()
    assert stemmed.scores("the").max() == 0 and plain.scores("the").max() > 0


def test_saved_index_loads_with_bm25s_alone(corpus, queries, tmp_path: Path) -> None:
    import bm25s
    import Stemmer

    index = Bm25Index.build(iter(corpus))
    folder = index.save(tmp_path / "bm25")
    ours = index.search(queries, 5)
    assert Bm25Index.load(folder).search(queries, 5) == ours

    # What docs/hybrid.md tells a user to do, without ragtune.
    retriever = bm25s.BM25.load(str(folder), load_corpus=True)
    tokenizer = bm25s.tokenization.Tokenizer(stemmer=Stemmer.Stemmer("english"), stopwords=[])
    tokenizer.load_vocab(str(folder))
    tokenizer.load_stopwords(str(folder))
    ids = tokenizer.tokenize(queries, update_vocab=False, return_as="ids")
    docs, scores = retriever.retrieve(ids, k=5)
    theirs = [
        [(d["id"], float(s)) for d, s in zip(row_d, row_s, strict=True) if s > 0]
        for row_d, row_s in zip(docs, scores, strict=True)
    ]
    assert theirs == ours


def test_a_missing_or_damaged_index_names_the_folder(corpus, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no BM25 index"):
        Bm25Index.load(tmp_path / "nothing")
    folder = Bm25Index.build(iter(corpus)).save(tmp_path / "bm25")
    (folder / "vocab.index.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot be read") as err:
        Bm25Index.load(folder)
    assert str(folder) in str(err.value.where)


def test_an_empty_corpus_is_refused() -> None:
    with pytest.raises(InputError, match="no documents"):
        Bm25Index.build(iter([]))
