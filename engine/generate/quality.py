"""The quality gate for generated rows: clean-up, then filters that each report what they dropped.

LLM queries come with preambles ("Here are three questions…"), numbering and
quotes; some are empty, truncated, rambling, copied straight out of the
passage, or the same question twice. Each of those hurts contrastive training
(a duplicate anchor is a false negative in the batch), so they are cleaned or
dropped here, on any list of ``GeneratedRow``, whichever generator made it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ragtune.engine.config.llm import LlmConfig
from ragtune.engine.core.events import Emitter
from ragtune.engine.generate.rows import GeneratedRow

FILTERS = (
    "empty",
    "too_short",
    "too_long",
    "copied_from_chunk",
    "exact_duplicate",
    "near_duplicate",
    "round_trip",
)
COPY_MIN_WORDS = 5

_PREAMBLE = re.compile(
    r"^\s*(?:sure|okay|ok|certainly|of course|absolutely|great)?[!,.\s]*"
    r"(?:here(?:'s| is| are)|below (?:is|are)|the following|i (?:have|'ve) (?:written|generated))"
    r"[^:\n]*:\s*",
    re.I,
)
_CHATTER = re.compile(
    r"^\s*(?:sure|okay|certainly|of course|absolutely)[!.,]?\s*$|^\s*(?:here(?:'s| is| are)|below)\b.*:\s*$",
    re.I,
)
_NUMBERING = re.compile(
    r"^\s*(?:\(?\d{1,2}[.):]|[-*•]|#+|(?:q|query|question|search|keyword|paraphrase)\s*\d*\s*[:.)-])\s+",
    re.I,
)
_QUOTES = "\"'`“”‘’«»"
_WORD = re.compile(r"\w+", re.U)


def clean_query(text: str) -> str:
    """Strip chat preambles, list numbering, markdown emphasis and wrapping quotes."""
    if not text:
        return ""
    lines = [ln for ln in str(text).strip().splitlines() if ln.strip()]
    lines = [ln for ln in lines if not _CHATTER.match(ln)]
    if not lines:
        return ""
    out = _PREAMBLE.sub("", lines[0].replace("**", "").replace("__", "")).strip()
    for _ in range(3):
        before = out
        out = _NUMBERING.sub("", out).strip()
        out = out.strip("*_").strip()
        if len(out) >= 2 and out[0] in _QUOTES and out[-1] in _QUOTES:
            out = out[1:-1].strip()
        if out == before:
            break
    return " ".join(out.split())


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(_WORD.findall(text))


@dataclass
class GateSettings:
    min_words: int = 2
    max_words: int = 48
    drop_copied: bool = True
    dedup_threshold: float = 0.95
    round_trip_top_k: int = 0

    @classmethod
    def from_llm(cls, cfg: LlmConfig) -> GateSettings:
        return cls(
            min_words=cfg.min_query_words,
            max_words=cfg.max_query_words,
            drop_copied=cfg.drop_copied,
            dedup_threshold=cfg.dedup_threshold,
            round_trip_top_k=cfg.round_trip_top_k,
        )

    @property
    def needs_embedder(self) -> bool:
        return 0.0 < self.dedup_threshold < 1.0 or self.round_trip_top_k > 0


@dataclass
class GateResult:
    rows: list[GeneratedRow]
    dropped_by_filter: dict[str, int] = field(default_factory=dict)
    cleaned: int = 0

    @property
    def dropped(self) -> int:
        return sum(self.dropped_by_filter.values())


def _is_copied(query: str, passage: str) -> bool:
    q = normalise(query)
    return len(q.split()) >= COPY_MIN_WORDS and f" {q} " in f" {normalise(passage)} "


def _encode(embedder: Any, texts: list[str]) -> Any:
    import numpy as np

    vecs = embedder.encode(
        texts,
        batch_size=64,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.asarray(vecs, dtype=np.float32)


def near_duplicate_mask(vectors: Any, threshold: float, block: int = 512) -> list[bool]:
    """Greedy in order: keep a query unless a kept one is closer than ``threshold`` (cosine)."""
    import numpy as np

    n = len(vectors)
    keep = [False] * n
    kept = np.zeros((0, vectors.shape[1] if n else 0), dtype=np.float32)
    for start in range(0, n, block):
        part = vectors[start : start + block]
        prior = (part @ kept.T).max(axis=1) if len(kept) else np.full(len(part), -1.0)
        inner = part @ part.T
        chosen: list[int] = []
        for i in range(len(part)):
            if prior[i] > threshold or (chosen and inner[i, chosen].max() > threshold):
                continue
            chosen.append(i)
            keep[start + i] = True
        kept = np.vstack([kept, part[chosen]])
    return keep


def round_trip_mask(
    query_vecs: Any, passage_vecs: Any, own: list[int], top_k: int, block: int = 1024
) -> list[bool]:
    """True where the query's own passage is among its ``top_k`` nearest passages."""
    import numpy as np

    keep: list[bool] = []
    k = min(top_k, len(passage_vecs))
    for start in range(0, len(query_vecs), block):
        scores = query_vecs[start : start + block] @ passage_vecs.T
        own_scores = scores[np.arange(len(scores)), own[start : start + block]]
        better = (scores > own_scores[:, None]).sum(axis=1)
        keep.extend(bool(b < k) for b in better)
    return keep


def quality_gate(
    rows: Sequence[GeneratedRow],
    settings: GateSettings | None = None,
    *,
    embedder: Any = None,
    passages: dict[str, str] | None = None,
    events: Emitter | None = None,
) -> GateResult:
    """Clean and filter ``rows``; embedding filters run only when ``embedder`` is given.

    ``passages`` maps chunk ids to their text for the round-trip check (the
    rows' own ``context`` is used when it is missing).
    """
    settings = settings or GateSettings()
    dropped = dict.fromkeys(FILTERS, 0)
    cleaned = 0
    current: list[GeneratedRow] = []
    for row in rows:
        text = clean_query(row.question)
        if text != row.question:
            cleaned += 1
            row = replace(row, question=text, positive_retrieval=text)
        n_words = len(text.split())
        if not normalise(text):
            dropped["empty"] += 1
        elif n_words < settings.min_words:
            dropped["too_short"] += 1
        elif n_words > settings.max_words:
            dropped["too_long"] += 1
        elif settings.drop_copied and _is_copied(
            text, row.context or (passages or {}).get(row.chunk_id, "")
        ):
            dropped["copied_from_chunk"] += 1
        else:
            current.append(row)

    seen: set[str] = set()
    unique = []
    for row in current:
        norm = normalise(row.question)
        if norm in seen:
            dropped["exact_duplicate"] += 1
            continue
        seen.add(norm)
        unique.append(row)
    current = unique

    ran = ["empty", "too_short", "too_long", "copied_from_chunk", "exact_duplicate"]
    if embedder is not None and current and 0.0 < settings.dedup_threshold < 1.0:
        ran.append("near_duplicate")
        vecs = _encode(embedder, [r.question for r in current])
        mask = near_duplicate_mask(vecs, settings.dedup_threshold)
        dropped["near_duplicate"] = mask.count(False)
        current = [r for r, k in zip(current, mask, strict=True) if k]
    if embedder is not None and current and settings.round_trip_top_k > 0:
        ran.append("round_trip")
        texts = dict(passages or {})
        for r in current:
            texts.setdefault(r.chunk_id, r.context)
        ids = list(texts)
        index = {cid: i for i, cid in enumerate(ids)}
        pvecs = _encode(embedder, [texts[c] for c in ids])
        qvecs = _encode(embedder, [r.question for r in current])
        mask = round_trip_mask(
            qvecs, pvecs, [index[r.chunk_id] for r in current], settings.round_trip_top_k
        )
        dropped["round_trip"] = mask.count(False)
        current = [r for r, k in zip(current, mask, strict=True) if k]

    result = GateResult(current, {name: dropped[name] for name in ran}, cleaned)
    if events is not None:
        # One line: what each filter that dropped anything dropped, out of how many.
        by_filter = ", ".join(
            f"{name.replace('_', ' ')} {dropped[name]}" for name in ran if dropped[name]
        )
        events.info(
            f"quality gate kept {len(current)} of {len(rows)} rows"
            + (f" (dropped: {by_filter})" if by_filter else "")
        )
        if cleaned:
            events.info(f"quality gate: cleaned preambles/numbering/quotes in {cleaned} queries")
    return result
