"""The generated-row schema and the append-only ``generated.jsonl`` it lives in.

Each line is one finished unit of work (one LLM call, or one chunk for the
LLM-free generator)::

    {"key": str, "chunk_id": str, "status": "ok" | "failed", "generator": str,
     "model": str, "error": str, "usage": {...}, "rows": [GeneratedRow, ...]}

``key`` hashes everything that decides the output (chunk text, prompt, model,
parameters), so a restart skips keys already present with status ok and a
changed prompt regenerates only what it affects. The row fields follow the
Synthetic Data Generator's RAG columns, plus ``positive`` for generators whose
training passage differs from the chunk (the inverse cloze task removes the
query sentence from it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass
class GeneratedRow:
    chunk_id: str
    question: str
    context: str = ""
    source: str = ""
    kind: str = "question"
    positive: str = ""
    response: str = ""
    positive_retrieval: str = ""
    negative_retrieval: str = ""
    positive_reranking: str = ""
    negative_reranking: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratedRow:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @property
    def training_positive(self) -> str:
        return self.positive or self.context


def make_key(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


@dataclass
class CallRecord:
    key: str
    chunk_id: str
    status: str = "ok"
    generator: str = ""
    model: str = ""
    error: str = ""
    usage: dict[str, Any] = field(default_factory=dict)
    rows: list[GeneratedRow] = field(default_factory=list)

    def to_json(self) -> str:
        """Without ``asdict``'s deep copy, which dominated the cost of a record write."""
        data = dict(vars(self))
        data["rows"] = [vars(r) for r in self.rows]
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallRecord:
        rows = [GeneratedRow.from_dict(r) for r in data.get("rows", [])]
        names = {f.name for f in fields(cls)} - {"rows"}
        return cls(rows=rows, **{k: v for k, v in data.items() if k in names})


def iter_records(path: Path) -> Iterator[CallRecord]:
    """Every intact record; a line torn by a SIGKILL mid-write is skipped."""
    path = Path(path)
    if not path.exists():
        return
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break
            try:
                yield CallRecord.from_dict(json.loads(line))
            except (json.JSONDecodeError, TypeError):
                continue


def latest_records(path: Path, keys: Iterable[str] | None = None) -> dict[str, CallRecord]:
    """The last record per key, an ok one winning over any failure; optionally only ``keys``."""
    wanted = set(keys) if keys is not None else None
    out: dict[str, CallRecord] = {}
    for rec in iter_records(path):
        if wanted is not None and rec.key not in wanted:
            continue
        prev = out.get(rec.key)
        if prev is not None and prev.status == "ok" and rec.status != "ok":
            continue
        out[rec.key] = rec
    return out


def read_rows(path: Path, keys: Iterable[str] | None = None) -> list[GeneratedRow]:
    rows: list[GeneratedRow] = []
    for rec in latest_records(path, keys).values():
        if rec.status == "ok":
            rows.extend(rec.rows)
    return rows


def repair_tail(path: Path) -> None:
    """Cut a torn last line so appends start on a fresh line."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as fh:
        fh.seek(-1, 2)
        if fh.read(1) == b"\n":
            return
        fh.seek(0)
        data = fh.read()
        fh.truncate(data.rfind(b"\n") + 1)


class RecordWriter:
    """Appends one record per line and flushes it, so a kill loses at most the calls in flight."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        repair_tail(self.path)
        self._fh = self.path.open("a", encoding="utf-8")

    def write(self, record: CallRecord) -> None:
        self._fh.write(record.to_json() + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
