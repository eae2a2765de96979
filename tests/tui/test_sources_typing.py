"""Text typed or pasted on the Sources step's file tree lands in the path field whole and in
order, however fast it comes: a paste without bracketed paste (or tmux send-keys) delivers a
burst of keys, and the keys that reach the app before the focus has moved still go to the tree.

The keys are posted to the app as the terminal driver posts them (several before the app has
handled the first); the engine is the real one, since enter scans nothing but picks a real path.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from test_app_flow import make_app
from test_inputs_flow import new_run, text_of
from textual import events
from textual.widgets import DataTable, Input, Static

from ragtune.tui.app import RagtuneApp
from ragtune.tui.engine_client import EngineClient
from ragtune.tui.screens.sources import PickTree
from tests.test_pipeline import write_docs

WIDE = (120, 36)


def burst(app: RagtuneApp, text: str) -> None:
    """Keys as the driver posts a burst: all queued before the app handles the first."""
    for char in text:
        app.post_message(events.Key(char, char))


async def on_sources(tmp_path: Path, pilot, app: RagtuneApp) -> PickTree:
    await new_run(app, pilot, "handbook")
    tree = app.screen.query_one(PickTree)
    assert app.focused is tree, "the step opens on the tree"
    return tree


async def test_a_burst_of_keys_on_the_tree_lands_whole_in_the_path_field(tmp_path):
    docs = tmp_path / "elsewhere" / "docs"
    write_docs(docs)
    app = make_app(tmp_path, EngineClient())
    async with app.run_test(size=WIDE) as pilot:
        await on_sources(tmp_path, pilot, app)
        burst(app, str(docs))
        await pilot.pause()
        field = app.screen.query_one("#path-input", Input)
        assert field.value == str(docs), "no key lost or reordered in the hand-over"
        assert app.focused is field
        await pilot.press("enter")
        await pilot.pause()
        assert "picked: elsewhere/docs" in text_of(app.screen.query_one("#picked", Static))


async def test_a_burst_that_arrives_in_pieces_keeps_every_key_in_order(tmp_path):
    """The driver thread posts a burst key by key, so on a busy machine the app starts on
    the first key before the rest are posted: the rest arrive at each point of the hand-over
    (in the tree's queue, on the way up to the screen, after the focus moved)."""
    app = make_app(tmp_path, EngineClient())
    async with app.run_test(size=WIDE) as pilot:
        tree = await on_sources(tmp_path, pilot, app)
        field = app.screen.query_one("#path-input", Input)
        for turns in range(16):
            field.value = ""
            tree.focus()
            await pilot.pause()
            burst(app, "/do")
            for _ in range(turns):  # event-loop turns between the pieces
                await asyncio.sleep(0)
            burst(app, "cs/")
            for _ in range(turns):
                await asyncio.sleep(0)
            burst(app, "more")
            await pilot.pause()
            assert (field.value, app.focused) == ("/docs/more", field), f"{turns} turns apart"


async def test_a_bracketed_paste_on_the_tree_goes_to_the_path_field(tmp_path):
    docs = tmp_path / "docs"
    write_docs(docs)
    app = make_app(tmp_path, EngineClient())
    async with app.run_test(size=WIDE) as pilot:
        await on_sources(tmp_path, pilot, app)
        app.post_message(events.Paste(f"'{docs}'\nsecond line"))
        burst(app, "/x")  # typed on straight after the paste
        await pilot.pause()
        field = app.screen.query_one("#path-input", Input)
        assert field.value == f"'{docs}'/x", "the first line, as the field takes a paste"
        assert app.focused is field
        field.value = f"'{docs}'"
        await pilot.press("enter")
        await pilot.pause()
        assert "picked: docs" in text_of(app.screen.query_one("#picked", Static))


async def test_the_tree_keeps_its_own_keys_and_other_widgets_keep_theirs(tmp_path):
    write_docs(tmp_path / "docs")
    app = make_app(tmp_path, EngineClient())
    async with app.run_test(size=WIDE) as pilot:
        tree = await on_sources(tmp_path, pilot, app)
        await pilot.press("down", "space")
        await pilot.pause()
        field = app.screen.query_one("#path-input", Input)
        assert app.focused is tree and field.value == "", "arrows and space stay on the tree"
        table = app.screen.query_one("#scan-table", DataTable)
        table.focus()
        await pilot.pause()
        burst(app, "abc")
        app.post_message(events.Paste("pasted"))
        await pilot.pause()
        assert field.value == "" and app.focused is table, "only the tree hands text over"
