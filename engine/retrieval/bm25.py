"""A BM25 index over a run's chunks, built with ``bm25s`` (PyStemmer stemming, a stop-word list).

Saved with ``bm25s``'s own files plus its tokenizer's vocabulary, so ``bm25s`` and
``PyStemmer`` alone load and query it (``docs/hybrid.md``). Documents are tokenized as a
stream and kept as int32 arrays, so 100k+ chunks never sit in memory as Python lists.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ragtune.engine.core.errors import InputError

if TYPE_CHECKING:
    import bm25s

SETTINGS_FILE = "ragtune_bm25.json"
# bm25s's save() writes these; a folder without them is not an index.
INDEX_FILES = ("data.csc.index.npy", "indices.csc.index.npy", "indptr.csc.index.npy")


@dataclass(frozen=True)
class Bm25Settings:
    """``stemmer`` is a PyStemmer algorithm ("english") or "" for none; ``stopwords`` a bm25s
    list name ("en") or "" for none; ``method`` bm25s's BM25 variant."""

    k1: float = 1.5
    b: float = 0.75
    stemmer: str = "english"
    stopwords: str = "en"
    method: str = "lucene"


def _tokenizer(settings: Bm25Settings) -> Any:
    import bm25s

    stemmer = None
    if settings.stemmer:
        import Stemmer

        stemmer = Stemmer.Stemmer(settings.stemmer)
    return bm25s.tokenization.Tokenizer(
        lower=True, stopwords=settings.stopwords or [], stemmer=stemmer
    )


class Bm25Index:
    """A ``bm25s.BM25`` with its tokenizer and the document id of each row."""

    def __init__(
        self, retriever: bm25s.BM25, tokenizer: Any, ids: list[str], settings: Bm25Settings
    ) -> None:
        self.retriever = retriever
        self.tokenizer = tokenizer
        self.ids = ids
        self.settings = settings

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def build(
        cls, docs: Iterable[tuple[str, str]], settings: Bm25Settings | None = None
    ) -> Bm25Index:
        """Index ``(doc id, text)`` pairs, read once as a stream."""
        import bm25s

        settings = settings or Bm25Settings()
        tokenizer = _tokenizer(settings)
        ids: list[str] = []

        def texts() -> Iterator[str]:
            for doc_id, text in docs:
                ids.append(str(doc_id))
                yield text

        token_ids = [
            np.asarray(t, dtype=np.int32)
            for t in tokenizer.streaming_tokenize(texts(), update_vocab=True)
        ]
        if not token_ids:
            raise InputError(
                "no documents to index for BM25", hint="ingest at least one chunk first"
            )
        retriever = bm25s.BM25(k1=settings.k1, b=settings.b, method=settings.method)
        retriever.index(
            bm25s.tokenization.Tokenized(ids=token_ids, vocab=tokenizer.get_vocab_dict()),
            show_progress=False,
        )
        return cls(retriever, tokenizer, ids, settings)

    def save(self, folder: Path) -> Path:
        """Into ``folder`` whole or not at all (written beside it, then renamed)."""
        folder = Path(folder)
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        self.retriever.save(str(tmp), corpus=[{"id": i} for i in self.ids], show_progress=False)
        self.tokenizer.save_vocab(str(tmp))
        self.tokenizer.save_stopwords(str(tmp))
        meta = {**asdict(self.settings), "documents": len(self.ids)}
        (tmp / SETTINGS_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        tmp.replace(folder)
        return folder

    @classmethod
    def load(cls, folder: Path) -> Bm25Index:
        import bm25s

        folder = Path(folder)
        meta_path = folder / SETTINGS_FILE
        if not meta_path.is_file() or not all((folder / f).is_file() for f in INDEX_FILES):
            raise InputError(
                f"no BM25 index in {folder}",
                where=str(folder),
                hint="run the index stage again: ragtune run CONFIG --stages index",
            )
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            settings = Bm25Settings(**{k: meta[k] for k in asdict(Bm25Settings())})
            retriever = bm25s.BM25.load(str(folder), load_corpus=True, show_progress=False)
            ids = [str(row["id"]) for row in retriever.corpus]
        except (ValueError, KeyError, OSError, TypeError) as exc:
            raise InputError(
                f"the BM25 index in {folder} cannot be read ({type(exc).__name__}: {exc})",
                where=str(folder),
                hint="delete that folder and run the index stage again",
            ) from None
        retriever.corpus = None  # ids are kept here; retrieve() returns row numbers
        tokenizer = _tokenizer(settings)
        tokenizer.load_vocab(str(folder))
        tokenizer.load_stopwords(str(folder))
        return cls(retriever, tokenizer, ids, settings)

    def _query_ids(self, queries: Sequence[str]) -> list[list[int]]:
        # update_vocab=False: words the corpus never had are dropped, not added.
        return [
            list(t) for t in self.tokenizer.streaming_tokenize(list(queries), update_vocab=False)
        ]

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for one query, in index order."""
        tokens = [
            t for t in self._query_ids([query])[0] if t in self.retriever.unique_token_ids_set
        ]
        if not tokens:
            return np.zeros(len(self.ids), dtype=np.float32)
        return self.retriever.get_scores(tokens)

    def search(self, queries: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
        """Best ``k`` documents per query as ``(doc id, score)``, best first; documents that
        share no term with the query (score 0) are not results."""
        if not queries:
            return []
        k = min(k, len(self.ids))
        docs, scores = self.retriever.retrieve(
            self._query_ids(queries), k=k, show_progress=False, sorted=True
        )
        return [
            [(self.ids[int(d)], float(s)) for d, s in zip(row_d, row_s, strict=True) if s > 0]
            for row_d, row_s in zip(docs, scores, strict=True)
        ]
