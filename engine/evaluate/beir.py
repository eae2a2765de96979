"""Loading labelled retrieval sets in the BEIR layout (corpus.jsonl, queries.jsonl, qrels.tsv)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragtune.engine.core.errors import InputError
from ragtune.engine.core.events import Emitter

logger = logging.getLogger(__name__)


@dataclass
class IRData:
    """Queries, documents and judgments keyed by id, the shape sentence-transformers' IR evaluator takes.

    ``corpus`` holds the text that is embedded (title and body joined); ``titles`` keeps the
    titles apart so front ends can show a short label for a hit.
    """

    queries: dict[str, str]
    corpus: dict[str, str]
    relevant: dict[str, set[str]]
    titles: dict[str, str] = field(default_factory=dict)


def document_text(title: str, text: str) -> str:
    """Title then body, as BEIR and sentence-transformers embed a titled document."""
    return f"{title} {text}".strip() if title else text


def _require(path: Path, role: str) -> Path:
    if not path.is_file():
        raise InputError(
            f"{role} file not found",
            where=str(path),
            hint=f"a BEIR-style folder needs {path.name} ({role}); check the folder or file name",
        )
    return path


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"not valid JSON ({exc.msg})",
                    where=f"{path}:{lineno}",
                    hint="each line must be one JSON object",
                ) from None
            if not isinstance(row, dict):
                raise InputError(
                    f"expected a JSON object, got {type(row).__name__}",
                    where=f"{path}:{lineno}",
                    hint='each line must look like {"_id": "...", "text": "..."}',
                )
            yield lineno, row


def _field(row: dict[str, Any], key: str, where: str, *, required: bool = True) -> str:
    value = row.get(key)
    if value is None:
        if required:
            raise InputError(
                f"missing field {key!r}", where=where, hint='lines need "_id" and "text" fields'
            )
        return ""
    if isinstance(value, (dict, list)):
        raise InputError(f"field {key!r} must be a string, got {type(value).__name__}", where=where)
    return str(value)


def _read_texts(path: Path, *, titled: bool) -> tuple[dict[str, str], dict[str, str]]:
    texts: dict[str, str] = {}
    titles: dict[str, str] = {}
    for lineno, row in _jsonl(path):
        where = f"{path}:{lineno}"
        doc_id = _field(row, "_id", where)
        if doc_id in texts:
            raise InputError(
                f"duplicate _id {doc_id!r}", where=where, hint="every _id must be unique"
            )
        text = _field(row, "text", where)
        title = _field(row, "title", where, required=False) if titled else ""
        if title:
            titles[doc_id] = title
        texts[doc_id] = document_text(title, text)
    return texts, titles


def _read_qrels(path: Path) -> Iterator[tuple[int, str, str, float]]:
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            parts = line.rstrip("\r\n").split("\t")
            where = f"{path}:{lineno}"
            if len(parts) != 3:
                raise InputError(
                    f"expected 3 tab-separated columns, got {len(parts)}",
                    where=where,
                    hint="qrels lines are: query-id <TAB> corpus-id <TAB> score",
                )
            query_id, doc_id, raw_score = (p.strip() for p in parts)
            try:
                score = float(raw_score)
            except ValueError:
                if lineno == 1:  # the header line
                    continue
                raise InputError(
                    f"score {raw_score!r} is not a number",
                    where=where,
                    hint="the third column is the relevance grade (0 = not relevant)",
                ) from None
            yield lineno, query_id, doc_id, score


def load_beir(
    folder: Path,
    qrels: str = "qrels.tsv",
    queries: str = "queries.jsonl",
    *,
    corpus: str = "corpus.jsonl",
    events: Emitter | None = None,
) -> IRData:
    """Read a BEIR-layout folder; only judged queries are kept, as IR metrics need a judgment.

    Judgments naming a document missing from the corpus are skipped with one warning, so a
    corpus trimmed after judging still loads; a score above 0 counts as relevant.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(
            "benchmark folder not found",
            where=str(folder),
            hint="point to a folder holding corpus.jsonl, queries.jsonl and qrels.tsv",
        )
    corpus_path = _require(folder / corpus, "corpus")
    queries_path = _require(folder / queries, "queries")
    qrels_path = _require(folder / qrels, "relevance judgments")

    docs, titles = _read_texts(corpus_path, titled=True)
    if not docs:
        raise InputError("the corpus is empty", where=str(corpus_path))
    all_queries, _ = _read_texts(queries_path, titled=False)

    relevant: dict[str, set[str]] = {}
    missing_docs: list[tuple[int, str]] = []
    for lineno, query_id, doc_id, score in _read_qrels(qrels_path):
        if score <= 0:
            continue
        if doc_id not in docs:
            missing_docs.append((lineno, doc_id))
            continue
        relevant.setdefault(query_id, set()).add(doc_id)

    if missing_docs:
        lineno, doc_id = missing_docs[0]
        text = (
            f"skipped {len(missing_docs)} judgment(s) naming documents not in "
            f"{corpus_path.name} (first: {doc_id!r})"
        )
        where = f"{qrels_path}:{lineno}"
        if events is not None:
            events.warning(
                text, where=where, hint="check that qrels and corpus come from the same set"
            )
        else:
            logger.warning("%s: %s", where, text)

    kept = {qid: text for qid, text in all_queries.items() if relevant.get(qid)}
    if not kept:
        raise InputError(
            "no query has a relevant document in the corpus",
            where=str(qrels_path),
            hint=f"query ids in {qrels_path.name} must match _id values in {queries_path.name}",
        )
    return IRData(
        queries=kept,
        corpus=docs,
        relevant={qid: relevant[qid] for qid in kept},
        titles=titles,
    )
