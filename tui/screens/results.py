"""Step 8: base vs fine-tuned per suite and Matryoshka dim, quality per reranker system, 'try a query'."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, Static, TabbedContent, TabPane

from engine.evaluate.results import RERANK_METRICS, Results, SuiteResult
from tui.messages import WorkResult
from tui.screens.base import WizardScreen
from tui.widgets.plots import GroupedBars

if TYPE_CHECKING:
    from engine.serve.ask import AskResult


def change_cell(base: float | None, tuned: float | None) -> Text:
    """Relative change with a glyph as well as a colour, so it reads under NO_COLOR too."""
    if base is None or tuned is None:
        return Text("–", style="dim")
    diff = tuned - base
    rel = f"{diff / base * 100:+.1f}%" if base else f"{diff:+.4f}"
    if diff > 1e-9:
        return Text(f"▲ {rel}", style="green")
    if diff < -1e-9:
        return Text(f"▼ {rel}", style="red")
    return Text(f"= {rel}", style="dim")


SUITE_COLUMNS = ("dim", "metric", "base", "base+rot", "tuned", "change")
RR_COLUMNS = ("candidates", "system", *RERANK_METRICS, "ndcg vs retriever")


def fill_table(
    table: DataTable, headers: Sequence[str], rows: Sequence[Sequence[str | Text]]
) -> None:
    """Replace a table's columns and rows, each column as wide as its widest cell.

    DataTable sizes auto-width columns on idle but keeps the header it already drew, so a
    table filled after the first paint showed a squeezed header until the next redraw.
    Columns made with their final width are drawn right the first time.
    """
    table.clear(columns=True)
    for i, header in enumerate(headers):
        cells = [
            Text(c).cell_len if isinstance(c, str) else c.cell_len for c in (r[i] for r in rows)
        ]
        table.add_column(header, width=max([len(header), *cells]))
    table.add_rows(rows)


class ResultsScreen(WizardScreen):
    STEP = "results"
    HEADING = "Results: did fine-tuning help?"
    HELP = (
        "Held-out: queries from chunks that were never trained on. Benchmark: your own labelled "
        "questions (eval.benchmark), when set. Each row is one metric at one embedding size "
        "(Matryoshka dim): smaller dims are cheaper to store and search. ▲ = the fine-tuned "
        "model is better. Reranker: ndcg/mrr of the retriever alone, the reranker and the fused "
        "score. Try a query: base and fine-tuned side by side on your own question."
    )
    DEFAULT_CSS = """
    ResultsScreen TabbedContent { height: 1fr; }
    ResultsScreen #emb-pane > Horizontal { height: 1fr; }
    ResultsScreen #emb-table { width: auto; max-width: 72%; }
    ResultsScreen #dim-chart { width: 1fr; min-width: 22; max-width: 60; }
    ResultsScreen .suite-title { height: 1; color: $text-muted; }
    ResultsScreen #rr-title { height: auto; max-height: 4; }
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
        self.results = Results()

    def compose_body(self) -> ComposeResult:
        with TabbedContent(id="results-tabs"):
            with TabPane("Held-out", id="emb-pane"), Vertical():
                yield Static("", id="heldout-title", classes="suite-title")
                with Horizontal():
                    yield DataTable(id="emb-table", zebra_stripes=True, cursor_type="row")
                    yield GroupedBars(id="dim-chart")
            with TabPane("Benchmark", id="bench-pane"), Vertical():
                yield Static("", id="bench-title", classes="suite-title")
                yield DataTable(id="bench-table", zebra_stripes=True, cursor_type="row")
            with TabPane("Reranker", id="rr-pane"), Vertical():
                yield Static("", id="rr-title", classes="suite-title")
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
        for table_id in ("#emb-table", "#bench-table"):
            self.query_one(table_id, DataTable).add_columns(*SUITE_COLUMNS)
        self.query_one("#rr-table", DataTable).add_columns(*RR_COLUMNS)
        for side in ("base", "tuned"):
            self.query_one(f"#ask-{side}", DataTable).add_columns(
                "#", f"{side}: source", "score", "text"
            )

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
        ws = self.wizard.ensure_workspace()
        self.post_message(WorkResult("metrics", self.wizard.engine.results(ws)))

    def fill_suite(self, table: DataTable, title: Static, suite: SuiteResult | None) -> None:
        if suite is None:
            fill_table(table, SUITE_COLUMNS, [])
            return
        title.update(f"{suite.title}: {suite.queries} queries over {suite.corpus} passages")
        rows = [
            (
                str(row.dim),
                row.metric,
                "–" if row.base is None else f"{row.base:.4f}",
                "–" if row.base_rotated is None else f"{row.base_rotated:.4f}",
                "–" if row.tuned is None else f"{row.tuned:.4f}",
                change_cell(row.base, row.tuned),
            )
            for row in suite.rows()
        ]
        fill_table(table, SUITE_COLUMNS, rows)

    def show(self) -> None:
        res = self.results
        held = res.suite("held-out")
        bench = res.suite("benchmark")
        self.fill_suite(
            self.query_one("#emb-table", DataTable), self.query_one("#heldout-title", Static), held
        )
        if held is None:
            self.query_one("#heldout-title", Static).update(
                "no held-out evaluation (data.eval_fraction is 0, or evaluation has not run)"
            )
        self.fill_suite(
            self.query_one("#bench-table", DataTable), self.query_one("#bench-title", Static), bench
        )
        if bench is None:
            self.query_one("#bench-title", Static).update(
                "no benchmark: set eval.benchmark to a folder of labelled questions"
            )
        chart_suite = held or bench
        primary = res.primary_metric
        if chart_suite is not None:
            points = chart_suite.primary(primary)
            groups = {"base": [b for _, b, _ in points], "tuned": [t for _, _, t in points]}
            self.query_one(GroupedBars).show_grouped(
                [str(d) for d, _, _ in points], groups, f"{primary} by dim ({chart_suite.name})"
            )
        self.show_reranker()
        status = self.query_one("#results-status", Static)
        if res.empty:
            status.update("no evaluation yet: finish training (step 7) first")
        else:
            status.update(f"report: {self.wizard.ensure_workspace().report_path}")

    def show_reranker(self) -> None:
        rr = self.results.reranker
        table = self.query_one("#rr-table", DataTable)
        title = self.query_one("#rr-title", Static)
        table.clear()
        if rr is None:
            title.update("no reranker results: enable the reranker and finish the run")
            return
        if not rr.trained:
            title.update(Text(f"no reranker trained: {rr.reason}", style="yellow"))
            return
        if not rr.evaluated:
            title.update(
                "the reranker was trained but not evaluated (no held-out queries: "
                "set data.eval_fraction above 0)"
            )
            return
        head = "fresh head" if rr.fresh_head else "reranker checkpoint"
        title.update(
            f"{rr.queries} held-out queries, top {rr.top_k} of the retriever; base "
            f"{rr.base_model or '?'} ({head}); fused at w={rr.fusion_weight}"
            + (f"\n{rr.decision}" if rr.decision else "")
        )
        best = {m: max(r.metrics.get(m, float("-inf")) for r in rr.rows) for m in RERANK_METRICS}
        retriever = {
            r.candidates: r.metrics.get("ndcg@10") for r in rr.rows if r.kind == "retriever"
        }
        rows = []
        for row in rr.rows:
            cells = []
            for m in RERANK_METRICS:
                v = row.metrics.get(m)
                mark = "bold green" if v is not None and v == best[m] else ""
                cells.append(Text("–" if v is None else f"{v:.4f}", style=mark))
            base = retriever.get(row.candidates)
            vs = (
                Text("")
                if row.kind == "retriever"
                else change_cell(base, row.metrics.get("ndcg@10"))
            )
            rows.append((row.candidates, row.system, *cells, vs))
        fill_table(table, RR_COLUMNS, rows)

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
            self.results = message.value
            self.show()
            return
        if message.kind != "ask":
            return
        result: AskResult = message.value
        for side, hits in (("base", result.base_hits or []), ("tuned", result.hits)):
            table = self.query_one(f"#ask-{side}", DataTable)
            rows = [
                (
                    str(hit.rank),
                    hit.source.rsplit("/", 1)[-1],
                    f"{hit.score:.3f}",
                    " ".join(hit.text.split())[:60],
                )
                for hit in hits
            ]
            fill_table(table, ("#", f"{side}: source", "score", "text"), rows)
        how = "reranked" if result.reranked else "retriever only"
        notes = f" · {'; '.join(result.notes)}" if result.notes else ""
        self.query_one("#results-status", Static).update(
            f"top {len(result.hits)} chunks per model ({how}){notes}"
        )

    def worker_failed(self, worker) -> None:
        from tui.errors import friendly

        self.query_one("#results-status", Static).update(
            Text(f"✘ {worker.description} failed: {friendly(worker.error)}", style="red")
        )
