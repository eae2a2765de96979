"""Sample review decisions, kept in the workspace and honoured by every full run.

The wizard's Samples step (or a user with an editor) marks sample rows
accepted, rejected or edited. The decisions live in ``<workspace>/review.json``
so ``ragtune run`` honours them exactly as the wizard does:

- a rejected row is never written to the rows the training sets are built from;
- an edited row replaces the row it was edited from;
- accepted and edited rows are always kept (even when the generator's output
  for their chunk changed), and become few-shot examples in the LLM prompts.

Decisions are applied by the generators as one extra record per changed chunk
(``generator`` suffixed ``+review``), so ``generated.jsonl`` stays append-only
and the summary keys point data preparation at the reviewed rows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ragtune.engine.core.workspace import Workspace
from ragtune.engine.generate.rows import (
    CallRecord,
    GeneratedRow,
    RecordWriter,
    latest_records,
    make_key,
)

REVIEW_FILE = "review.json"
STATUSES = ("new", "accepted", "rejected", "edited")
DECIDED = ("accepted", "rejected", "edited")
KEPT = ("accepted", "edited")
FEW_SHOT_MAX = 4


def review_path(ws: Workspace) -> Path:
    return ws.root / REVIEW_FILE


def _norm(text: str) -> str:
    return re.sub(r"[^\w]+", " ", str(text).lower()).strip()


@dataclass
class ReviewEntry:
    """One reviewed sample row: the question it had when sampled, the decision, the row as kept."""

    chunk_id: str
    question: str
    status: str = "new"
    row: GeneratedRow = field(default_factory=lambda: GeneratedRow(chunk_id="", question=""))

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"review status {self.status!r} is not one of {', '.join(STATUSES)}")

    @classmethod
    def for_row(cls, row: GeneratedRow, status: str = "new") -> ReviewEntry:
        return cls(chunk_id=row.chunk_id, question=row.question, status=status, row=row)

    def matches(self, row: GeneratedRow) -> bool:
        """The same sampled row: same chunk and the question it was sampled with."""
        return row.chunk_id == self.chunk_id and _norm(row.question) == _norm(self.question)

    def to_dict(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk_id,
            "question": self.question,
            "status": self.status,
            "row": asdict(self.row),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReviewEntry:
        row = GeneratedRow.from_dict(data.get("row") or {"chunk_id": "", "question": ""})
        return cls(
            chunk_id=str(data.get("chunk_id") or row.chunk_id),
            question=str(data.get("question") or row.question),
            status=str(data.get("status", "new")),
            row=row,
        )


def load_review(ws: Workspace) -> list[ReviewEntry]:
    """The saved decisions; a missing or unreadable file means none (the run goes on unreviewed)."""
    path = review_path(ws)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return []
    items = data.get("rows", []) if isinstance(data, dict) else []
    out = []
    for item in items:
        try:
            out.append(ReviewEntry.from_dict(item))
        except (TypeError, ValueError):
            continue
    return out


def review_digest(entries: Sequence[ReviewEntry]) -> str:
    """What the decisions change in a run; undecided rows change nothing."""
    decided = sorted(
        json.dumps(e.to_dict(), sort_keys=True) for e in entries if e.status in DECIDED
    )
    return make_key("review", decided) if decided else ""


def save_review(ws: Workspace, entries: Sequence[ReviewEntry]) -> Path:
    """Write the decisions; when they change, the generate stage is marked to run again.

    The stage fingerprints do not read this file, so a finished generate stage
    would otherwise be skipped and the new decisions ignored. Re-running it is
    cheap: every finished call is reused from ``generated.jsonl``.
    """
    before = review_digest(load_review(ws))
    path = review_path(ws)
    tmp = path.with_suffix(".tmp")
    payload = {"version": 1, "rows": [e.to_dict() for e in entries]}
    tmp.write_text(json.dumps(payload, indent=1, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)
    if review_digest(entries) != before and ws.stage_state("generate") is not None:
        ws.clear("generate")
    return path


def with_decisions(rows: Iterable[GeneratedRow], entries: Sequence[ReviewEntry]) -> list[str]:
    """The saved status of each freshly sampled row ("new" for rows never reviewed)."""
    statuses = []
    for row in rows:
        match = next((e for e in entries if e.matches(row)), None)
        statuses.append(match.status if match is not None else "new")
    return statuses


def apply_to_rows(
    rows: Sequence[GeneratedRow], entries: Sequence[ReviewEntry]
) -> list[GeneratedRow]:
    """One chunk's rows with its decisions applied: rejected and edited-from rows out, kept rows in."""
    out = [
        r
        for r in rows
        if not any(e.status in ("rejected", "edited") and e.matches(r) for e in entries)
    ]
    present = {_norm(r.question) for r in out}
    for e in entries:
        if e.status in KEPT and _norm(e.row.question) not in present:
            out.append(e.row)
            present.add(_norm(e.row.question))
    return out


def apply_review(ws: Workspace, keys: Sequence[str]) -> list[str]:
    """The summary keys with reviewed chunks pointing at a ``+review`` record of their kept rows."""
    entries = [e for e in load_review(ws) if e.status in DECIDED]
    if not entries:
        return list(keys)
    by_chunk: dict[str, list[ReviewEntry]] = {}
    for e in entries:
        by_chunk.setdefault(e.chunk_id, []).append(e)
    records = latest_records(ws.generated_path)
    out: list[str] = []
    done: set[str] = set()
    new: list[CallRecord] = []
    for key in keys:
        rec = records.get(key)
        if rec is None or rec.chunk_id not in by_chunk or rec.chunk_id in done:
            out.append(key)
            continue
        done.add(rec.chunk_id)
        decisions = by_chunk[rec.chunk_id]
        rows = apply_to_rows(rec.rows if rec.status == "ok" else [], decisions)
        if rec.status == "ok" and rows == rec.rows:
            out.append(key)
            continue
        review_key = make_key("review", key, [e.to_dict() for e in decisions])
        out.append(review_key)
        if review_key not in records:
            new.append(_record(review_key, rec.chunk_id, rows, rec.generator, rec.model))
    for chunk_id, decisions in by_chunk.items():
        if chunk_id in done:
            continue
        kept = apply_to_rows([], decisions)
        if kept:
            review_key = make_key("review-only", chunk_id, [e.to_dict() for e in decisions])
            out.append(review_key)
            if review_key not in records:
                new.append(_record(review_key, chunk_id, kept, "sample", ""))
    if new:
        with RecordWriter(ws.generated_path) as writer:
            for rec in new:
                writer.write(rec)
    return out


def _record(key: str, chunk_id: str, rows: list[GeneratedRow], generator: str, model: str):
    return CallRecord(
        key=key,
        chunk_id=chunk_id,
        generator=f"{generator.split('+')[0]}+review",
        model=model,
        rows=list(rows),
    )


def few_shot_examples(ws: Workspace, n: int = FEW_SHOT_MAX) -> list[GeneratedRow]:
    """Rows the user kept, edited ones first (they show what the user wanted most clearly)."""
    entries = load_review(ws)
    edited = [e.row for e in entries if e.status == "edited"]
    accepted = [e.row for e in entries if e.status == "accepted"]
    return (edited + accepted)[:n]
