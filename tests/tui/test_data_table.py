"""Tables redraw rows whose arrival widened a column (tui/widgets/data_table.py)."""

from __future__ import annotations

from textual.app import App, ComposeResult

from ragtune.tui.widgets.data_table import DataTable


class TableApp(App):
    CSS = "DataTable { width: 1fr; height: 1fr; }"

    def compose(self) -> ComposeResult:
        yield DataTable()


async def test_a_row_drawn_before_it_was_measured_is_redrawn_at_its_width() -> None:
    """A fixed-size table drawn between add_row and its next idle (a busy UI thread) kept
    the header's width for the new row: the Start step showed the run "handbook" as "han"."""
    app = TableApp()
    async with app.run_test(size=(60, 6)) as pilot:
        table = app.query_one(DataTable)
        table.add_column("run", key="run")
        table.add_column("ingest", key="ingest")
        await pilot.pause()
        table.add_row("handbook", "·", key="handbook")
        assert table.render_line(1).text.startswith(" han  ·")  # drawn before it was measured
        await pilot.pause()
        assert table.render_line(0).text.startswith(" run       ingest")
        assert table.render_line(1).text.startswith(" handbook  ·")


async def test_rows_that_widen_nothing_keep_their_drawing() -> None:
    app = TableApp()
    async with app.run_test(size=(60, 6)) as pilot:
        table = app.query_one(DataTable)
        table.add_column("run name", key="run")
        table.add_row("a", key="a")
        await pilot.pause()
        count = table._update_count
        table.add_row("b", key="b")
        await pilot.pause()
        assert table._update_count == count + 1  # add_row's own, none for measuring
        assert table.render_line(2).text.startswith(" b ")
