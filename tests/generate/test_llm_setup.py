"""Before the run: cost estimate, connection check, description-only drafting, and key secrecy."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from llm_server import FakeLlmServer, llm_run_config, make_chunks

from ragtune.engine.config.llm import LlmConfig
from ragtune.engine.core.errors import RagtuneError
from ragtune.engine.core.events import Emitter, JsonlEventLog
from ragtune.engine.core.records import read_chunks
from ragtune.engine.core.workspace import Workspace
from ragtune.engine.generate.llm import run_llm_generation, sample_rows
from ragtune.engine.generate.llm_connection import test_connection as check_connection
from ragtune.engine.generate.llm_cost import estimate_cost, estimate_workspace_cost
from ragtune.engine.generate.llm_describe import draft_system_prompt, ensure_system_prompt
from ragtune.engine.generate.rows import iter_records

DESCRIPTION = (
    "A cold-chain logistics company: warehouse staff, reefer technicians and dispatchers "
    "search procedures about refrigerated containers, temperature excursions and loading docks."
)


def test_cost_estimate_uses_the_price_map() -> None:
    import litellm

    chunks = make_chunks(10)
    known = estimate_cost(chunks, LlmConfig(model="gpt-4o-mini"))
    assert known.calls == 10 and known.input_tokens > 10 * 100 and known.output_tokens > 0
    cost_in, cost_out = litellm.cost_per_token(
        model="gpt-4o-mini", prompt_tokens=known.input_tokens, completion_tokens=known.output_tokens
    )
    assert known.usd is not None and abs(known.usd - (cost_in + cost_out)) < 1e-9
    assert "$" in known.describe()

    unknown = estimate_cost(
        chunks, LlmConfig(model="openai/my-local-model", api_base="http://x/v1")
    )
    assert unknown.usd is None and "unknown price" in unknown.note
    assert "unknown price" in unknown.describe()

    answers = ["queries", "answer"]
    split = estimate_cost(
        chunks, LlmConfig(model="gpt-4o-mini", answer_model="gpt-4o", tasks=answers)
    )
    assert split.calls == 20 and split.usd is not None and split.usd > known.usd * 0.5
    # Training reads no answers: by default none are generated, so none are billed.
    default = estimate_cost(chunks, LlmConfig(model="gpt-4o-mini", answer_model="gpt-4o"))
    assert "answer" not in LlmConfig().tasks and default.calls == 10


def test_cost_estimate_counts_the_workspace_prompts(tmp_path: Path) -> None:
    from dataclasses import replace

    from ragtune.engine.generate.llm_prompts import Prompts, write_prompt

    chunks = make_chunks(5)
    cfg = LlmConfig(model="gpt-4o-mini")
    plain = estimate_cost(chunks, cfg)
    longer = replace(Prompts.defaults(), system=Prompts.defaults().system + " Be thorough." * 50)
    assert estimate_cost(chunks, cfg, longer).input_tokens > plain.input_tokens + 5 * 100
    assert write_prompt(tmp_path, "system", longer.system).exists()
    assert Prompts.load(tmp_path).system.strip() == longer.system.strip()
    from_ws = estimate_workspace_cost(chunks, cfg, tmp_path)
    assert from_ws.input_tokens > plain.input_tokens + 5 * 100


def test_real_cost_tracked_from_usage(tmp_path: Path) -> None:
    import litellm

    with FakeLlmServer() as server:
        cfg = llm_run_config(server.url, model="openai/gpt-4o-mini")
        events: list = []
        summary = run_llm_generation(
            cfg, Workspace.create(tmp_path), make_chunks(3), Emitter(events.append)
        )
    cost_in, cost_out = litellm.cost_per_token(
        model="gpt-4o-mini",
        prompt_tokens=summary.input_tokens,
        completion_tokens=summary.output_tokens,
    )
    assert summary.input_tokens > 0 and summary.cost_usd is not None
    assert abs(summary.cost_usd - (cost_in + cost_out)) < 1e-6
    assert events[-1].extra["cost_usd"] == summary.cost_usd


def test_connection_messages() -> None:
    with FakeLlmServer(api_key="sk-good", models=("known",)) as server:
        ok = check_connection(
            LlmConfig(model="openai/known", api_base=server.url), api_key="sk-good"
        )
        assert ok.ok and ok.latency_s > 0 and "answered" in ok.message

        bad_key = check_connection(
            LlmConfig(model="openai/known", api_base=server.url, api_key_env="MY_KEY"),
            api_key="sk-bad-SECRET-999",
        )
        assert not bad_key.ok and "API key" in bad_key.message and "MY_KEY" in bad_key.message
        assert "SECRET" not in bad_key.message

        unknown = check_connection(
            LlmConfig(model="openai/nope", api_base=server.url), api_key="sk-good"
        )
        assert not unknown.ok and "unknown" in unknown.message and "nope" in unknown.message

    down = check_connection(LlmConfig(model="openai/x", api_base=server.url, timeout=3))
    assert not down.ok and "cannot reach" in down.message and server.url in down.message
    assert not check_connection(LlmConfig(model="")).ok


def test_description_only_flow(tmp_path: Path) -> None:
    with FakeLlmServer() as server:
        ws = Workspace.create(tmp_path)
        cfg = llm_run_config(server.url, synthetic_passages=7, passages_per_call=3)
        cfg.sources.description = DESCRIPTION
        drafted = draft_system_prompt(DESCRIPTION, cfg.generation.llm)
        assert "refrigerated" in drafted or "temperature" in drafted

        events: list = []
        summary = run_llm_generation(cfg, ws, [], Emitter(events.append))
        chunks = read_chunks(ws.chunks_path)
        assert len(chunks) == 7 == summary.chunks
        assert all(c.source.startswith("synthetic/") for c in chunks)
        assert summary.done == 7 and summary.rows == 21
        system = (ws.prompts_dir / "system.md").read_text()
        assert system.startswith("You write search queries for staff")
        row_requests = [r for r in server.requests if r.passage]
        assert all(r.body["messages"][0]["content"].strip() == system.strip() for r in row_requests)

        (ws.prompts_dir / "system.md").write_text("You are terse.\n")
        calls = len(server.requests)
        again = run_llm_generation(cfg, ws, [], Emitter())
        assert again.chunks == 7
        assert (ws.prompts_dir / "system.md").read_text() == "You are terse.\n"
        new = server.requests[calls:]
        assert len(new) == 7 and all(r.passage for r in new), "edited system prompt: rows only"

        redrafted = ensure_system_prompt(cfg, ws, regenerate=True)
        assert redrafted.startswith("You write search queries")


def test_api_key_never_written(tmp_path: Path, monkeypatch, caplog, capfd) -> None:
    secret = "sk-live-DO-NOT-LEAK-4242424242"
    monkeypatch.setenv("RAGTUNE_SECRET_KEY", secret)
    caplog.set_level(logging.DEBUG)
    with FakeLlmServer(api_key=secret) as server:
        ws = Workspace.create(tmp_path / "ws")
        cfg = llm_run_config(server.url, api_key_env="RAGTUNE_SECRET_KEY", answer_model="openai/a")
        cfg.save(ws.config_path)
        log = JsonlEventLog(ws.events_path)
        events = Emitter(log)
        assert check_connection(cfg.generation.llm).ok
        assert sample_rows(cfg, ws, make_chunks(9), k=3)
        summary = run_llm_generation(cfg, ws, make_chunks(9), events)
        assert summary.done + summary.skipped == 9
        typed = llm_run_config(server.url)
        typed.run.workspace = str(ws.root)
        run_llm_generation(typed, ws, make_chunks(11), events, api_key=secret)
        good_calls = len(server.requests)
        wrong = llm_run_config(server.url, api_key_env="RAGTUNE_SECRET_KEY")
        monkeypatch.setenv("RAGTUNE_SECRET_KEY", secret + "-wrong")
        with pytest.raises(RagtuneError, match="rejected the API key") as refused:
            run_llm_generation(wrong, ws, make_chunks(14), events)
        # As the pipeline reports it: the error (which quotes the provider) goes to the log.
        events.error(str(refused.value))
        log.close()
    assert all(r.authorization == f"Bearer {secret}" for r in server.requests[:good_calls])
    assert len(server.requests) > good_calls
    files = [p for p in ws.root.rglob("*") if p.is_file()]
    assert ws.generated_path in files and ws.events_path in files
    for path in files:
        assert secret not in path.read_bytes().decode("utf-8", "replace"), path
    assert secret not in caplog.text
    out, err = capfd.readouterr()
    assert secret not in out and secret not in err
    assert any(r.status == "ok" for r in iter_records(ws.generated_path))
