"""The litellm generator against a real loopback OpenAI-compatible server: faults, resume, sampling."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from llm_server import FakeLlmServer, always, first_attempt, llm_run_config, make_chunks

from ragtune.engine.core.errors import Cancelled, RagtuneError
from ragtune.engine.core.events import Emitter, Progress
from ragtune.engine.core.records import write_chunks
from ragtune.engine.core.workspace import Workspace
from ragtune.engine.generate.llm import run_llm_generation, sample_rows
from ragtune.engine.generate.rows import iter_records, latest_records

REPO = Path(__file__).resolve().parents[2]


def query_records(ws: Workspace) -> list:
    return [r for r in iter_records(ws.generated_path) if r.generator == "litellm:queries"]


def run(cfg, ws, chunks, **kw):
    events: list = []
    summary = run_llm_generation(cfg, ws, chunks, Emitter(events.append), **kw)
    return summary, events


def check_consistent(ws: Workspace, chunks, summary) -> None:
    """The summary's counts are exactly what generated.jsonl holds."""
    latest = latest_records(ws.generated_path)
    gate = [latest[k] for k in summary.keys]
    assert all(r.status == "ok" for r in gate)
    assert len({r.chunk_id for r in gate}) == len(gate) == summary.done + summary.skipped
    assert sum(len(r.rows) for r in gate) == summary.rows
    ok = {r.chunk_id for r in query_records(ws) if r.status == "ok"}
    failed = {r.chunk_id for r in query_records(ws) if r.status == "failed"} - ok
    assert len(ok) == summary.done + summary.skipped
    assert len(failed) == summary.failed
    assert summary.done + summary.skipped + summary.failed == len(chunks)
    assert sum(summary.failures_by_reason.values()) == summary.failed


def test_full_run_writes_rows_and_resumes_without_calls(tmp_path: Path) -> None:
    chunks = make_chunks(12)
    with FakeLlmServer() as server:
        cfg = llm_run_config(server.url)
        ws = Workspace.create(tmp_path)
        summary, events = run(cfg, ws, chunks)
        assert summary.done == 12 and summary.failed == 0
        assert summary.rows == 36
        check_consistent(ws, chunks, summary)
        rows = [r for k in summary.keys for r in latest_records(ws.generated_path)[k].rows]
        assert {r.kind for r in rows} == {"question", "keyword", "paraphrase"}
        assert all(r.context and r.response and r.negative_retrieval for r in rows)
        assert all(r.positive_reranking and r.negative_reranking for r in rows)
        progress = [e for e in events if isinstance(e, Progress)]
        assert progress[-1].done == 12 and progress[-1].extra["rows"] == 36
        assert progress[-1].extra["input_tokens"] > 0
        assert server.requests[0].response_format == "json_object"
        assert (ws.prompts_dir / "queries.md").exists()

        calls = len(server.requests)
        again, _ = run(cfg, ws, chunks)
        assert len(server.requests) == calls
        assert again.skipped == 12 and again.done == 0 and again.keys == summary.keys
        lines = ws.generated_path.read_text().count("\n")
        run(cfg, ws, chunks)
        assert ws.generated_path.read_text().count("\n") == lines


def test_json_schema_mode_sends_a_schema(tmp_path: Path) -> None:
    with FakeLlmServer() as server:
        cfg = llm_run_config(server.url, json_mode="schema")
        summary, _ = run(cfg, Workspace.create(tmp_path), make_chunks(2))
        assert summary.done == 2
        body = server.requests[0].body["response_format"]
        assert body["type"] == "json_schema"
        assert "queries" in body["json_schema"]["schema"]["properties"]


def test_429_honours_retry_after(tmp_path: Path) -> None:
    chunks = make_chunks(6)
    with FakeLlmServer(fault=first_attempt("429"), retry_after=1) as server:
        ws = Workspace.create(tmp_path)
        start = time.monotonic()
        summary, events = run(llm_run_config(server.url), ws, chunks)
        elapsed = time.monotonic() - start
    assert summary.done == 6 and summary.failed == 0
    assert len(server.requests) == 12
    retried = [r for r in server.requests if r.fault is None]
    first_429 = min(r.started for r in server.requests if r.fault == "429")
    assert min(r.started for r in retried) - first_429 >= 0.95
    assert elapsed >= 1.0
    assert events[-1].extra["retries"]["rate_limited"] == 6
    check_consistent(ws, chunks, summary)


def test_500_is_retried(tmp_path: Path) -> None:
    chunks = make_chunks(5)
    with FakeLlmServer(fault=first_attempt("500")) as server:
        ws = Workspace.create(tmp_path)
        summary, events = run(llm_run_config(server.url), ws, chunks)
    assert summary.done == 5 and len(server.requests) == 10
    assert events[-1].extra["retries"]["server_error"] == 5


def test_slow_reply_times_out_and_is_retried(tmp_path: Path) -> None:
    chunks = make_chunks(4)
    with FakeLlmServer(fault=first_attempt("slow"), slow_seconds=4) as server:
        ws = Workspace.create(tmp_path)
        start = time.monotonic()
        summary, events = run(llm_run_config(server.url, timeout=1.0), ws, chunks)
        elapsed = time.monotonic() - start
    assert summary.done == 4
    assert elapsed < 4, "the client must give up on a slow reply, not wait for it"
    assert events[-1].extra["retries"]["timeout"] == 4


def test_malformed_json_retried_then_recorded_as_failed(tmp_path: Path) -> None:
    chunks = make_chunks(4)
    with FakeLlmServer(fault=first_attempt("malformed")) as server:
        summary, _ = run(llm_run_config(server.url), Workspace.create(tmp_path / "a"), chunks)
        assert summary.done == 4 and len(server.requests) == 8
    with FakeLlmServer(fault=always("malformed")) as server:
        ws = Workspace.create(tmp_path / "b")
        summary, _ = run(llm_run_config(server.url, max_retries=2), ws, chunks)
        assert len(server.requests) == 12
    assert summary.failed == 4 and summary.rows == 0
    assert summary.failures_by_reason == {"malformed_json": 4}
    failed = query_records(ws)
    assert len(failed) == 4 and all(r.error.startswith("malformed_json") for r in failed)
    check_consistent(ws, chunks, summary)


@pytest.mark.parametrize("kind", ["preamble", "fence"])
def test_wrapped_replies_are_repaired_without_retry(tmp_path: Path, kind: str) -> None:
    chunks = make_chunks(4)
    with FakeLlmServer(fault=always(kind)) as server:
        summary, _ = run(llm_run_config(server.url), Workspace.create(tmp_path), chunks)
    assert summary.done == 4 and summary.rows == 12
    assert len(server.requests) == 4


def test_requests_per_minute_limit(tmp_path: Path) -> None:
    chunks = make_chunks(20)
    with FakeLlmServer() as server:
        start = time.monotonic()
        summary, _ = run(
            llm_run_config(server.url, requests_per_minute=600), Workspace.create(tmp_path), chunks
        )
        elapsed = time.monotonic() - start
        starts = sorted(r.started for r in server.requests)
    assert summary.done == 20
    # 10 per second with a one-second burst: the last 10 requests need about a second more.
    assert starts[-1] - starts[0] >= 0.85
    assert elapsed >= 0.85


def test_changed_prompt_regenerates_only_what_it_affects(tmp_path: Path) -> None:
    chunks = make_chunks(6)
    with FakeLlmServer() as server:
        cfg = llm_run_config(server.url, answer_model="openai/fake-answers")
        ws = Workspace.create(tmp_path)
        first, _ = run(cfg, ws, chunks)
        assert first.done == 6 and len(server.requests) == 12
        rows = [r for k in first.keys for r in latest_records(ws.generated_path)[k].rows]
        assert all(r.response.startswith("Per the passage") for r in rows)

        answer_md = ws.prompts_dir / "answer.md"
        answer_md.write_text(answer_md.read_text() + "\nKeep each answer under 40 words.\n")
        before = len(server.requests)
        second, _ = run(cfg, ws, chunks)
        new = server.requests[before:]
        assert len(new) == 6 and all(r.model == "fake-answers" for r in new)
        assert second.done == 6

        before = len(server.requests)
        third, _ = run(cfg, ws, [*chunks, *make_chunks(8)[6:]])
        assert len(server.requests) - before == 4
        assert third.skipped == 6 and third.done == 2


def test_sampling_spreads_sources_and_feeds_the_full_run(tmp_path: Path) -> None:
    chunks = make_chunks(30, sources=3)
    with FakeLlmServer() as server:
        cfg = llm_run_config(server.url)
        ws = Workspace.create(tmp_path)
        rows = sample_rows(cfg, ws, chunks, k=8)
        assert len(rows) == 8
        assert len({r.source for r in rows}) == 3
        sampled = {r.passage for r in server.requests}
        assert not list(ws.state_dir.iterdir())
        assert not [r for r in iter_records(ws.generated_path) if r.generator == "litellm:gate"]

        edited = ws.prompts_dir / "queries.md"
        edited.write_text(edited.read_text().replace("search queries", "search queries (short)"))
        again = sample_rows(cfg, ws, chunks, k=4)
        assert len(again) == 4
        edited.write_text(edited.read_text().replace("search queries (short)", "search queries"))

        before = len(server.requests)
        summary, _ = run(cfg, ws, chunks)
        full = {r.passage for r in server.requests[before:]}
        assert not full & sampled
        assert summary.skipped == len(sampled) and summary.done == 30 - len(sampled)


def test_cancel_keeps_finished_calls(tmp_path: Path) -> None:
    chunks = make_chunks(40)
    cancel = threading.Event()
    with FakeLlmServer(latency=0.1) as server:
        cfg = llm_run_config(server.url, concurrency=4)
        ws = Workspace.create(tmp_path)

        def sink(event) -> None:
            if isinstance(event, Progress) and event.done >= 8:
                cancel.set()

        with pytest.raises(Cancelled):
            run_llm_generation(cfg, ws, chunks, Emitter(sink), cancel)
        done_before = {r.chunk_id for r in query_records(ws) if r.status == "ok"}
        assert 8 <= len(done_before) < 40
        summary, _ = run(cfg, ws, chunks)
    assert summary.skipped == len(done_before) and summary.done == 40 - len(done_before)


def test_auth_error_stops_the_run_and_never_leaks_the_key(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RAGTUNE_TEST_KEY", "sk-wrong-0123456789-SECRET")
    with FakeLlmServer(api_key="sk-right") as server:
        cfg = llm_run_config(server.url, api_key_env="RAGTUNE_TEST_KEY")
        ws = Workspace.create(tmp_path)
        with pytest.raises(RagtuneError) as info:
            run(cfg, ws, make_chunks(10))
    assert "API key" in str(info.value) and "RAGTUNE_TEST_KEY" in str(info.value)
    assert "SECRET" not in str(info.value)
    assert len(server.requests) <= cfg.generation.llm.concurrency
    assert not query_records(ws)


def test_missing_key_variable_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("RAGTUNE_UNSET_KEY", raising=False)
    cfg = llm_run_config("http://127.0.0.1:9/v1", api_key_env="RAGTUNE_UNSET_KEY")
    with pytest.raises(RagtuneError, match="RAGTUNE_UNSET_KEY"):
        run(cfg, Workspace.create(tmp_path), make_chunks(1))


CHILD = """
import sys
from ragtune.engine.config import load_config
from ragtune.engine.core.events import Emitter
from ragtune.engine.generate.llm import run_llm_generation
from ragtune.engine.core.records import read_chunks
from ragtune.engine.core.workspace import Workspace
cfg = load_config(sys.argv[1])
ws = Workspace.create(cfg.workspace_dir)
run_llm_generation(cfg, ws, read_chunks(ws.chunks_path), Emitter())
"""


def test_sigkill_mid_run_then_restart_does_each_chunk_once(tmp_path: Path) -> None:
    chunks = make_chunks(60)
    with FakeLlmServer(latency=0.15) as server:
        ws = Workspace.create(tmp_path / "ws")
        cfg = llm_run_config(server.url, workspace=str(ws.root), concurrency=4)
        config_path = cfg.save(tmp_path / "config.toml")
        write_chunks(ws.chunks_path, chunks)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(config_path)], env=env, cwd=REPO)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if ws.generated_path.exists() and ws.generated_path.read_text().count("\n") >= 12:
                break
            assert child.poll() is None, "the child ended before it could be killed"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait()

        done_before = {r.chunk_id for r in query_records(ws) if r.status == "ok"}
        assert 12 <= len(done_before) < 60
        by_id = {c.chunk_id: c.text for c in chunks}
        texts_before = {by_id[c] for c in done_before}
        restart_at = len(server.requests)

        summary, _ = run(cfg, ws, chunks)
        after = [r.passage for r in server.requests[restart_at:]]

    assert not set(after) & texts_before, "a call that already succeeded was made again"
    assert len(after) == len(set(after)) == 60 - len(done_before)
    ok = [r.chunk_id for r in query_records(ws) if r.status == "ok"]
    assert sorted(ok) == sorted(by_id), "every chunk exactly once in generated.jsonl"
    lost_in_flight = len(server.passages_requested(None)) - 60
    assert 0 <= lost_in_flight <= 4
    assert summary.skipped == len(done_before) and summary.done == 60 - len(done_before)
    check_consistent(ws, chunks, summary)
