"""A DataTable that redraws its rows when measuring new rows widened a column.

Textual's DataTable measures rows added since it was last idle and widens its auto-width
columns then, but its line and cell caches are keyed by an update counter that this
measurement does not advance. A table of fixed size drawn between ``add_row`` and that
idle keeps the narrow drawing until something else redraws it: on a busy UI thread (a
training run beside it, a slow SSH link) the Start step showed a run named "handbook"
as "han". This table advances the counter when a measurement changed a column's width.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual.widgets import DataTable as _DataTable
from textual.widgets.data_table import RowKey


class DataTable(_DataTable):
    def _widths(self) -> list[int]:
        return [self._label_column.content_width] + [
            column.get_render_width(self) for column in self.columns.values()
        ]

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        before = self._widths()
        super()._update_dimensions(new_rows)
        if self._widths() != before:
            self._update_count += 1
            self.refresh()
