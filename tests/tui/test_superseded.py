"""A worker superseded by newer input is cancelled, and its late result is never shown.

Each test holds the real engine call of the first worker on an event (monkeypatch injects
only that wait), starts the same work again with other input, lets the first one finish
after the second, and checks the screen shows the second.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import METRICS, copy_run
from test_app_flow import make_app, settle
from test_real_engine import SIZE, tiny_run_config
from textual.widgets import DataTable, Input, Markdown, Static

from ragtune.engine.config import RunConfig
from ragtune.tui.engine_client import EngineClient
from tests.test_pipeline import write_docs


class HeldFirstCall:
    """Wraps a real engine function: the first call runs, then waits for ``release`` before
    it returns (a slow engine call, as a large document set or a slow network makes it)."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.real = real
        self.calls = 0
        self.started = threading.Event()
        self.release = threading.Event()
        self.first_done = threading.Event()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls > 1:
            return self.real(*args, **kwargs)
        try:
            result = self.real(*args, **kwargs)
            self.started.set()
            assert self.release.wait(30), "the test never released the first call"
            return result
        finally:
            self.started.set()
            self.first_done.set()

    async def finish_first(self) -> None:
        """Let the held call run to its end, after the newer one has been shown."""
        self.release.set()
        await asyncio.get_running_loop().run_in_executor(None, self.first_done.wait, 30)


async def wait_for(event: threading.Event) -> None:
    assert await asyncio.get_running_loop().run_in_executor(None, event.wait, 30)


async def test_chunk_preview_superseded_by_new_settings_is_dropped(
    tmp_path: Path, tiny_bert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ragtune.engine.ingest import stage

    held = HeldFirstCall(stage.preview_chunks)
    monkeypatch.setattr(stage, "preview_chunks", held)
    cfg = tiny_run_config(tmp_path, tiny_bert, reranker=False)
    app = make_app(tmp_path, EngineClient())
    app.state.cfg = cfg
    async with app.run_test(size=SIZE) as pilot:
        app.goto("chunking")
        await pilot.pause()
        await pilot.press("f5")
        await wait_for(held.started)
        app.screen.query_one("#chunk-form-overlap_tokens", Input).value = "4"
        app.screen.query_one("#chunk-form-max_tokens", Input).value = "24"
        await pilot.pause()
        await pilot.press("f5")
        await settle(app)
        await pilot.pause()
        screen = app.screen
        shown = str(screen.query_one("#chunk-stats", Static).render())
        await held.finish_first()
        await pilot.pause()
        await pilot.pause()
        assert held.calls == 2
        assert str(screen.query_one("#chunk-stats", Static).render()) == shown
        assert screen.query_one("#chunk-samples", DataTable).row_count == 5
        shown_stats = screen.preview.stats
    assert app.cfg.chunking.max_tokens == 24
    client = EngineClient()
    second = client.preview_chunks(app.cfg).stats
    app.cfg.chunking.max_tokens, app.cfg.chunking.overlap_tokens = 64, 8
    first = client.preview_chunks(app.cfg).stats
    assert first != second, "the two settings must chunk differently for this test to tell"
    assert shown_stats == second


async def test_model_card_superseded_by_a_return_to_the_step_is_dropped(
    tmp_path: Path, tuned_run: RunConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ragtune.engine.export import stage

    held = HeldFirstCall(stage.model_card_text)
    monkeypatch.setattr(stage, "model_card_text", held)
    root = copy_run(tuned_run, tmp_path / "ws")
    app = make_app(tmp_path, EngineClient(), workspace=root)
    async with app.run_test(size=SIZE) as pilot:
        assert app.cfg.generation.resolved == "llm-free"
        app.goto("export")
        await wait_for(held.started)
        app.goto("results")
        await pilot.pause()
        app.cfg.generation.generator = "litellm"
        app.goto("export")
        await settle(app)
        await pilot.pause()
        await held.finish_first()
        await pilot.pause()
        await pilot.pause()
        assert held.calls >= 2
        card = app.screen.query_one("#card-md", Markdown).source
        assert "- Generator: litellm" in card and "llm-free" not in card


async def test_connection_test_superseded_by_a_new_endpoint_is_dropped(
    tmp_path: Path, tiny_bert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llm_server import FakeLlmServer

    from ragtune.engine.generate import llm_connection

    held = HeldFirstCall(llm_connection.test_connection)
    monkeypatch.setattr(llm_connection, "test_connection", held)
    cfg = tiny_run_config(tmp_path, tiny_bert, reranker=False)
    cfg.generation.generator = "litellm"
    cfg.generation.llm.model = "openai/fake"
    cfg.generation.llm.api_base = "http://127.0.0.1:9/v1"
    cfg.generation.llm.max_retries = 0
    with FakeLlmServer() as server:
        app = make_app(tmp_path, EngineClient())
        app.state.cfg = cfg
        async with app.run_test(size=SIZE) as pilot:
            app.goto("llm")
            await pilot.pause()
            screen = app.screen
            await pilot.press("f5")
            await wait_for(held.started)
            screen.query_one("#llm-form-api_base", Input).value = server.url
            await pilot.press("f5")
            await settle(app)
            await pilot.pause()
            assert "✔ connected" in str(screen.query_one("#llm-result", Static).render())
            await held.finish_first()
            await pilot.pause()
            await pilot.pause()
            assert held.calls == 2
            result = str(screen.query_one("#llm-result", Static).render())
            assert "✔ connected" in result and "✘" not in result


async def test_sample_superseded_by_a_new_sample_is_dropped(
    tmp_path: Path, tiny_bert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ragtune.engine import api

    held = HeldFirstCall(api.sample_generation)
    monkeypatch.setattr(api, "sample_generation", held)
    cfg = tiny_run_config(tmp_path, tiny_bert, reranker=False)
    cfg.generation.llm.sample_size = 5
    app = make_app(tmp_path, EngineClient())
    app.state.cfg = cfg
    async with app.run_test(size=SIZE) as pilot:
        app.goto("samples")
        await pilot.pause()
        screen = app.screen
        await pilot.press("f5")
        await wait_for(held.started)
        app.cfg.generation.llm.sample_size = 3
        await pilot.press("f5")
        await settle(app)
        await pilot.pause()
        assert screen.query_one("#sample-table", DataTable).row_count == 3
        await held.finish_first()
        await pilot.pause()
        await pilot.pause()
        assert held.calls == 2
        assert screen.query_one("#sample-table", DataTable).row_count == 3
        assert len(app.state.review) == 3
        assert "3 sample rows" in str(screen.query_one("#gen-progress", Static).render())


async def test_metrics_load_superseded_by_a_reload_is_dropped(
    tmp_path: Path, tuned_run: RunConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ragtune.engine.evaluate import results

    held = HeldFirstCall(results.read_results)
    monkeypatch.setattr(results, "read_results", held)
    root = copy_run(tuned_run, tmp_path / "ws")
    before = held.real(root / "metrics.json")
    app = make_app(tmp_path, EngineClient(), workspace=root)
    async with app.run_test(size=SIZE) as pilot:
        app.goto("results")
        await wait_for(held.started)
        shutil.copy(METRICS, root / "metrics.json")  # as a training that ended since writes it
        await pilot.press("f6")
        await settle(app)
        await pilot.pause()
        await held.finish_first()
        await pilot.pause()
        await pilot.pause()
        assert held.calls == 2
        after = held.real(root / "metrics.json")
        assert after != before, "the two metrics files must differ for this test to tell"
        assert app.screen.results == after


async def test_scan_superseded_by_a_scan_of_more_paths_is_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.ingest

    held = HeldFirstCall(engine.ingest.discover_sources)
    monkeypatch.setattr(engine.ingest, "discover_sources", held)
    first, second = tmp_path / "first", tmp_path / "second"
    write_docs(first)
    second.mkdir()
    (second / "extra.md").write_text("# Extra\n\nA passage added after the first scan.\n")
    app = make_app(tmp_path, EngineClient(), browse_root=tmp_path)
    app.cfg.sources.paths = [str(first)]
    async with app.run_test(size=SIZE) as pilot:
        app.goto("sources")
        await pilot.pause()
        screen = app.screen
        await pilot.press("f5")
        await wait_for(held.started)
        field = screen.query_one("#path-input", Input)
        field.focus()
        field.value = str(second)
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("f5")
        await settle(app)
        await pilot.pause()
        await held.finish_first()
        await pilot.pause()
        await pilot.pause()
        assert held.calls == 2
        shown = {f.resolve() for f in screen.last_scan.files}
        assert second / "extra.md" in shown
        assert {p.resolve() for p in first.rglob("*") if p.is_file()} < shown
        assert screen.query_one("#scan-table", DataTable).row_count == len(shown)
