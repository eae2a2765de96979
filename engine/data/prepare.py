"""Generated rows → training pairs and a held-out evaluation set, split by chunk."""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ragtune.engine.config.data import DataConfig
from ragtune.engine.core.errors import InputError
from ragtune.engine.core.events import Emitter
from ragtune.engine.core.payloads import PrepareSummary
from ragtune.engine.core.records import Chunk
from ragtune.engine.core.workspace import Workspace
from ragtune.engine.generate.rows import GeneratedRow

if TYPE_CHECKING:
    from datasets import Dataset

_SPACE = re.compile(r"\s+")


def normalize_text(text: Any) -> str:
    if not isinstance(text, str):
        return ""
    return _SPACE.sub(" ", text).strip()


def _query_key(text: str) -> str:
    return re.sub(r"[^\w]+", " ", text.lower()).strip()


@dataclass
class Prepared:
    """What the trainers and evaluators read: train pairs plus an IR eval set over all chunks."""

    train: Dataset
    eval_queries: dict[str, str]
    eval_relevant: dict[str, set[str]]
    corpus: dict[str, str]
    eval_chunks: set[str] = field(default_factory=set)

    def ir_data(self) -> Any:
        from ragtune.engine.evaluate.beir import IRData

        return IRData(
            queries=self.eval_queries, corpus=self.corpus, relevant=self.eval_relevant, titles={}
        )


def split_chunks(chunk_ids: Sequence[str], fraction: float, seed: int) -> set[str]:
    """Held-out chunks; with a fraction > 0 at least one chunk, and never all of them."""
    ids = sorted(set(chunk_ids))
    if fraction <= 0 or len(ids) < 2:
        return set()
    n = min(len(ids) - 1, max(1, math.ceil(len(ids) * fraction)))
    return set(random.Random(seed).sample(ids, n))


def run_prepare(
    cfg: DataConfig,
    ws: Workspace,
    rows: Sequence[GeneratedRow],
    chunks: Sequence[Chunk],
    events: Emitter,
) -> dict[str, Any]:
    """Clean, dedup and split rows; writes ``dataset/`` (train, eval) and ``dataset/corpus.jsonl``.

    Queries are deduplicated per normalised text across the whole set, so the same
    pseudo-query cannot sit in train and eval at once.
    """
    import datasets
    from datasets import Dataset, DatasetDict

    datasets.disable_progress_bars()
    chunk_text = {c.chunk_id: c.text for c in chunks}
    dropped = {"empty": 0, "too_short": 0, "too_long": 0, "duplicate_query": 0, "unknown_chunk": 0}
    seen: set[str] = set()
    clean: list[GeneratedRow] = []
    for row in rows:
        query = normalize_text(row.question)
        positive = normalize_text(row.training_positive) or chunk_text.get(row.chunk_id, "")
        if row.chunk_id not in chunk_text:
            dropped["unknown_chunk"] += 1
            continue
        if not query or not positive:
            dropped["empty"] += 1
            continue
        if len(query) < cfg.min_query_chars:
            dropped["too_short"] += 1
            continue
        if len(query) > cfg.max_query_chars:
            dropped["too_long"] += 1
            continue
        key = _query_key(query)
        if key in seen:
            dropped["duplicate_query"] += 1
            continue
        seen.add(key)
        row.question, row.positive = query, positive
        clean.append(row)
    if not clean:
        raise InputError(
            "no usable training rows after cleaning",
            where=str(ws.generated_path),
            hint="check the sources produced text (chunks.parquet) and the generator settings",
        )

    eval_chunks = split_chunks([r.chunk_id for r in clean], cfg.eval_fraction, cfg.seed)
    train_rows = [r for r in clean if r.chunk_id not in eval_chunks]
    eval_rows = [r for r in clean if r.chunk_id in eval_chunks]
    rng = random.Random(cfg.seed)
    rng.shuffle(eval_rows)
    eval_rows = eval_rows[: cfg.max_eval_queries]

    train = Dataset.from_dict(
        {
            "anchor": [r.question for r in train_rows],
            "positive": [r.positive for r in train_rows],
            "chunk_id": [r.chunk_id for r in train_rows],
            "kind": [r.kind for r in train_rows],
        }
    )
    evaluation = Dataset.from_dict(
        {
            "query_id": [f"q{i}" for i in range(len(eval_rows))],
            "query": [r.question for r in eval_rows],
            "chunk_id": [r.chunk_id for r in eval_rows],
            "kind": [r.kind for r in eval_rows],
        }
    )
    ws.dataset_dir.mkdir(parents=True, exist_ok=True)
    DatasetDict({"train": train, "eval": evaluation}).save_to_disk(str(ws.dataset_dir / "splits"))
    with (ws.dataset_dir / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for c in chunks:
            fh.write(json.dumps({"_id": c.chunk_id, "text": c.text}, ensure_ascii=False) + "\n")
    summary = PrepareSummary(
        rows_in=len(rows),
        train_pairs=len(train_rows),
        eval_queries=len(eval_rows),
        eval_chunks=len(eval_chunks),
        corpus=len(chunks),
        dropped={k: v for k, v in dropped.items() if v},
    )
    for name, count in dropped.items():
        if count:
            events.info(f"dropped {count} rows: {name.replace('_', ' ')}")
    return summary.to_dict()


def load_prepared(ws: Workspace) -> Prepared:
    from datasets import load_from_disk

    splits = ws.dataset_dir / "splits"
    if not splits.exists():
        raise InputError(
            "no prepared dataset in this workspace",
            where=str(ws.dataset_dir),
            hint="run the earlier stages first: ragtune run CONFIG --stages ingest,generate,prepare",
        )
    dd = load_from_disk(str(splits))
    corpus: dict[str, str] = {}
    with (ws.dataset_dir / "corpus.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            item = json.loads(line)
            corpus[item["_id"]] = item["text"]
    ev = dd["eval"]
    queries = dict(zip(ev["query_id"], ev["query"], strict=True))
    relevant = {qid: {cid} for qid, cid in zip(ev["query_id"], ev["chunk_id"], strict=True)}
    return Prepared(
        train=dd["train"],
        eval_queries=queries,
        eval_relevant=relevant,
        corpus=corpus,
        eval_chunks=set(ev["chunk_id"]),
    )
