"""What a new user types before training: kept across quitting, paths from anywhere, readable
errors where they look, and the sample review as it was saved.

The real engine is used wherever the screen shows engine data (scans, sample rows); the fake
engine only injects a failing or slow dataset preview.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest
from test_app_flow import make_app, settle
from test_keys_and_focus import screen_lines
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Input, Select, Static, TextArea

from ragtune.engine.config import load_config
from ragtune.engine.core.errors import InputError
from ragtune.engine.generate.review import load_review
from ragtune.tui.app import RagtuneApp
from ragtune.tui.engine_client import EngineClient
from ragtune.tui.screens.confirm import ConfirmDialog
from ragtune.tui.screens.help import HelpScreen
from ragtune.tui.screens.samples import RowEditor
from ragtune.tui.screens.sources import PickTree
from ragtune.tui.screens.training_settings import TrainingSettingsScreen
from tests.test_pipeline import write_docs

SMALL = (80, 24)
WIDE = (120, 36)
REPO = Path(__file__).resolve().parents[2]


def text_of(widget: Static) -> str:
    return str(widget.render())


def docs_with_a_broken_pdf(root: Path) -> Path:
    docs = root / "elsewhere" / "manuals"
    write_docs(docs)
    (docs / "broken.pdf").write_bytes(b"not a pdf at all")
    return docs


async def new_run(app: RagtuneApp, pilot, name: str) -> None:
    app.screen.query_one("#run-name", Input).value = name
    await pilot.press("f5")
    await settle(app)  # the model Hub probe, in a worker
    await pilot.pause()
    assert app.current_mode == "sources"


async def type_path(app: RagtuneApp, pilot, text: str) -> None:
    field = app.screen.query_one("#path-input", Input)
    field.focus()
    field.value = text
    await pilot.press("enter")
    await pilot.pause()


# -- 1. choices survive quitting -------------------------------------------------------


async def test_quit_before_training_keeps_every_choice_but_the_key(tmp_path):
    launch = tmp_path / "launch"
    launch.mkdir()
    docs = docs_with_a_broken_pdf(tmp_path)
    app = make_app(tmp_path, EngineClient(), browse_root=launch)
    async with app.run_test(size=WIDE) as pilot:
        await new_run(app, pilot, "handbook")
        await type_path(app, pilot, str(docs))
        await pilot.press("f3")
        await pilot.pause()
        assert app.current_mode == "chunking"
        ws = app.workspace
        saved = load_config(ws.config_path)
        assert saved.sources.paths == [str(docs)], "a step change saves config.toml"
        app.goto("llm")
        await pilot.pause()
        screen = app.screen
        screen.query_one("#gen-form-generator", Select).value = "litellm"
        screen.query_one("#llm-form-model", Input).value = "openai/gpt-4o-mini"
        screen.query_one("#llm-form-api_key_env", Input).value = "OPENAI_API_KEY"
        screen.query_one("#api-key", Input).value = "sk-typed-secret-42"
        app.goto("settings")
        await pilot.pause()
        app.screen.query_one("#emb-form-epochs", Input).value = "3"
        app.screen.query_one("#emb-form-warmup_ratio", Input).value = "0.2"
        # Ctrl+Q straight after typing: the field's own messages have not been handled yet.
        await pilot.press("ctrl+q")
    assert app.return_code == 0
    text = ws.config_path.read_text()
    assert "sk-typed-secret-42" not in text, "the typed key is never written"
    cfg = load_config(ws.config_path)
    assert cfg.embedder.epochs == 3.0 and cfg.embedder.warmup_ratio == pytest.approx(0.2)
    assert cfg.generation.llm.model == "openai/gpt-4o-mini"
    assert cfg.generation.llm.api_key_env == "OPENAI_API_KEY"

    again = make_app(tmp_path, EngineClient(), browse_root=launch)
    async with again.run_test(size=WIDE) as pilot:
        await settle(again)  # the run list is read in a worker
        await pilot.pause()
        again.screen.query_one("#runs", DataTable).focus()
        await pilot.press("f6")
        await pilot.pause(0.3)
        assert again.current_mode == "sources"
        assert again.workspace.root == ws.root
        picked = text_of(again.screen.query_one("#picked", Static))
        assert str(docs) in picked and "nothing yet" not in picked
        again.goto("llm")
        await pilot.pause()
        assert again.screen.query_one("#llm-form-model", Input).value == "openai/gpt-4o-mini"
        assert again.screen.query_one("#api-key", Input).value == ""
        again.goto("settings")
        await pilot.pause()
        assert again.screen.query_one("#emb-form-epochs", Input).value == "3.0"


async def test_config_is_not_written_while_a_run_holds_the_workspace(tmp_path, docs):
    app = make_app(tmp_path, EngineClient(), browse_root=docs)
    async with app.run_test(size=WIDE) as pilot:
        await new_run(app, pilot, "busy")
        ws = app.workspace
        app.screen.toggle(docs / "handbook")
        app.goto("chunking")
        await pilot.pause()
        before = ws.config_path.read_text()
        with ws.lock():
            app.cfg.embedder.epochs = 5.0
            app.goto("llm")
            await pilot.pause()
            assert ws.config_path.read_text() == before, "the running pipeline owns the file"
            await pilot.press("ctrl+s")
            await pilot.pause()
            notes = [n.message for n in app._notifications]
            assert any("is working in this workspace" in m for m in notes), notes
        app.goto("settings")
        await pilot.pause()
        assert load_config(ws.config_path).embedder.epochs == 5.0, "saved once it is free"


async def test_quit_asks_when_the_config_cannot_be_saved(tmp_path, docs):
    app = make_app(tmp_path, EngineClient(), browse_root=docs)
    async with app.run_test(size=SMALL) as pilot:
        await new_run(app, pilot, "readonly")
        ws = app.workspace
        ws.config_path.unlink()
        ws.config_path.mkdir()  # writing config.toml now fails
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog), "not quitting silently without saving"
        question = text_of(app.screen.query_one("#question", Static))
        assert "config.toml" in question and "Quit anyway" in question
        await pilot.press("n")
        await pilot.pause()
        assert app.is_running and app.current_mode == "sources"


async def test_quit_help_says_what_is_kept(tmp_path, fake_engine):
    app = make_app(tmp_path, fake_engine)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        lines = "\n".join(screen_lines(app))
        assert "config.toml" in lines and "API key" in lines


# -- 2. sources from anywhere, readable scan results ---------------------------------


async def test_sources_focus_the_tree_and_take_typed_paths_from_anywhere(tmp_path):
    launch = tmp_path / "launch"
    (launch / "sub").mkdir(parents=True)
    docs = docs_with_a_broken_pdf(tmp_path)
    app = make_app(tmp_path, EngineClient(), browse_root=launch)
    async with app.run_test(size=SMALL) as pilot:
        app.goto("sources")
        await pilot.pause(0.3)
        tree = app.screen.query_one(PickTree)
        assert app.focused is tree, "arrow keys act on the tree at once, no Tab first"
        line = tree.cursor_line
        await pilot.press("down")
        await pilot.pause()
        assert tree.cursor_line == line + 1

        await type_path(app, pilot, "~/surely/not/here-42")
        note = text_of(app.screen.query_one("#path-note", Static))
        assert "no file or folder at" in note and "surely/not/here-42" in note
        assert any("no file or folder at" in row for row in screen_lines(app)), "on screen"
        assert app.cfg.sources.paths == []

        await type_path(app, pilot, f"'{docs}'")  # pasted with quotes
        assert app.cfg.sources.paths == [str(docs)]
        assert Path(tree.path) == docs.parent, "the tree moved to show the picked folder"
        assert "picked" in text_of(app.screen.query_one("#path-note", Static))
        assert app.screen.query_one("#path-input", Input).value == ""

        await pilot.press("f6")
        await pilot.pause()
        assert Path(tree.path) == docs.parent.parent
        app.screen.query_one("#path-input", Input).value = str(launch / "sub")
        await pilot.press("f7")
        await pilot.pause()
        assert Path(tree.path) == launch / "sub"

        await type_path(app, pilot, str(REPO / "pyproject.toml"))
        note = text_of(app.screen.query_one("#path-note", Static))
        assert "not a document ragtune reads" in note


@pytest.mark.parametrize("size", [SMALL, WIDE], ids=["80x24", "120x36"])
async def test_scan_status_and_reasons_read_at_80_and_120_columns(tmp_path, size):
    docs = docs_with_a_broken_pdf(tmp_path)
    app = make_app(tmp_path, EngineClient(), browse_root=tmp_path)
    app.cfg.sources.paths = [str(docs)]
    async with app.run_test(size=size) as pilot:
        app.goto("sources")
        await pilot.pause()
        await pilot.press("f5")
        await settle(app)
        await pilot.pause(0.3)
        screen = app.screen
        reason = screen.last_scan.errors[0][1]
        assert "PDF" in reason, reason
        lines = screen_lines(app)
        table = screen.query_one("#scan-table", DataTable)
        top = table.region.y
        assert "status" in lines[top], lines[top]
        assert "✘" in lines[top + 1], "the problem is listed first, with its mark visible"
        detail = screen.query_one("#scan-detail", Static)
        assert detail.region.height > 0 and detail.region.bottom <= size[1]
        shown = "".join(
            "".join(line[detail.region.x : detail.region.right].split())
            for line in lines[detail.region.y : detail.region.bottom]
        )
        assert "elsewhere/manuals/broken.pdf" in shown
        assert "".join(reason.split()) in shown, (reason, shown)
        table.focus()
        await pilot.press("down")  # an ok file: its path, whole, below the table
        await pilot.pause()
        assert text_of(detail).endswith(": ok")


# -- 3 and 4. the row editor, and edited rows after reopening ------------------------


def tiny_llm_free_app(tmp_path: Path, tiny_bert: Path) -> RagtuneApp:
    from test_real_engine import tiny_run_config

    app = make_app(tmp_path, EngineClient())
    app.state.cfg = tiny_run_config(tmp_path, tiny_bert, reranker=False)
    return app


async def test_row_editor_keeps_multi_line_text_inside_its_borders(tmp_path, tiny_bert):
    """Row 4 of the walkthrough: a question holding a chunk's heading and a line break (as
    LLM-free questions did), and a long answer of several paragraphs (as LLMs write)."""
    app = tiny_llm_free_app(tmp_path, tiny_bert)
    async with app.run_test(size=SMALL) as pilot:
        app.goto("samples")
        await pilot.pause()
        await pilot.press("f5")
        await settle(app)
        await pilot.pause()
        entry = app.state.review[3]
        heading = "# Forklift and Mechanical Handling Equipment Safety Rules"
        question = heading + "\n\nDocument reference HS-MHE-003, revision 8."
        answer = "\n\n".join([entry.row.context] * 3)
        entry.row = replace(entry.row, question=question, response=answer)
        screen = app.screen
        screen.render_rows()
        table = screen.query_one("#sample-table", DataTable)
        assert str(table.get_row_at(3)[1]).startswith(heading + " Document reference")
        table.move_cursor(row=3)
        await pilot.press("enter")
        await pilot.pause()
        editor = app.screen
        assert isinstance(editor, RowEditor)
        box = editor.query_one(VerticalScroll).content_region
        assert editor.query_one("#edit-question", TextArea).text == question, "nothing cut"
        assert editor.query_one("#edit-response", TextArea).text == answer
        for area in editor.query(TextArea):  # the dialog scrolls at 80x24: columns are what broke
            assert box.x <= area.region.x and area.region.right <= box.right, (area.id, box)
        lines = screen_lines(app)
        assert not any(line.startswith("Document reference") for line in lines), lines
        assert any("Document reference HS-MHE-003" in line for line in lines)
        area = editor.query_one("#edit-question", TextArea)
        area.focus()
        area.text = ""
        await pilot.press(*"who confirms", "enter", *"a dock door entry")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.state.review[3].row.question == "who confirms\na dock door entry"
        assert app.state.review[3].status == "edited"
        assert load_review(app.workspace)[3].row.response == answer


async def test_reopened_run_shows_edited_rows_with_their_edited_text(tmp_path, tiny_bert):
    app = tiny_llm_free_app(tmp_path, tiny_bert)
    async with app.run_test(size=WIDE) as pilot:
        app.goto("samples")
        await pilot.pause()
        await pilot.press("f5")
        await settle(app)
        await pilot.pause()
        await pilot.press("down", "enter")
        await pilot.pause()
        app.screen.query_one("#edit-question", TextArea).text = "who confirms a dock door entry"
        await pilot.press("ctrl+s")
        await pilot.pause()
        await pilot.press("ctrl+q")
    ws = app.workspace
    assert load_review(ws)[1].row.question == "who confirms a dock door entry"

    again = make_app(tmp_path, EngineClient(), workspace=ws.root)
    async with again.run_test(size=WIDE) as pilot:
        again.goto("samples")
        await pilot.pause()
        table = again.screen.query_one("#sample-table", DataTable)
        assert table.row_count > 1, "the saved sample is shown before sampling again"
        assert str(table.get_row_at(1)[0]) == "✎"
        assert str(table.get_row_at(1)[1]) == "who confirms a dock door entry"
        await pilot.press("f5")
        await settle(again)
        await pilot.pause()
        cells = [table.get_row_at(n) for n in range(table.row_count)]
        edited = [c for c in cells if str(c[0]) == "✎"]
        assert [str(c[1]) for c in edited] == ["who confirms a dock door entry"]
        assert any("who confirms a dock door entry" in line for line in screen_lines(again))


# -- 5. training settings --------------------------------------------------------------


async def benchmark_checked(app: RagtuneApp, pilot) -> None:
    """Past the pause in typing that starts the benchmark folder's check, and the check done."""
    await pilot.pause(TrainingSettingsScreen.BENCHMARK_DELAY_S + 0.1)
    await settle(app)
    await pilot.pause()


async def test_settings_offer_schedule_length_and_benchmark_fields_at_full_width(tmp_path):
    app = make_app(tmp_path, EngineClient(), browse_root=REPO)
    async with app.run_test(size=WIDE) as pilot:
        app.goto("settings")
        await pilot.pause()
        screen = app.screen
        for name in ("max_seq_length", "warmup_ratio"):
            assert screen.query_one(f"#emb-form-{name}", Input)
        assert screen.query_one("#emb-form-scheduler", Select).value == "cosine"
        model = screen.query_one("#emb-form-base_model", Input)
        assert model.region.width >= 80, "fields use the width of the screen"
        assert any(app.cfg.embedder.base_model in line for line in screen_lines(app))

        screen.query_one("#emb-form-epochs", Input).value = "two"
        screen.query_one("#emb-form-learning_rate", Input).value = "fast"
        screen.query_one("#emb-form-max_seq_length", Input).value = "-5"
        await pilot.pause()
        epochs = text_of(screen.query_one("#err-emb-form-epochs", Static))
        assert "e.g. 1.0" in epochs and "2e-5" not in epochs, epochs
        assert "e.g. 2e-05" in text_of(screen.query_one("#err-emb-form-learning_rate", Static))
        assert ">= 0" in text_of(screen.query_one("#err-emb-form-max_seq_length", Static))
        screen.query_one("#emb-form-epochs", Input).value = "2"
        screen.query_one("#emb-form-learning_rate", Input).value = "3e-5"
        screen.query_one("#emb-form-max_seq_length", Input).value = "256"
        screen.query_one("#emb-form-scheduler", Select).value = "linear"
        await pilot.pause()
        assert app.cfg.embedder.max_seq_length == 256 and app.cfg.embedder.scheduler == "linear"

        bench = screen.query_one("#eval-form-benchmark", Input)
        bench.value = "examples/no_such_eval"
        await benchmark_checked(app, pilot)
        err = text_of(screen.query_one("#err-eval-form-benchmark", Static))
        assert "no folder at" in err and str(REPO / "examples/no_such_eval") in err
        await pilot.press("f3")
        await pilot.pause()
        assert app.current_mode == "settings", "a missing benchmark folder blocks the step"
        bench.value = "examples/handbook"
        await benchmark_checked(app, pilot)
        err = text_of(screen.query_one("#err-eval-form-benchmark", Static))
        assert "not a labelled folder" in err and "queries.jsonl" in err
        bench.value = "examples/handbook_eval"
        await benchmark_checked(app, pilot)
        assert text_of(screen.query_one("#err-eval-form-benchmark", Static)) == ""
        assert app.cfg.eval.benchmark == str(REPO / "examples" / "handbook_eval")


async def test_choosing_a_preset_then_f5_applies_it_once(tmp_path):
    app = make_app(tmp_path, EngineClient())
    async with app.run_test(size=WIDE) as pilot:
        app.new_run("presets")
        app.goto("settings")
        await pilot.pause()
        screen = app.screen
        screen.query_one("#preset", Select).value = "quick CPU check"
        await pilot.pause()
        note = screen.query_one("#preset-note", Static)
        assert "applied" in text_of(note) and "embedder.precision" in text_of(note)
        count = len(app._notifications)
        await pilot.press("f5")
        await pilot.pause()
        assert "already applied: nothing to change" in text_of(note)
        assert len(app._notifications) == count, "no second toast"


# -- 6. LLM step ----------------------------------------------------------------------


async def test_cost_estimate_without_a_model_says_no_llm_and_calls_nothing(tmp_path, docs):
    app = make_app(tmp_path, EngineClient())
    app.cfg.sources.paths = [str(docs)]
    async with app.run_test(size=SMALL) as pilot:
        app.goto("llm")
        await pilot.pause()
        await pilot.press("f6")
        await settle(app)
        await pilot.pause()
        cost = text_of(app.screen.query_one("#llm-cost", Static))
        assert "no LLM model is set" in cost and "no calls" in cost, cost
        assert "price" not in cost
        assert not app.ensure_workspace().chunks_path.exists(), "nothing was chunked or sent"


async def test_api_key_field_is_drawn_as_a_field(tmp_path, fake_engine):
    app = make_app(tmp_path, fake_engine)
    async with app.run_test(size=SMALL) as pilot:
        app.goto("llm")
        await pilot.pause()
        key = app.screen.query_one("#api-key", Input)
        assert key.region.height == 3 and key.styles.border_top[0] not in ("", "none")
        row = screen_lines(app)[key.region.y]
        assert "▔" in row[key.region.x : key.region.right], "a border above the field"


# -- 7. dataset errors stay on the tab ------------------------------------------------


async def test_dataset_error_stays_on_the_tab_and_waiting_shows_progress(tmp_path, fake_engine):
    release = threading.Event()
    failing = type(fake_engine)()

    def slow_failure(cfg, n: int = 5):
        release.wait(10)
        raise InputError(
            "the Hugging Face Hub cannot be reached and dataset 'someuser/some-dataset' is "
            "not in the local cache",
            where="sources.dataset",
            hint="download it where the Hub is reachable and point sources.dataset at it",
        )

    failing.preview_dataset = slow_failure  # type: ignore[method-assign]
    app = make_app(tmp_path, failing)
    async with app.run_test(size=SMALL) as pilot:
        app.goto("sources")
        await pilot.pause()
        screen = app.screen
        screen.query_one("TabbedContent").active = "dataset-pane"
        screen.query_one("#ds-dataset", Input).value = "someuser/some-dataset"
        await pilot.press("f5")
        await pilot.pause(1.2)
        status = screen.query_one("#ds-status", Static)
        assert "reading 'someuser/some-dataset'…" in text_of(status)
        assert " 1 s" in text_of(status) or " 2 s" in text_of(status), "seconds tick"
        release.set()
        for _ in range(100):  # settle() would re-raise the worker's error
            await pilot.pause(0.05)
            if "✘" in text_of(status):
                break
        error = text_of(status)
        assert "✘ could not read 'someuser/some-dataset'" in error
        assert "not in the local cache" in error and "fix: download it" in error
        assert not app._notifications, "shown on the tab, not in a toast that goes away"
        await pilot.pause(1.5)
        assert text_of(status) == error, "it stays"
        assert any("could not read" in line for line in screen_lines(app))
