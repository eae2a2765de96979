"""Step 8: base vs fine-tuned per Matryoshka dim, the reranker table, and 'try a query'."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, Static, TabbedContent, TabPane

from tui.engine_client import AskResult
from tui.messages import WorkResult
from tui.metrics_view import Comparison, change, load_comparison
from tui.screens.base import WizardScreen
from tui.widgets.plots import BarChart


class ResultsScreen(WizardScreen):
    STEP = "results"
    HEADING = "Results: did fine-tuning help? (held-out queries, never trained on)"
    HELP = (
        "Each row is one metric at one embedding size (Matryoshka dim): smaller dims are cheaper "
        "to store and search. Green = the fine-tuned model is better. Try a query: base and "
        "fine-tuned retrievers side by side on your own question."
    )
    DEFAULT_CSS = """
    ResultsScreen TabbedContent { height: 1fr; }
    ResultsScreen #emb-pane > Horizontal { height: 1fr; }
    ResultsScreen #emb-table { width: 3fr; }
    ResultsScreen #dim-chart { width: 2fr; }
    ResultsScreen #ask-row { height: 1; }
    ResultsScreen #ask-input { width: 1fr; }
    ResultsScreen #ask-results { height: 1fr; }
    ResultsScreen #ask-results DataTable { width: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f5", "ask", "Ask", id="results.ask", tooltip="Search with base and tuned models"),
        Binding("f6", "reload", "Reload", id="results.reload", tooltip="Re-read metrics.json"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.comparison = Comparison()

    def compose_body(self) -> ComposeResult:
        with TabbedContent(id="results-tabs"):
            with TabPane("Retriever", id="emb-pane"), Horizontal():
                yield DataTable(id="emb-table", zebra_stripes=True, cursor_type="row")
                yield BarChart(id="dim-chart")
            with TabPane("Reranker", id="rr-pane"):
                yield DataTable(id="rr-table", zebra_stripes=True, cursor_type="row")
            with TabPane("Try a query", id="ask-pane"), Vertical():
                with Horizontal(id="ask-row"):
                    yield Input(
                        placeholder="a question your users would ask, then enter",
                        id="ask-input",
                        compact=True,
                    )
                with Horizontal(id="ask-results"):
                    yield DataTable(id="ask-base", zebra_stripes=True)
                    yield DataTable(id="ask-tuned", zebra_stripes=True)
        yield Static("", id="results-status", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#emb-table", DataTable).add_columns(
            "dim", "metric", "base", "tuned", "change"
        )
        for side in ("base", "tuned"):
            self.query_one(f"#ask-{side}", DataTable).add_columns(f"{side}: source", "score")
        self.action_reload()

    def on_screen_resume(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        self.load_worker()

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="results-load",
        description="Reading metrics",
    )
    def load_worker(self) -> None:
        """Off the event loop: without metrics.json this parses the whole events.jsonl."""
        ws = self.wizard.ensure_workspace()
        self.post_message(WorkResult("metrics", load_comparison(ws.metrics_path, ws.events_path)))

    def show(self) -> None:
        comp = self.comparison
        table = self.query_one("#emb-table", DataTable)
        table.clear()
        for dim, metric, base, tuned in comp.rows():
            rel, style = change(base, tuned)
            table.add_row(
                str(dim),
                metric,
                "–" if base is None else f"{base:.4f}",
                "–" if tuned is None else f"{tuned:.4f}",
                Text(rel, style=style),
            )
        dims = comp.dims
        primary = self.wizard.cfg.eval.primary_metric
        groups = {
            "base": [comp.base.get(d, {}).get(primary, 0.0) for d in dims],
            "tuned": [comp.tuned.get(d, {}).get(primary, 0.0) for d in dims],
        }
        self.query_one(BarChart).show_grouped([str(d) for d in dims], groups, f"{primary} by dim")
        rr = self.query_one("#rr-table", DataTable)
        rr.clear(columns=True)
        metric_names = sorted({m for values in comp.reranker.values() for m in values})
        if metric_names:
            rr.add_columns("ranking", *metric_names)
            best = {
                m: max(v.get(m, float("-inf")) for v in comp.reranker.values())
                for m in metric_names
            }
            for label, values in comp.reranker.items():
                cells = []
                for m in metric_names:
                    v = values.get(m)
                    style = "bold green" if v is not None and v == best[m] else ""
                    cells.append(Text("–" if v is None else f"{v:.4f}", style=style))
                rr.add_row(label.replace("_", " "), *cells)
        status = self.query_one("#results-status", Static)
        if comp.empty:
            status.update("no evaluation yet: finish training (step 7) first")
        else:
            status.update(
                f"{len(dims)} dims evaluated; report: {self.wizard.ensure_workspace().report_path}"
            )

    # -- try a query -----------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "ask-input":
            self.action_ask()

    def action_ask(self) -> None:
        tabs = self.query_one(TabbedContent)
        question = self.query_one("#ask-input", Input).value.strip()
        if tabs.active != "ask-pane" or not question:
            tabs.active = "ask-pane"
            self.query_one("#ask-input", Input).focus()
            return
        self.query_one("#results-status", Static).update("searching…")
        self.ask_worker(question)

    @work(thread=True, exclusive=True, exit_on_error=False, group="ask", description="Query")
    def ask_worker(self, question: str) -> None:
        ws = self.wizard.ensure_workspace()
        self.post_message(WorkResult("ask", self.wizard.engine.ask(ws, question, top_k=5)))

    def on_work_result(self, message: WorkResult) -> None:
        if message.kind == "metrics":
            if message.value != self.comparison or self.comparison.empty:
                self.comparison = message.value
                self.show()
            return
        if message.kind != "ask":
            return
        result: AskResult = message.value
        for side in ("base", "tuned"):
            table = self.query_one(f"#ask-{side}", DataTable)
            table.clear()
            for source, score, _text in result.ranked.get(side, []):
                table.add_row(source.rsplit("/", 1)[-1], f"{score:.3f}")
        self.query_one("#results-status", Static).update("top 5 chunks per model")
