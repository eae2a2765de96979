"""Sample review changes the full run: rejected rows out, edited rows as edited, kept rows as few-shots."""

from __future__ import annotations

from dataclasses import replace

from llm_server import FakeLlmServer, llm_run_config, make_chunks

from ragtune.engine.config import RunConfig
from ragtune.engine.config.data import DataConfig
from ragtune.engine.core.events import Emitter
from ragtune.engine.core.workspace import Workspace
from ragtune.engine.data.prepare import run_prepare
from ragtune.engine.generate.llm import run_llm_generation, sample_rows
from ragtune.engine.generate.llm_free import LlmFreeGenerator
from ragtune.engine.generate.review import (
    ReviewEntry,
    load_review,
    review_path,
    save_review,
    with_decisions,
)
from ragtune.engine.generate.rows import read_rows


def test_llm_free_full_run_honours_rejected_and_edited_rows(tmp_path):
    ws = Workspace.create(tmp_path / "ws")
    chunks = make_chunks(12)
    gen = LlmFreeGenerator(RunConfig().generation.llm_free)
    sample = gen.sample(chunks, 8)
    assert len(sample) == 8
    rejected, edited = sample[0], sample[1]
    new_text = "which log book holds the readings for unit one"
    entries = [ReviewEntry.for_row(r) for r in sample]
    entries[0].status = "rejected"
    entries[1] = replace(entries[1], status="edited", row=replace(edited, question=new_text))
    entries[2].status = "accepted"
    save_review(ws, entries)
    assert review_path(ws).exists() and len(load_review(ws)) == 8

    summary = gen.generate(chunks, ws, Emitter())
    rows = read_rows(ws.generated_path, summary.keys)
    pairs = {(r.chunk_id, r.question) for r in rows}
    assert (rejected.chunk_id, rejected.question) not in pairs
    assert (edited.chunk_id, edited.question) not in pairs
    assert (edited.chunk_id, new_text) in pairs
    assert (sample[2].chunk_id, sample[2].question) in pairs
    assert summary.rows == len(rows)

    prepared = run_prepare(DataConfig(), ws, rows, chunks, Emitter())
    assert prepared["train_pairs"] > 0
    from datasets import load_from_disk

    splits = load_from_disk(str(ws.dataset_dir / "splits"))
    trained = set(zip(splits["train"]["chunk_id"], splits["train"]["anchor"], strict=True))
    trained |= set(zip(splits["eval"]["chunk_id"], splits["eval"]["query"], strict=True))
    assert (rejected.chunk_id, rejected.question) not in trained
    assert (edited.chunk_id, new_text) in trained


def test_saved_decisions_come_back_on_a_new_sample_and_reset_the_generate_stage(tmp_path):
    ws = Workspace.create(tmp_path / "ws")
    chunks = make_chunks(6)
    gen = LlmFreeGenerator(RunConfig().generation.llm_free)
    sample = gen.sample(chunks, 4)
    ws.mark_done("generate", "fp", {}, inputs={}, output="x")
    entries = [ReviewEntry.for_row(r) for r in sample]
    entries[3].status = "rejected"
    save_review(ws, entries)
    assert ws.stage_state("generate") is None, "a changed review must make generate run again"
    again = gen.sample(chunks, 4)
    assert with_decisions(again, load_review(ws)) == ["new", "new", "new", "rejected"]


def test_llm_prompts_carry_kept_rows_as_few_shot_examples(tmp_path):
    chunks = make_chunks(6)
    with FakeLlmServer() as server:
        cfg = llm_run_config(server.url, str(tmp_path / "ws"), queries_per_chunk=2)
        ws = Workspace.create(cfg.workspace_dir)
        sample = sample_rows(cfg, ws, chunks, k=4)
        assert sample, "the LLM sample must return rows"
        entries = [ReviewEntry.for_row(r) for r in sample]
        entries[0].status = "rejected"
        edited_q = "duty manager escalation deadline for unit faults"
        entries[1] = replace(entries[1], status="edited", row=replace(sample[1], question=edited_q))
        save_review(ws, entries)
        before = len(server.requests)
        summary = run_llm_generation(cfg, ws, chunks, Emitter())
        bodies = [r.body for r in server.requests[before:]]
    prompts = [m["content"] for b in bodies for m in b.get("messages", []) if m["role"] == "user"]
    assert any(edited_q in p and "approved" in p for p in prompts), "edited rows are few-shots"
    pairs = {(r.chunk_id, r.question) for r in read_rows(ws.generated_path, summary.keys)}
    assert (sample[0].chunk_id, sample[0].question) not in pairs
    assert (sample[1].chunk_id, edited_q) in pairs
