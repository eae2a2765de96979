"""Reading LLM replies: legitimate wrapping is repaired, a cut-off or broken reply is a parse failure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from llm_server import FakeLlmServer, default_reply, llm_run_config, make_chunks

from ragtune.engine.config.llm import LlmConfig
from ragtune.engine.core.events import Emitter
from ragtune.engine.core.records import Chunk
from ragtune.engine.core.workspace import Workspace
from ragtune.engine.generate.llm import run_llm_generation
from ragtune.engine.generate.llm_parse import MalformedReply, extract_json, rows_from_reply
from ragtune.engine.generate.rows import iter_records

# A reply the way models really write one: an extra field *before* the one asked for,
# so a parser that falls back to "the first inner array" picks the wrong one.
REPLY = {
    "questions": ["Where are forklift batteries charged?", "Who signs off a charge log?"],
    "queries": [
        {"style": "question", "query": "where do forklift batteries get charged"},
        {"style": "keyword", "query": "forklift battery charging bay"},
    ],
    "hard_negative_query": "where are forklifts parked on holidays",
}
FULL = json.dumps(REPLY)


def cuts(text: str) -> list[str]:
    """The reply cut off at several points, as a max_tokens limit or a dropped stream does."""
    marks = [text.index('"queries"') + 14, len(text) // 2, len(text) - 1, len(text) - 30]
    return [text[:m] for m in marks]


@pytest.mark.parametrize(
    "wrapped",
    [
        FULL,
        f"```json\n{FULL}\n```",
        f"```\n{FULL}\n```",
        f"Sure! Here are the queries you asked for:\n\n{FULL}\nHope this helps.",
        f"Here:\n```json\n{FULL}\n```\nLet me know [if] you need more.",
        f"\ufeff{FULL}",
        f"[1] The passage is about batteries. {FULL}",
    ],
)
def test_wrapping_models_add_is_repaired(wrapped: str) -> None:
    assert extract_json(wrapped) == REPLY


def test_trailing_commas_are_repaired_without_touching_strings() -> None:
    text = '{"queries": [{"query": "a, ]b",},],}'
    assert extract_json(text) == {"queries": [{"query": "a, ]b"}]}


@pytest.mark.parametrize("cut", cuts(FULL))
def test_truncated_reply_is_a_parse_failure_not_the_wrong_field(cut: str) -> None:
    with pytest.raises(MalformedReply, match="incomplete"):
        extract_json(cut)
    with pytest.raises(MalformedReply, match="incomplete"):
        extract_json(f"Sure, here you go:\n{cut}")
    with pytest.raises(MalformedReply, match="incomplete"):
        extract_json(f"```json\n{cut}")


def test_truncated_bare_list_is_a_parse_failure() -> None:
    with pytest.raises(MalformedReply, match="incomplete"):
        extract_json('[{"query": "forklift charging"}, {"query": "battery ba')


def test_broken_json_inside_is_a_parse_failure_not_an_inner_array() -> None:
    with pytest.raises(MalformedReply, match="invalid"):
        extract_json('{"questions": ["a", "b"], "queries": [oops]}')


def test_prose_without_json_is_a_parse_failure() -> None:
    for text in ["I cannot help with that.", "", "   ", "See [note] and {that}."]:
        with pytest.raises(MalformedReply):
            extract_json(text)


def test_rows_come_from_the_queries_field_only() -> None:
    chunk = Chunk(chunk_id="c1", doc_id="d", text="Forklift batteries.", source="s.md")
    rows = rows_from_reply(extract_json(FULL), chunk, LlmConfig(model="openai/x"), False)
    assert [r.question for r in rows] == [q["query"] for q in REPLY["queries"]]


def _truncating(limit_share: float):
    """A server reply function that cuts the real reply, like a model hitting max_tokens."""

    def reply(body: dict[str, Any]) -> str:
        content = default_reply(body)
        data = json.loads(content)
        if "queries" not in data:
            return content
        data = {"questions": [q["query"] for q in data["queries"]], **data}
        text = json.dumps(data)
        return text[: int(len(text) * limit_share)]

    return reply


def test_truncated_replies_over_http_are_retried_and_counted_as_bad_json(tmp_path: Path) -> None:
    """Through litellm and a real loopback server: no row is taken from a cut-off reply."""
    chunks = make_chunks(3)
    ws = Workspace.create(tmp_path)
    with FakeLlmServer(reply=_truncating(0.6)) as server:
        cfg = llm_run_config(server.url, max_retries=1)
        summary = run_llm_generation(cfg, ws, chunks, Emitter(lambda e: None))
        assert len(server.requests) == 6  # each chunk tried twice: the cut reply was retried
    assert summary.rows == 0 and summary.failed == 3
    assert summary.failures_by_reason == {"malformed_json": 3}
    failed = [r for r in iter_records(ws.generated_path) if r.status == "failed"]
    assert failed and all("incomplete" in r.error for r in failed)
