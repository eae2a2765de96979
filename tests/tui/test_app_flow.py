"""Pilot tests: navigation, validation shown beside fields, workers' results, and a replayed run."""

from __future__ import annotations

import json
from pathlib import Path

from textual.widgets import Checkbox, DataTable, Input, Select, Static, TextArea

from ragtune.engine.config import load_config
from ragtune.tui.app import RagtuneApp
from ragtune.tui.screens.confirm import ConfirmDialog
from ragtune.tui.screens.help import HelpScreen
from ragtune.tui.widgets.config_form import ConfigForm

SIZE = (100, 32)


async def settle(app: RagtuneApp) -> None:
    """Wait for the wizard's own workers (the directory tree's loader never finishes by design).

    An exclusive worker superseded while we wait ends cancelled, and waiting on it raises
    WorkerCancelled: wait again for whatever is still running."""
    from textual.widgets import DirectoryTree
    from textual.worker import WorkerCancelled

    for _ in range(50):
        mine = [
            w for w in app.workers if not isinstance(w.node, DirectoryTree) and not w.is_finished
        ]
        if not mine:  # an empty list would mean "all workers" to wait_for_complete
            return
        try:
            await app.workers.wait_for_complete(mine)
            return
        except WorkerCancelled:
            continue


def make_app(tmp_path: Path, engine, **kw) -> RagtuneApp:
    kw.setdefault("runs_dir", tmp_path / "runs")
    kw.setdefault("browse_root", tmp_path)
    app = RagtuneApp(engine=engine, **kw)
    if "workspace" not in kw:
        app.cfg.run.workspace = str(tmp_path / "ws")
    return app


async def test_new_run_then_next_is_blocked_until_sources_are_picked(tmp_path, fake_engine, docs):
    app = make_app(tmp_path, fake_engine, browse_root=docs)
    async with app.run_test(size=SIZE) as pilot:
        name = app.screen.query_one("#run-name", Input)
        name.value = "handbook"
        await pilot.press("f5")
        await pilot.pause()
        assert app.current_mode == "sources"
        assert app.cfg.workspace_dir == (tmp_path / "runs" / "handbook").resolve()
        await pilot.press("f3")
        await pilot.pause()
        assert app.current_mode == "sources", "no source picked: the step must not advance"
        screen = app.screen
        screen.toggle(docs / "handbook")
        await pilot.press("f5")
        await settle(app)
        await pilot.pause()
        table = screen.query_one("#scan-table", DataTable)
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        assert {str(r[0]) for r in rows} >= {"handbook/leave.md", "handbook/sla.txt"}
        bad = [r for r in rows if "scan.pdf" in str(r[0])]
        assert bad and "not a PDF" in str(bad[0][1])
        assert app.cfg.sources.paths == [str((docs / "handbook").resolve())]
        await pilot.press("f3")
        await pilot.pause()
        assert app.current_mode == "chunking"
        await pilot.press("f2")
        await pilot.pause()
        assert app.current_mode == "sources"


async def test_file_type_filter_changes_include_globs(tmp_path, fake_engine, docs):
    app = make_app(tmp_path, fake_engine, browse_root=docs)
    async with app.run_test(size=SIZE) as pilot:
        app.goto("sources")
        await pilot.pause()
        app.screen.query_one("#type-pdf", Checkbox).value = False
        await pilot.pause()
        assert "**/*.pdf" not in app.cfg.sources.include
        assert "**/*.md" in app.cfg.sources.include


async def test_dataset_preview_lists_columns_for_text_column(tmp_path, fake_engine):
    app = make_app(tmp_path, fake_engine)
    async with app.run_test(size=SIZE) as pilot:
        app.goto("sources")
        await pilot.pause()
        screen = app.screen
        screen.query_one("TabbedContent").active = "dataset-pane"
        screen.query_one("#ds-dataset", Input).value = "data/faq.csv"
        await pilot.press("f5")
        await settle(app)
        await pilot.pause()
        select = screen.query_one("#ds-text-column", Select)
        select.value = "body"
        await pilot.pause()
        assert app.cfg.sources.dataset == "data/faq.csv"
        assert app.cfg.sources.text_column == "body"
        assert screen.query_one("#dataset-table", DataTable).row_count == 5


async def test_chunking_error_is_shown_next_to_the_field(tmp_path, fake_engine):
    app = make_app(tmp_path, fake_engine)
    async with app.run_test(size=SIZE) as pilot:
        app.goto("chunking")
        await pilot.pause()
        screen = app.screen
        overlap = screen.query_one("#chunk-form-overlap_tokens", Input)
        overlap.value = "200"
        await pilot.pause()
        err = screen.query_one("#err-chunk-form-overlap_tokens", Static)
        assert "at most half of max_tokens (128)" in str(err.render())
        assert app.cfg.chunking.overlap_tokens == 32, "an invalid value never reaches the config"
        await pilot.press("f3")
        await pilot.pause()
        assert app.current_mode == "chunking"
        overlap.value = "abc"
        await pilot.pause()
        assert "whole number" in str(err.render())
        overlap.value = "48"
        await pilot.pause()
        assert str(err.render()) == ""
        assert app.cfg.chunking.overlap_tokens == 48


async def test_chunk_preview_fills_stats_histogram_and_samples(tmp_path, fake_engine, docs):
    app = make_app(tmp_path, fake_engine)
    app.cfg.sources.paths = [str(docs)]
    async with app.run_test(size=SIZE) as pilot:
        app.goto("chunking")
        await pilot.pause()
        await pilot.press("f5")
        await settle(app)
        await pilot.pause()
        screen = app.screen
        assert "41 chunks" in str(screen.query_one("#chunk-stats", Static).render())
        assert screen.query_one("#chunk-samples", DataTable).row_count == 5
        assert screen.preview is not None and sum(screen.preview.stats.histogram.values()) == 41
        # a valid change re-runs the preview after the debounce
        screen.query_one("#chunk-form-max_tokens", Input).value = "300"
        await pilot.pause(0.9)
        await settle(app)
        assert ("preview_chunks", (300,)) in fake_engine.calls


async def test_llm_key_stays_in_memory_and_connection_result_is_shown(tmp_path, fake_engine):
    app = make_app(tmp_path, fake_engine)
    async with app.run_test(size=SIZE) as pilot:
        app.goto("llm")
        await pilot.pause()
        screen = app.screen
        screen.query_one("#gen-form-generator", Select).value = "litellm"
        screen.query_one("#llm-form-model", Input).value = "openai/qwen"
        screen.query_one("#llm-form-api_base", Input).value = "http://127.0.0.1:9"
        screen.query_one("#api-key", Input).value = "sk-secret-123"
        await pilot.pause()
        await pilot.press("f5")
        await settle(app)
        await pilot.pause()
        result = str(screen.query_one("#llm-result", Static).render())
        assert "connection refused" in result
        assert ("test_connection", ("openai/qwen", True)) in fake_engine.calls
        screen.query_one("#llm-form-concurrency", Input).value = "0"
        await pilot.pause()
        assert "from 1 to 1024" in str(
            screen.query_one("#err-llm-form-concurrency", Static).render()
        )
        screen.query_one("#llm-form-concurrency", Input).value = "8"
        await pilot.press("f6")
        await settle(app)
        await pilot.pause()
        assert screen.estimate is not None and screen.estimate.calls == 212
        screen.query_one("#gen-form-generator", Select).value = "llm-free"
        await pilot.pause()
        assert screen.estimate is None, "switching generator clears the stale cost table"
        path = app.save_config()
        text = path.read_text()
        assert "sk-secret-123" not in text
        assert load_config(path).generation.llm.model == "openai/qwen"


async def test_samples_review_accept_reject_and_edit(tmp_path, fake_engine):
    app = make_app(tmp_path, fake_engine)
    app.cfg.generation.generator = "litellm"
    app.cfg.generation.llm.model = "openai/qwen"
    async with app.run_test(size=SIZE) as pilot:
        app.goto("samples")
        await pilot.pause()
        await pilot.press("f5")
        await settle(app)
        await pilot.pause()
        screen = app.screen
        assert screen.query_one("#sample-table", DataTable).row_count == 4
        await pilot.press("f7")
        await pilot.press("f8")
        await pilot.pause()
        assert [e.status for e in app.state.review[:2]] == ["accepted", "rejected"]
        await pilot.press("enter")
        await pilot.pause()
        editor = app.screen
        editor.query_one("#edit-question", TextArea).text = "How long is parental leave?"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.state.review[2].row.question == "How long is parental leave?"
        assert app.state.review[2].status == "edited"
        saved = json.loads((app.workspace.root / "review.json").read_text())
        assert [r["status"] for r in saved["rows"]] == ["accepted", "rejected", "edited", "new"]


async def test_presets_fill_training_settings_and_bad_dims_are_explained(tmp_path, fake_engine):
    app = make_app(tmp_path, fake_engine)
    async with app.run_test(size=SIZE) as pilot:
        app.goto("settings")
        await pilot.pause()
        screen = app.screen
        screen.query_one("#preset", Select).value = "quick CPU check"
        await pilot.pause()
        assert app.cfg.embedder.base_model == "sentence-transformers/all-MiniLM-L6-v2"
        assert app.cfg.embedder.precision == "fp32"
        dims = screen.query_one("#emb-form-matryoshka_dims", Input)
        dims.value = "64, 128, 384"
        await pilot.pause()
        err = str(screen.query_one("#err-emb-form-matryoshka_dims", Static).render())
        assert "decreasing order" in err
        await pilot.press("f3")
        await pilot.pause()
        assert app.current_mode == "settings"
        dims.value = "384, 128, 64"
        await pilot.pause()
        assert app.cfg.embedder.matryoshka_dims == [384, 128, 64]


async def test_training_replays_a_run_and_writes_a_replayable_config(tmp_path, fake_engine, docs):
    app = make_app(tmp_path, fake_engine)
    app.cfg.sources.paths = [str(docs)]
    app.cfg.run.name = "handbook"
    async with app.run_test(size=SIZE) as pilot:
        app.goto("training")
        await pilot.pause()
        await pilot.press("f5")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        await pilot.pause()
        run = fake_engine.runs[0]
        run.wait(10)
        await settle(app)
        await pilot.pause(0.6)
        screen = app.screen
        view = screen.view
        losses = [v for _, v in view.train_loss["embedder"]]
        assert len(losses) == 60 and losses[-1] < losses[0]
        assert view.eval_loss["embedder"], "eval losses are plotted separately"
        assert view.finished and view.stages["rerank"] == "done"
        assert 0 in view.gpus and len(view.gpus[0].utilization) == 15
        status = str(screen.query_one("#train-status", Static).render())
        assert status.startswith("finished in 1:52"), status
        assert "step" not in status, "a finished run's header shows no step counter"
        log_text = "\n".join(str(line.text) for line in screen.query_one("#train-log").lines)
        assert "scan.pdf: skipped: encrypted PDF" in log_text
        config = app.workspace.config_path
        assert fake_engine.calls[-1][0] in {"start_run", "attach"} or any(
            c[0] == "start_run" for c in fake_engine.calls
        )
        replayed = load_config(config)
        assert replayed.workspace_dir == app.workspace.root
        assert replayed.sources.paths == [str(docs.resolve())]


async def test_cancel_asks_first_then_stops_the_run(tmp_path, docs):
    from conftest import FakeEngine

    engine = FakeEngine(rate=20)
    app = make_app(tmp_path, engine)
    app.cfg.sources.paths = [str(docs)]
    async with app.run_test(size=SIZE) as pilot:
        app.goto("training")
        await pilot.pause()
        await pilot.press("f5", "y")
        await pilot.pause(0.3)
        run = engine.runs[0]
        await pilot.press("f8")
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
        assert run.alive(), "answering no keeps the run going"
        await pilot.press("f8", "y")
        run.wait(5)
        assert not run.alive() and run.written < 117
        await settle(app)


async def test_open_finished_workspace_goes_to_results(tmp_path, fake_engine, finished_run):
    app = make_app(tmp_path, fake_engine, workspace=finished_run)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.3)
        assert app.current_mode == "results"
        screen = app.screen
        table = screen.query_one("#emb-table", DataTable)
        first = table.get_row_at(0)
        assert [str(c) for c in first[:2]] == ["384", "ndcg@10"]
        assert str(first[4]).startswith("▲ +"), "no rotation measured: fine-tuned vs base"
        rr = screen.query_one("#rr-table", DataTable)
        assert str(rr.get_row_at(0)[1]) == "retriever"
        assert rr.row_count == 4
        screen.query_one("#ask-input", Input).value = "how many leave days"
        screen.query_one("TabbedContent").active = "ask-pane"
        await pilot.press("f5")
        await settle(app)
        await pilot.pause()
        tuned = screen.query_one("#ask-tuned", DataTable)
        assert str(tuned.get_row_at(0)[1]) == "handbook/leave.md"


async def test_export_needs_a_token_before_push(tmp_path, fake_engine, finished_run, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    app = make_app(tmp_path, fake_engine, workspace=finished_run)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.goto("export")
        await pilot.pause()
        screen = app.screen
        screen.query_one("#export-form-embedder_repo", Input).value = "me/handbook-embed"
        await pilot.pause()
        await pilot.press("f6")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmDialog)
        assert all(c[0] != "export" for c in fake_engine.calls)
        await pilot.press("f5")
        await settle(app)
        await pilot.pause()
        assert ("export", (False,)) in fake_engine.calls
        assert isinstance(screen.query_one(ConfigForm).section.embedder_repo, str)


async def test_engine_error_becomes_a_notification_with_the_fix(tmp_path, fake_engine, docs):
    from ragtune.engine.core.errors import InputError

    fake_engine.fail["discover"] = InputError(
        "folder not found", where="docs/missing", hint="check the path"
    )
    app = make_app(tmp_path, fake_engine, browse_root=docs)
    async with app.run_test(size=SIZE) as pilot:
        app.goto("sources")
        await pilot.pause()
        app.screen.toggle(docs / "notes.md")
        await pilot.press("f5")
        await settle(app)
        await pilot.pause()
        notes = [n.message for n in app._notifications]
        assert any(
            "docs/missing: folder not found" in m and "fix: check the path" in m for m in notes
        )


async def test_help_and_palette_commands(tmp_path, fake_engine):
    app = make_app(tmp_path, fake_engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("f1")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)
        from ragtune.tui.commands import WizardCommands

        titles = [t for t, _, _ in WizardCommands(app.screen)._commands()]
        assert "Go to step 7: Train" in titles and "Theme: high-contrast" in titles
        app.goto("results")
        await pilot.pause()
        assert app.current_mode == "results"


def test_cost_table_formats_money_and_unknown_prices():
    from rich.console import Console

    from ragtune.engine.generate.llm_cost import CostEstimate
    from ragtune.tui.screens.llm import cost_table

    console = Console(width=80, record=True)
    console.print(cost_table(CostEstimate(212, 98_000, 61_000, 1234.5, "price map")))
    console.print(cost_table(CostEstimate(3, 10, 10, None, "")))
    text = console.export_text()
    assert "$1,234.50" in text and "~98,000" in text and "unknown" in text
