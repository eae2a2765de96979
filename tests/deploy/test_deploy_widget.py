"""The wizard's deploy table, fed by the typed reader of a real run's metrics.json, at 80 and 120 columns."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.widgets import DataTable, Static

from ragtune.engine.deploy.results import DeployResults, read_deploy
from ragtune.tui.widgets.deploy_table import DeployTable


class _Host(App):
    def __init__(self, results: DeployResults) -> None:
        super().__init__()
        self.results = results

    def compose(self) -> ComposeResult:
        yield DeployTable(self.results)


def _text(widget: Static) -> str:
    return str(widget.render())


@pytest.mark.slow
@pytest.mark.parametrize("size", [(80, 40), (120, 40)])
async def test_deploy_table_shows_every_row_and_fits(deploy_run, size: tuple[int, int]) -> None:
    ws, _ = deploy_run
    results = read_deploy(ws.metrics_path)
    suite = results.deciding
    assert suite is not None
    app = _Host(results)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        table = app.query_one("#deploy-rows", DataTable)
        assert table.row_count == len(suite.rows)
        # Every column is on screen: the table is no wider than the terminal.
        assert table.virtual_size.width <= size[0]
        sug = results.suggestion
        marked = [i for i in range(table.row_count) if "◀" in str(table.get_row_at(i)[-1])]
        assert len(marked) == 1
        row = table.get_row_at(marked[0])
        assert (int(str(row[0])), str(row[1])) == (sug.dim, sug.precision)
        assert "suggested" in _text(app.query_one("#deploy-suggestion", Static))
        assert "Interpolation with the base" in _text(
            app.query_one("#deploy-interpolation", Static)
        )

        # Attributes down: an empty result says what is missing instead of an empty grid.
        app.query_one(DeployTable).show(DeployResults([], None, None))
        await pilot.pause()
        assert not table.display
        assert "not measured yet" in _text(app.query_one("#deploy-title", Static))
