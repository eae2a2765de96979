"""The Results step's "Retrievers" table: BM25, dense and hybrid per size, and the recommendation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from ragtune.engine.evaluate.results import Recommendation, SuiteResult
from ragtune.tui.widgets.data_table import DataTable

MARKS = {"gain": "▲", "loss": "▼"}
# Shorter than the engine's labels, so four sizes fit in 80 columns.
SHORT = {"base_rotated": "base + rotation", "tuned": "fine-tuned", "hybrid_tuned": "hybrid tuned"}


def cell(
    value: float | None,
    verdict: str | None,
    mean: float | None,
    colours: Mapping[str, Style | str] | None = None,
) -> Text:
    """``0.795 +0.008▲``: the metric, its change against the dense base, and ▲/▼ only where
    the 95% interval excludes zero (no mark = within the queries' noise).

    ``colours``: the theme's for "gain" and "loss" (Rich text, which a right-aligned table
    cell needs, cannot name a theme variable)."""
    if value is None:
        return Text("")
    text = Text(f"{value:.3f}", justify="right")
    if mean is not None:
        mark = MARKS.get(verdict or "", " ")
        colour = (colours or {}).get(verdict or "") if verdict in MARKS else None
        text.append(f" {mean:+.3f}{mark}", style=colour or "dim")
    return text


def recommendation_text(rec: Recommendation | None) -> Text:
    if rec is None:
        return Text("no recommendation yet: evaluation has not run", style="dim")
    text = Text("ship: ", style="bold")
    text.append(rec.label, style="bold")
    gain = rec.vs_base
    if gain is not None:
        text.append(
            f" · nDCG@10 {rec.ndcg:.3f} at {rec.dim}, {gain.mean:+.3f} "
            f"[{gain.low:+.3f}, {gain.high:+.3f}] vs dense base"
        )
    text.append(f" · on {rec.queries} {rec.query_source}", style="dim")
    for caveat in rec.caveats:
        text.append(f"\nnote: {caveat}", style="dim")
    return text


class RetrieverTable(Vertical):
    """Rows are retrievers, columns Matryoshka sizes; fits 80 columns at four sizes."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"retriever-table--gain", "retriever-table--loss"}
    DEFAULT_CSS = """
    RetrieverTable > .retriever-table--gain { color: $success; }
    RetrieverTable > .retriever-table--loss { color: $error; }
    RetrieverTable { height: auto; }
    RetrieverTable > DataTable { height: auto; max-height: 9; width: auto; }
    RetrieverTable > .retriever-caption { height: auto; max-height: 2; color: $text-muted; }
    RetrieverTable > .retriever-pick { height: auto; max-height: 4; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", classes="retriever-caption")
        yield DataTable(zebra_stripes=True, cursor_type="row", id="retriever-table")
        yield Static("", classes="retriever-pick")

    def show(self, suite: SuiteResult | None, rec: Recommendation | None = None) -> None:
        """Fill from the engine's typed results (``Results.suite(...)``, ``.recommendation``)."""
        table = self.query_one(DataTable)
        table.clear(columns=True)
        caption = self.query_one(".retriever-caption", Static)
        rows = suite.retriever_rows() if suite is not None else []
        if suite is None or not rows:
            caption.update("no retriever comparison yet (BM25 and hybrid are measured by evaluate)")
            self.query_one(".retriever-pick", Static).update(recommendation_text(rec))
            return
        dims = sorted({d for r in rows for d in r.values}, reverse=True)
        caption.update(
            f"nDCG@10 on {suite.title}; change vs dense base, ▲▼ = beyond the 95% interval"
        )
        table.add_column("retriever", key="retriever")
        for d in dims:
            table.add_column(Text(str(d), justify="right"), key=str(d))
        colours = {
            verdict: self.get_component_rich_style(f"retriever-table--{verdict}", partial=True)
            for verdict in MARKS
        }
        for row in rows:
            cells = []
            for d in dims:
                g = row.changes.get(d)
                cells.append(
                    cell(
                        row.values.get(d),
                        g.verdict if g else None,
                        g.mean if g else None,
                        colours,
                    )
                )
            label = Text(
                SHORT.get(row.retriever, row.label),
                style="bold" if rec and rec.retriever == row.retriever else "",
            )
            table.add_row(label, *cells, key=row.retriever)
        self.query_one(".retriever-pick", Static).update(recommendation_text(rec))
