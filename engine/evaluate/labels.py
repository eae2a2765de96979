"""Labelled questions whose answers are quotes from the documents, mapped onto this run's chunks.

Chunk ids change with chunk size, so people label by quoting the sentence that answers
a question (``answers.tsv``: query-id, source-file, quote); each run finds the chunks
that hold the quote. A quote cut in two by a chunk boundary still matches both halves.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Sequence
from pathlib import Path

from ragtune.engine.core.errors import InputError
from ragtune.engine.core.events import Emitter
from ragtune.engine.core.records import Chunk
from ragtune.engine.evaluate.beir import IRData

_SPACE = re.compile(r"\s+")


def _norm(text: str) -> str:
    return _SPACE.sub(" ", text).strip().lower()


def is_quote_folder(folder: Path) -> bool:
    return (folder / "answers.tsv").exists() and not (folder / "corpus.jsonl").exists()


BEIR_FILES = ("corpus.jsonl", "queries.jsonl", "qrels.tsv")


def check_benchmark(folder: Path, where: str = "eval.benchmark") -> None:
    """A labelled folder the evaluate stage can read, checked before anything is trained:
    BEIR files, or questions labelled by quoting the answer (``InputError`` otherwise)."""
    if not folder.exists():
        raise InputError(f"no folder at {folder}", where=where, hint="check the path")
    if not folder.is_dir():
        raise InputError(
            f"{folder} is a file", where=where, hint="give the folder that holds queries.jsonl"
        )
    have = {p.name for p in folder.iterdir()}
    if {"queries.jsonl", "answers.tsv"} <= have or set(BEIR_FILES) <= have:
        return
    missing = ", ".join(f for f in BEIR_FILES if f not in have)
    raise InputError(
        f"{folder} is not a labelled folder (missing {missing})",
        where=where,
        hint="a BEIR folder holds corpus.jsonl, queries.jsonl and qrels.tsv; a quote-labelled "
        "one holds queries.jsonl and answers.tsv (query-id, source-file, quote)",
    )


def load_quote_labels(
    folder: Path, chunks: Sequence[Chunk], events: Emitter | None = None
) -> IRData:
    queries_path, answers_path = folder / "queries.jsonl", folder / "answers.tsv"
    queries: dict[str, str] = {}
    for n, line in enumerate(queries_path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            queries[str(item["_id"])] = str(item["text"])
        except (json.JSONDecodeError, KeyError) as exc:
            raise InputError(
                f"bad query line ({exc})",
                where=f"{queries_path}:{n}",
                hint='each line is {"_id": ..., "text": ...}',
            ) from None
    texts = [(c.chunk_id, c.source, _norm(c.text)) for c in chunks]
    relevant: dict[str, set[str]] = {}
    missing = 0
    with answers_path.open(encoding="utf-8", newline="") as fh:
        for n, row in enumerate(csv.DictReader(fh, delimiter="\t"), 2):
            qid, quote = row.get("query-id", ""), _norm(row.get("quote", ""))
            source = row.get("source-file", "") or ""
            if not qid or not quote:
                raise InputError(
                    "row needs query-id and quote",
                    where=f"{answers_path}:{n}",
                    hint="columns: query-id<TAB>source-file<TAB>quote",
                )
            words = quote.split()
            half = len(words) // 2
            pieces = [quote, " ".join(words[:half]), " ".join(words[half:])]
            hits = {
                cid
                for cid, src, text in texts
                if (not source or src == source or src.endswith("/" + source))
                and (pieces[0] in text or (half >= 4 and (pieces[1] in text or pieces[2] in text)))
            }
            if hits:
                relevant.setdefault(qid, set()).update(hits)
            else:
                missing += 1
                if events is not None:
                    events.warning(
                        f"quote for {qid} found in no chunk",
                        where=f"{answers_path}:{n}",
                        hint="check the quote is verbatim from the source file",
                    )
    queries = {q: t for q, t in queries.items() if q in relevant}
    if not queries:
        raise InputError(
            "no labelled question matched a chunk",
            where=str(folder),
            hint="answers.tsv quotes must be verbatim text of the source files",
        )
    corpus = {c.chunk_id: c.text for c in chunks}
    return IRData(queries=queries, corpus=corpus, relevant=relevant, titles={})
