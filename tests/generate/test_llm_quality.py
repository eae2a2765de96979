"""The quality gate on generated rows, and the strict reply parsing in front of it."""

from __future__ import annotations

import json

import pytest

from ragtune.engine.config.llm import LlmConfig
from ragtune.engine.core.events import Emitter, Message
from ragtune.engine.core.records import Chunk
from ragtune.engine.generate.llm_parse import (
    MalformedReply,
    extract_json,
    queries_schema,
    rows_from_reply,
    strings_from_reply,
)
from ragtune.engine.generate.llm_prompts import Prompts, queries_message, render
from ragtune.engine.generate.quality import GateSettings, clean_query, quality_gate
from ragtune.engine.generate.rows import GeneratedRow

FORKLIFT = (
    "Forklift batteries are charged only in the charging bay. Operators must wear a face shield "
    "and gloves, check the electrolyte level weekly, and never smoke within ten metres."
)
REEFER = (
    "Reefer containers are pre-tripped before every loading: the technician runs the controller "
    "self-test, checks the compressor and records the set point on the trip sheet."
)
INVOICE = (
    "Supplier invoices above 5,000 euros need two approvals in the finance portal before payment, "
    "and the purchase order number must appear on the invoice."
)


def row(question: str, chunk_id: str = "f", context: str = FORKLIFT) -> GeneratedRow:
    return GeneratedRow(chunk_id=chunk_id, question=question, context=context, source="s.md")


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        (
            "Here are three questions about forklifts: Where are batteries charged?",
            "Where are batteries charged?",
        ),
        ('1. "Where are forklift batteries charged?"', "Where are forklift batteries charged?"),
        ("Sure!\nQ2: forklift battery charging rules", "forklift battery charging rules"),
        ("**Query 3:** electrolyte check interval", "electrolyte check interval"),
        ("- “reefer pre-trip steps”", "reefer pre-trip steps"),
        ("Keyword: invoice approval limit", "invoice approval limit"),
        ("What PPE is needed to charge a battery?", "What PPE is needed to charge a battery?"),
    ],
)
def test_clean_query_strips_chatter(raw: str, clean: str) -> None:
    assert clean_query(raw) == clean


def test_text_filters_each_report_their_drops() -> None:
    rows = [
        row("Here are the questions:"),
        row("   "),
        row("forklift"),
        row(" ".join(["word"] * 60)),
        row("Operators must wear a face shield and gloves"),
        row("Where are forklift batteries charged?"),
        row("where are forklift batteries charged"),
        row("1. Where are forklift batteries charged?"),
        row("How often is the electrolyte level checked?"),
    ]
    events: list = []
    result = quality_gate(rows, GateSettings(dedup_threshold=1.0), events=Emitter(events.append))
    assert [r.question for r in result.rows] == [
        "Where are forklift batteries charged?",
        "How often is the electrolyte level checked?",
    ]
    assert result.dropped_by_filter == {
        "empty": 2,
        "too_short": 1,
        "too_long": 1,
        "copied_from_chunk": 1,
        "exact_duplicate": 2,
    }
    assert result.dropped == len(rows) - 2
    texts = [e.text for e in events if isinstance(e, Message)]
    assert (
        "quality gate kept 2 of 9 rows (dropped: empty 2, too short 1, too long 1, "
        "copied from chunk 1, exact duplicate 2)" in texts
    )


def test_near_duplicates_dropped_with_the_base_embedder(minilm_path) -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_path), device="cpu")
    rows = [
        row("How do I charge the forklift battery?"),
        row("How do I charge a forklift battery?"),
        row("How should I charge the forklift's battery?"),
        row("What protective gear is required in the charging bay?"),
        row("reefer pre-trip checklist", "r", REEFER),
    ]
    result = quality_gate(rows, GateSettings(dedup_threshold=0.9), embedder=model)
    kept = [r.question for r in result.rows]
    assert kept[0] == "How do I charge the forklift battery?"
    assert "How do I charge a forklift battery?" not in kept
    assert "What protective gear is required in the charging bay?" in kept
    assert "reefer pre-trip checklist" in kept
    assert result.dropped_by_filter["near_duplicate"] == 5 - len(kept) >= 1

    passages = {"f": FORKLIFT, "r": REEFER, "i": INVOICE}
    trip = [
        row("Where are forklift batteries charged?"),
        row("How many approvals does a large supplier invoice need?"),  # belongs to "i"
        row("Which test does the technician run before loading a reefer?", "r", REEFER),
    ]
    result = quality_gate(
        trip,
        GateSettings(dedup_threshold=1.0, round_trip_top_k=1),
        embedder=model,
        passages=passages,
    )
    assert [r.question for r in result.rows] == [trip[0].question, trip[2].question]
    assert result.dropped_by_filter["round_trip"] == 1


def test_extract_json_repairs_fences_preambles_and_trailers() -> None:
    data = {"queries": [{"style": "keyword", "query": "x y"}]}
    text = json.dumps(data)
    assert extract_json(text) == data
    assert extract_json(f"```json\n{text}\n```") == data
    assert extract_json(f"Sure! Here you go:\n{text}\nLet me know if you need more.") == data
    assert extract_json(f"Here:\n```\n{text}\n```\nThanks") == data
    with pytest.raises(MalformedReply):
        extract_json(text[: len(text) // 2])
    with pytest.raises(MalformedReply):
        extract_json("I cannot help with that.")
    with pytest.raises(MalformedReply):
        extract_json("")


def test_rows_from_reply_is_strict_about_shape() -> None:
    cfg = LlmConfig(model="openai/x")
    chunk = Chunk(chunk_id="c1", doc_id="d", text=FORKLIFT, source="s.md")
    reply = {
        "queries": [
            {"style": "keyword", "query": "battery charging bay", "answer": "In the bay."},
            {"style": "odd", "query": "Who checks electrolyte?", "answer": "Operators."},
            {"style": "question", "query": ""},
        ],
        "hard_negative_query": "Where are forklifts parked overnight?",
        "positive_passage": "p",
        "negative_passage": "n",
    }
    rows = rows_from_reply(reply, chunk, cfg, with_answers=True)
    assert [r.kind for r in rows] == ["keyword", "question"]
    assert rows[0].response == "In the bay." and rows[0].negative_retrieval.startswith("Where")
    assert rows[0].context == FORKLIFT and rows[0].chunk_id == "c1"
    with pytest.raises(MalformedReply):
        rows_from_reply({"answers": []}, chunk, cfg, with_answers=True)
    with pytest.raises(MalformedReply):
        rows_from_reply({"queries": [{"query": " "}]}, chunk, cfg, with_answers=True)
    with pytest.raises(MalformedReply):
        strings_from_reply({"answers": ["a"]}, "answers", expected=2)
    schema = queries_schema(cfg, with_answers=True)
    assert schema["required"] == list(schema["properties"])
    assert schema["properties"]["queries"]["items"]["required"] == ["style", "query", "answer"]


def test_prompt_rendering_keeps_literal_braces() -> None:
    assert render('{"a": {x}} {{y}} {unknown}', x=1) == '{"a": 1} {y} {unknown}'
    cfg = LlmConfig(model="openai/x", queries_per_chunk=4, tasks=["queries"])
    text = queries_message(
        Prompts.defaults(), cfg, "PASSAGE", title="T", source="S", with_answers=False
    )
    assert "Write 4 search queries" in text and "<passage>\nPASSAGE\n</passage>" in text
    assert "hard_negative_query" not in text and '"answer"' not in text
