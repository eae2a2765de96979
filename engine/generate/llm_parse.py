"""Strict reading of LLM replies: JSON extraction and repair, reply schemas, rows from replies.

Models wrap JSON in code fences, greet the user first, or add a closing remark;
those are repaired here. A reply that still is not the expected shape raises
``MalformedReply`` so the caller retries it (and finally records the reason).
"""

from __future__ import annotations

import json
import re
from typing import Any

from ragtune.engine.config.llm import LlmConfig
from ragtune.engine.core.records import Chunk
from ragtune.engine.generate.rows import GeneratedRow

STYLES = ("question", "keyword", "paraphrase")


class MalformedReply(ValueError):
    """The reply is not the JSON asked for; the message says what is wrong."""


_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.S)
# What may follow an opening bracket when it starts real JSON (not prose like "[see note]").
_JSON_AFTER_BRACE = re.compile(r'\{\s*("|\})')
_JSON_AFTER_BRACKET = re.compile(r'\[\s*([{\["\]\-0-9]|true|false|null)')
_TRAILING_COMMA = re.compile(r'("(?:[^"\\]|\\.)*")|,(\s*[}\]])', re.S)


def extract_json(text: str) -> Any:
    """The outermost JSON value in ``text``, after stripping fences, preambles and trailing remarks.

    Only the *outermost* value is taken: when the first JSON object or array in the
    reply does not decode (the reply was cut off, or is broken inside), this raises
    instead of falling back to an inner array, because an inner array is a different
    field (``"questions"`` where ``"queries"`` was asked for) and its rows would be
    wrong. Raising makes the caller retry the call and count it as malformed JSON.
    """
    if text is None:
        raise MalformedReply("empty reply")
    text = text.strip().lstrip("\ufeff")
    if not text:
        raise MalformedReply("empty reply")
    candidates = [text]
    candidates += [m.group(1).strip() for m in _FENCE.finditer(text)]
    for candidate in candidates:
        for attempt in (candidate, _drop_trailing_commas(candidate)):
            try:
                return json.loads(attempt)
            except json.JSONDecodeError:
                pass
    # Preamble and/or trailing prose: decode from the first opening bracket that starts JSON.
    decoder = json.JSONDecoder()
    repaired = _drop_trailing_commas(text)
    for start in [i for i, ch in enumerate(repaired) if ch in "{["][:50]:
        try:
            value, _ = decoder.raw_decode(repaired, start)
        except json.JSONDecodeError as exc:
            if _starts_json(repaired, start):
                raise _broken(repaired, start, exc) from None
            continue  # a bracket in prose, e.g. "[note]"
        if isinstance(value, dict) or (
            isinstance(value, list) and all(isinstance(x, (dict, list, str)) for x in value)
        ):
            return value
    raise MalformedReply(f"no JSON object in reply ({_snippet(text)})")


def _starts_json(text: str, start: int) -> bool:
    pattern = _JSON_AFTER_BRACE if text[start] == "{" else _JSON_AFTER_BRACKET
    return pattern.match(text, start) is not None


def _broken(text: str, start: int, exc: json.JSONDecodeError) -> MalformedReply:
    """Say whether the JSON was cut off (reached the end still open) or is invalid inside."""
    if _still_open_at_end(text, start):
        return MalformedReply(
            f"reply JSON is incomplete: cut off after {len(text) - start} characters "
            f"({_snippet(text[-40:], 40)}); the reply was probably truncated "
            "(raise generation.llm.max_tokens if this repeats)"
        )
    return MalformedReply(f"reply JSON is invalid at character {exc.pos}: {exc.msg}")


def _still_open_at_end(text: str, start: int) -> bool:
    """True when the brackets opened at ``start`` are not all closed by the end of ``text``."""
    depth, in_string, escaped = 0, False, False
    for ch in text[start:]:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return False
    return True


def _drop_trailing_commas(text: str) -> str:
    """Remove a comma before a closing bracket (``[1, 2,]``), a slip models make; strings kept."""
    return _TRAILING_COMMA.sub(lambda m: m.group(1) or m.group(2), text)


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
