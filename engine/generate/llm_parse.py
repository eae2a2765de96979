"""Strict reading of LLM replies: JSON extraction and repair, reply schemas, rows from replies.

Models wrap JSON in code fences, greet the user first, or add a closing remark;
those are repaired here. A reply that still is not the expected shape raises
``MalformedReply`` so the caller retries it (and finally records the reason).
"""

from __future__ import annotations

import json
import re
from typing import Any

from engine.config.llm import LlmConfig
from engine.core.records import Chunk
from engine.generate.rows import GeneratedRow

STYLES = ("question", "keyword", "paraphrase")


class MalformedReply(ValueError):
    """The reply is not the JSON asked for; the message says what is wrong."""


_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.S)


def extract_json(text: str) -> Any:
    """The first JSON object in ``text``, after stripping fences, preambles and trailing remarks."""
    if text is None:
        raise MalformedReply("empty reply")
    text = text.strip().lstrip("\ufeff")
    if not text:
        raise MalformedReply("empty reply")
    candidates = [text]
    candidates += [m.group(1).strip() for m in _FENCE.finditer(text)]
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            pass
    decoder = json.JSONDecoder()
    for start in [i for i, ch in enumerate(text) if ch in "{["][:50]:
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(value, (dict, list)):
            return value
    raise MalformedReply(f"no JSON object in reply ({_snippet(text)})")


def _snippet(text: str, n: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= n else flat[:n] + "…"


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def queries_schema(cfg: LlmConfig, with_answers: bool) -> dict[str, Any]:
    """A strict JSON schema (OpenAI structured-output rules: every key required, no extras)."""
    item_props: dict[str, Any] = {
        "style": {"type": "string", "enum": list(STYLES)},
        "query": {"type": "string"},
    }
    if with_answers:
        item_props["answer"] = {"type": "string"}
    props: dict[str, Any] = {
        "queries": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": item_props,
                "required": list(item_props),
                "additionalProperties": False,
            },
        }
    }
    if "hard_negative_query" in cfg.tasks:
        props["hard_negative_query"] = {"type": "string"}
    if "reranking_passages" in cfg.tasks:
        props["positive_passage"] = {"type": "string"}
        props["negative_passage"] = {"type": "string"}
    return {
        "type": "object",
        "properties": props,
        "required": list(props),
        "additionalProperties": False,
    }


def list_schema(key: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {key: {"type": "array", "items": {"type": "string"}}},
        "required": [key],
        "additionalProperties": False,
    }


def rows_from_reply(
    data: Any, chunk: Chunk, cfg: LlmConfig, with_answers: bool
) -> list[GeneratedRow]:
    """Rows for one chunk; raises ``MalformedReply`` when the shape is wrong or nothing usable."""
    if isinstance(data, list):
        data = {"queries": data}
    if not isinstance(data, dict):
        raise MalformedReply("reply is not a JSON object")
    items = data.get("queries")
    if not isinstance(items, list) or not items:
        raise MalformedReply('reply has no "queries" list')
    hard = _text(data.get("hard_negative_query")) if "hard_negative_query" in cfg.tasks else ""
    pos = _text(data.get("positive_passage")) if "reranking_passages" in cfg.tasks else ""
    neg = _text(data.get("negative_passage")) if "reranking_passages" in cfg.tasks else ""
    rows = []
    for item in items:
        if isinstance(item, str):
            item = {"query": item}
        if not isinstance(item, dict):
            continue
        query = _text(item.get("query") or item.get("text") or item.get("question"))
        if not query:
            continue
        style = _text(item.get("style")).lower()
        rows.append(
            GeneratedRow(
                chunk_id=chunk.chunk_id,
                question=query,
                context=chunk.text,
                source=chunk.source,
                kind=style if style in STYLES else "question",
                response=_text(item.get("answer")) if with_answers else "",
                positive_retrieval=query,
                negative_retrieval=hard,
                positive_reranking=pos,
                negative_reranking=neg,
            )
        )
    if not rows:
        raise MalformedReply("reply has no usable query")
    return rows


def strings_from_reply(data: Any, key: str, expected: int | None = None) -> list[str]:
    """A list of strings under ``key`` (or the reply itself when it is a bare list)."""
    if isinstance(data, dict):
        data = data.get(key)
    if not isinstance(data, list):
        raise MalformedReply(f'reply has no "{key}" list')
    out = [_text(x) for x in data]
    if expected is not None and len(out) != expected:
        raise MalformedReply(f'expected {expected} "{key}", got {len(out)}')
    return out
