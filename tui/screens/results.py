"""Step 8: base vs fine-tuned per suite and Matryoshka dim, quality per reranker system, 'try a query'."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.style import Style
from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Static, TabbedContent, TabPane
from textual.worker import Worker, WorkerState

from ragtune.engine.evaluate.results import RERANK_METRICS, Results, SuiteResult
from ragtune.tui.screens.base import WizardScreen
from ragtune.tui.widgets.data_table import DataTable
from ragtune.tui.widgets.deploy_table import DeployTable
from ragtune.tui.widgets.plots import GroupedBars
from ragtune.tui.widgets.retriever_table import RetrieverTable
from ragtune.tui.widgets.text_entry import Input

if TYPE_CHECKING:
    from ragtune.engine.deploy.results import DeployResults
    from ragtune.engine.serve.ask import AskResult, Hit

CHART_MIN_WIDTH = 24
"""Narrower than this beside the table, the chart goes: it only repeats the table's numbers."""


def change_cell(
    base: float | None, tuned: float | None, colours: Mapping[str, Style | str] | None = None
) -> Text:
    """Relative change with a glyph as well as a colour, so it reads under NO_COLOR too.

    ``colours``: the theme's for "gain" and "loss" (see ``ResultsScreen.colours``)."""
    if base is None or tuned is None:
        return Text("–", style="dim", justify="right")
    diff = tuned - base
    rel = f"{diff / base * 100:+.1f}%" if base else f"{diff:+.4f}"
    colours = colours or {}
    if diff > 1e-9:
        return Text(f"▲ {rel}", style=colours.get("gain", ""), justify="right")
    if diff < -1e-9:
        return Text(f"▼ {rel}", style=colours.get("loss", ""), justify="right")
    return Text(f"= {rel}", style="dim", justify="right")


def number_cell(value: float | None) -> Text:
    return Text("–" if value is None else f"{value:.4f}", justify="right")


def suite_headers(rotated: bool) -> tuple[Text, ...]:
    """The CLI's and the model card's columns, in their order: base, base + rotation,
    fine-tuned, then the change against base + rotation (what training added) first."""
    if not rotated:
        names = ("dim", "metric", "base", "fine-tuned", "vs base")
    else:
        names = (
            "dim",
            "metric",
            "base",
            "base +\nrotation",
            "fine-tuned",
            "vs base +\nrotation",
            "vs base",
        )
    return tuple(
        Text(("\n" + n) if rotated and "\n" not in n else n, justify="left" if i < 2 else "right")
        for i, n in enumerate(names)
    )


def suite_rows(
    suite: SuiteResult, rotated: bool, colours: Mapping[str, Style | str] | None = None
) -> list[tuple[str | Text, ...]]:
    rows: list[tuple[str | Text, ...]] = []
    for row in suite.rows():
        cells: list[str | Text] = [Text(str(row.dim), justify="right"), row.metric]
        cells.append(number_cell(row.base))
        if rotated:
            cells.append(number_cell(row.base_rotated))
        cells.append(number_cell(row.tuned))
        if rotated:
            cells.append(change_cell(row.base_rotated, row.tuned, colours))
        cells.append(change_cell(row.base, row.tuned, colours))
        rows.append(tuple(cells))
    return rows


def suite_caption(suite: SuiteResult, rotated: bool) -> Content:
    """What the numbers are, whether training's change is more than noise, and what each
    change is against, above the table."""
    text = Content(f"{suite.title}: {suite.queries} queries over {suite.corpus} passages\n")
    if suite.gains:
        text += gains_line(suite)
        text += "\n"
    if rotated:
        text += Content.styled(
            "base + rotation = the untrained base with the same corpus rotation: vs base + "
            "rotation is what training added, vs base counts the rotation too.",
            "dim",
        )
    else:
        text += Content.styled(
            "vs base = fine-tuned against the untrained base model. ▲ better ▼ worse.", "dim"
        )
    return text


def gains_line(suite: SuiteResult) -> Content:
    """Per size, whether the queries tell training's nDCG@10 change from zero (95% paired
    bootstrap): with 30-60 labelled questions a point or two either way is often noise."""
    first = next(iter(suite.gains.values()))
    text = Content(f"training vs {first.against}, nDCG@10 over {first.queries} queries: ")
    styles = {"gain": "$success", "loss": "$error"}
    for i, dim in enumerate(sorted(suite.gains, reverse=True)):
        g = suite.gains[dim]
        if i:
            text += " · "
        text += f"{dim} {g.mean:+.3f} "
        text += Content.styled(g.verdict, styles.get(g.verdict, "bold"))
    return text


def short_source(source: str, page: int | None, roots: Sequence[Path]) -> str:
    """A passage's file as the run names it (``handbook/sla.md``), not where it sits on disk."""
    path = Path(source)
    name = source
    if path.is_absolute():
        name = path.name
        for root in roots:
            try:
                rel = path.relative_to(root)
            except ValueError:
                continue
            name = f"{root.name}/{rel}" if rel.parts else path.name
            break
    return f"{name} p.{page}" if page is not None else name


def squeeze(text: str, width: int) -> str:
    """``text`` in ``width`` cells, the middle elided: a file's folder and extension both stay."""
    if len(text) <= width or width < 5:
        return text[:width]
    keep = width - 1
    return text[: keep // 2] + "…" + text[len(text) - (keep - keep // 2) :]


def fit_source(hit: Hit, roots: Sequence[Path], width: int) -> str:
    """The run's name for the file when it fits, else the file name, else its middle elided."""
    full = short_source(hit.source, hit.page, roots)
    if len(full) <= width:
        return full
    return squeeze(short_source(Path(hit.source).name, hit.page, ()), width)


def readable(text: str) -> str:
    """A chunk's text with its paragraphs and list lines kept, runs of spaces and blank lines
    folded, so a passage reads as it did in the document."""
    lines = [" ".join(line.split()) for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


SIDES = (("base", "base"), ("tuned", "fine-tuned"))


RR_COLUMNS = ("candidates", "system", *RERANK_METRICS, "ndcg vs retriever")


def fill_table(
    table: DataTable, headers: Sequence[str | Text], rows: Sequence[Sequence[str | Text]]
) -> None:
    """Replace a table's columns and rows, each column as wide as its widest cell.

    DataTable sizes auto-width columns on idle but keeps the header it already drew, so a
    table filled after the first paint showed a squeezed header until the next redraw.
    Columns made with their final width are drawn right the first time.
    """
    table.clear(columns=True)
    table.header_height = max(1, *(len(str(h).splitlines()) for h in headers)) if headers else 1
    for i, header in enumerate(headers):
        label = Text(header) if isinstance(header, str) else header
        cells = [
            Text(c).cell_len if isinstance(c, str) else c.cell_len for c in (r[i] for r in rows)
        ]
        head_w = max((Text(line).cell_len for line in label.plain.splitlines()), default=0)
        table.add_column(label, width=max([head_w, *cells]))
    table.add_rows(rows)


class ResultsScreen(WizardScreen):
    STEP = "results"
    HEADING = "Results: did fine-tuning help?"
    HELP = (
        "Held-out: queries from chunks that were never trained on. Benchmark: your own labelled "
        "questions (eval.benchmark), when set. Each row is one metric at one embedding size "
        "(Matryoshka dim): smaller dims are cheaper to store and search. base + rotation is the "
        "untrained base model with the corpus rotation the fine-tuned model also gets: at small "
        "dims it does much of the work, so 'vs base + rotation' is what training itself added "
        "and 'vs base' counts both. ▲ better, ▼ worse. Reranker: ndcg/mrr of the retriever "
        "alone, the reranker and the fused score. Try a query: base and fine-tuned side by "
        "side on your own question (the models in the workspace now: before training has saved a "
        "model only the base side is shown); tab to a list and move with ↑↓ to read each "
        "passage. F7 moves to the next tab; F6 re-reads the metrics and asks again."
    )
    COMPONENT_CLASSES: ClassVar[set[str]] = {"results--gain", "results--loss", "results--best"}
    DEFAULT_CSS = """
    ResultsScreen > .results--gain { color: $success; }
    ResultsScreen > .results--loss { color: $error; }
    ResultsScreen > .results--best { color: $success; text-style: bold; }
    ResultsScreen TabbedContent { height: 1fr; }
    ResultsScreen #emb-pane > Vertical > Horizontal { height: 1fr; }
    ResultsScreen #emb-table { width: auto; }
    ResultsScreen #dim-chart { width: 1fr; max-width: 60; }
    ResultsScreen .suite-title { height: auto; max-height: 5; }
    ResultsScreen #rr-title { height: auto; max-height: 4; }
    ResultsScreen #ask-row { height: 1; }
    ResultsScreen #ask-input { width: 1fr; }
    ResultsScreen #ask-results { height: auto; max-height: 8; }
    ResultsScreen #ask-results DataTable { width: 1fr; height: auto; }
    ResultsScreen #ask-detail { height: 1fr; border-top: solid $panel; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f5", "ask", "Ask", id="results.ask", tooltip="Search with base and tuned models"),
        Binding(
            "f6",
            "reload",
            "Reload",
            id="results.reload",
            tooltip="Re-read metrics.json and ask the last question again of the current models",
        ),
        Binding(
            "f7",
            "next_tab",
            "Next tab",
            id="results.next_tab",
            tooltip="Held-out, Benchmark, Retrievers, Reranker, Try a query in turn",
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.results = Results()
        self.answer: AskResult | None = None

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
            # BM25, dense and hybrid side by side, and the retriever to ship (helper "hybrid"'s
            # widget; issue 17)
            with TabPane("Retrievers", id="ret-pane"):
                yield RetrieverTable(id="retrievers")
            with TabPane("Reranker", id="rr-pane"), Vertical():
                yield Static("", id="rr-title", classes="suite-title")
                yield DataTable(id="rr-table", zebra_stripes=True, cursor_type="row")
            with TabPane("Deploy", id="deploy-pane"):
                yield DeployTable(id="deploy-table")
            with TabPane("Try a query", id="ask-pane"), Vertical():
                with Horizontal(id="ask-row"):
                    yield Input(
                        placeholder="a question your users would ask, then enter",
                        id="ask-input",
                        compact=True,
                    )
                with Horizontal(id="ask-results"):
                    yield DataTable(id="ask-base", zebra_stripes=True, cursor_type="row")
                    yield DataTable(id="ask-tuned", zebra_stripes=True, cursor_type="row")
                with VerticalScroll(id="ask-detail"):
                    yield Static("", id="ask-passage")
        yield Static("", id="results-status", classes="hint")

    def on_mount(self) -> None:
        for table_id in ("#emb-table", "#bench-table"):
            fill_table(self.query_one(table_id, DataTable), suite_headers(False), [])
        self.query_one("#rr-table", DataTable).add_columns(*RR_COLUMNS)
        for side, label in SIDES:
            fill_table(self.query_one(f"#ask-{side}", DataTable), ("#", f"{label}: source"), [])
        self.fit_chart()

    def on_screen_resume(self) -> None:
        self.action_reload()

    def on_resize(self, event: events.Resize) -> None:
        self.fit_chart()
        if self.answer is not None:
            self.show_answer(self.answer)

    def fit_chart(self) -> None:
        """The table keeps its whole width; the chart takes what is left, when that is enough."""
        table = self.query_one("#emb-table", DataTable)
        # from the columns themselves: the table's own size lags a refill by a layout pass
        columns = sum(col.get_render_width(table) for col in table.columns.values())
        room = self.size.width - columns - 2 - 2  # its scrollbar, the body's padding
        self.query_one(GroupedBars).display = room >= CHART_MIN_WIDTH

    def action_reload(self) -> None:
        """Metrics re-read, and a question already asked asked again of the current models,
        so nothing on the step is older than the workspace (a training that ended since)."""
        self.load_worker()
        if self.answer is not None:
            question = self.answer.question
            self.answer = None
            self.show_answer(None)
            self.query_one("#results-status", Static).update(
                f"asking {question!r} again of the workspace's current models…"
            )
            self.ask_worker(question)

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="results-load",
        description="Reading metrics",
    )
    def load_worker(self) -> tuple[Results, DeployResults]:
        ws = self.wizard.ensure_workspace()
        return self.wizard.engine.results(ws), self.wizard.engine.deploy_results(ws)

    def colours(self) -> dict[str, Style]:
        """The theme's colours for a gain, a loss and the best value, as Rich styles: table
        cells are right-aligned Rich text, which cannot name a theme variable."""
        return {
            name: self.get_component_rich_style(f"results--{name}", partial=True)
            for name in ("gain", "loss", "best")
        }

    def fill_suite(self, table: DataTable, title: Static, suite: SuiteResult | None) -> None:
        if suite is None:
            fill_table(table, suite_headers(False), [])
            return
        rotated = bool(suite.base_rotated)
        title.update(suite_caption(suite, rotated))
        fill_table(table, suite_headers(rotated), suite_rows(suite, rotated, self.colours()))

    def show(self) -> None:
        res = self.results
        held = res.suite("held-out")
        bench = res.suite("benchmark")
        self.fill_suite(
            self.query_one("#emb-table", DataTable), self.query_one("#heldout-title", Static), held
        )
        self.fit_chart()
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
        # a labelled benchmark judges retrievers; held-out pseudo-queries flatter BM25
        self.query_one(RetrieverTable).show(bench or held, res.recommendation)
        chart_suite = held or bench
        if chart_suite is not None:
            self.show_chart(chart_suite, res.primary_metric)
        self.show_reranker()
        status = self.query_one("#results-status", Static)
        if res.empty:
            status.update("no evaluation yet: finish training (step 7) first")
        else:
            status.update(f"report: {self.wizard.ensure_workspace().report_path}")

    def show_chart(self, suite: SuiteResult, metric: str) -> None:
        """The primary metric per dim for the same three models as the table, in its order."""
        dims = suite.dims

        def series(part: dict[int, dict[str, float]]) -> list[float | None]:
            return [part.get(d, {}).get(metric) for d in dims]

        groups: dict[str, list[float | None]] = {"base": series(suite.base)}
        looks = [("░", "$text-muted")]
        if suite.base_rotated:
            groups["base + rotation"] = series(suite.base_rotated)
            looks.append(("▒", "$secondary"))
        groups["fine-tuned"] = series(suite.tuned)
        looks.append(("█", "$primary"))
        self.query_one(GroupedBars).show_grouped(
            [str(d) for d in dims], groups, f"{metric} by dim ({suite.name})", looks
        )

    def show_reranker(self) -> None:
        rr = self.results.reranker
        table = self.query_one("#rr-table", DataTable)
        title = self.query_one("#rr-title", Static)
        table.clear()
        if rr is None:
            title.update("no reranker results: enable the reranker and finish the run")
            return
        if not rr.trained:
            title.update(Content.styled(f"no reranker trained: {rr.reason}", "$warning"))
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
        colours = self.colours()
        retriever = {
            r.candidates: r.metrics.get("ndcg@10") for r in rr.rows if r.kind == "retriever"
        }
        rows = []
        for row in rr.rows:
            cells = []
            for m in RERANK_METRICS:
                v = row.metrics.get(m)
                mark = colours["best"] if v is not None and v == best[m] else ""
                cells.append(Text("–" if v is None else f"{v:.4f}", style=mark))
            base = retriever.get(row.candidates)
            vs = (
                Text("")
                if row.kind == "retriever"
                else change_cell(base, row.metrics.get("ndcg@10"), colours)
            )
            rows.append((row.candidates, row.system, *cells, vs))
        fill_table(table, RR_COLUMNS, rows)

    # -- try a query -----------------------------------------------------

    @on(Input.Submitted, "#ask-input")
    def question_submitted(self) -> None:
        self.action_ask()

    def action_ask(self) -> None:
        tabs = self.query_one(TabbedContent)
        question = self.query_one("#ask-input", Input).value.strip()
        if tabs.active != "ask-pane" or not question:
            tabs.active = "ask-pane"
            self.query_one("#ask-input", Input).focus()
            return
        self.query_one("#results-status", Static).update(
            "searching… (the first question loads both models and encodes the chunks)"
        )
        self.ask_worker(question)

    def action_next_tab(self) -> None:
        tabs = self.query_one(TabbedContent)
        panes = [pane.id for pane in tabs.query(TabPane)]
        if tabs.active in panes:
            tabs.active = panes[(panes.index(tabs.active) + 1) % len(panes)] or ""
        if tabs.active == "ask-pane":
            self.query_one("#ask-input", Input).focus()
        else:
            table = tabs.query_one(f"#{tabs.active} DataTable", DataTable)
            table.focus()

    @work(thread=True, exclusive=True, exit_on_error=False, group="ask", description="Query")
    def ask_worker(self, question: str) -> AskResult:
        """The engine's own answer (``ragtune ask --compare``); it arrives through
        ``on_worker_state_changed``, so an answer superseded by a newer question is dropped."""
        ws = self.wizard.ensure_workspace()
        return self.wizard.engine.ask(ws, question, top_k=5)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Values of finished workers only: a load or a question superseded by a newer one
        (F6, a return to the step) is cancelled by ``exclusive`` and never shown."""
        worker = event.worker
        if event.state != WorkerState.SUCCESS:
            return
        if worker.group == "results-load":
            self.results, deploy = worker.result
            self.show()
            self.query_one(DeployTable).show(deploy)
            return
        if worker.group != "ask":
            return
        if any(w.group == "ask" and not w.is_finished for w in self.workers):
            return  # a newer question is on its way
        self.answer = worker.result
        self.show_answer(self.answer)
        self.query_one("#results-status", Static).update(self.answer_status(self.answer))

    def answer_status(self, result: AskResult) -> Content:
        """How the hits were ranked, and what the fine-tuned side really is right now."""
        if not result.fine_tuned:
            text = Content.styled("no fine-tuned model yet", "bold $warning")
            training = self.wizard.state.run_in_progress() is not None
            text += (
                " (training is running and has not saved one)"
                if training
                else " (training has not saved one: F5 on step 7 runs it)"
            )
            text += ": the base model's hits only · ↑↓ reads each passage"
            return text
        how = (
            f"reranked, fused at w={result.fusion_weight:g}"
            if result.reranked
            else "retriever only"
        )
        text = Content(
            f"top {len(result.hits)} chunks per model, {how} · tab to a list, ↑↓ reads each passage"
        )
        if self.wizard.state.run_in_progress() is not None:
            text += Content.styled(
                "\na run is going: fine-tuned = the model its last finished training saved; "
                "F6 asks again once it ends",
                "$warning",
            )
        return text

    def source_roots(self) -> list[Path]:
        cfg = self.wizard.cfg
        return [cfg.resolve(p) for p in cfg.sources.paths]

    def hits(self, side: str) -> list[Hit]:
        """A side's ranking; the fine-tuned side is empty while there is no fine-tuned model
        (the engine's ``hits`` are then the base model's)."""
        if self.answer is None:
            return []
        if side == "base":
            return self.answer.base_hits or []
        return self.answer.hits if self.answer.fine_tuned else []

    def show_answer(self, result: AskResult | None) -> None:
        """Each model's ranking as a compact list; the highlighted hit's passage below, whole."""
        fine_tuned = result is None or result.fine_tuned
        roots = self.source_roots()
        pane = self.query_one("#ask-results", Horizontal)
        half = max(24, (pane.size.width or 80) // 2)
        for side, label in SIDES:
            hits = self.hits(side)
            reranked = any(h.rerank_score is not None for h in hits)
            if side == "tuned" and not fine_tuned:
                label = "fine-tuned: none yet"
            headers: list[str] = ["#", f"{label}: source"]
            headers += ["cosine", "rerank", "fused"] if reranked else ["cosine"]
            # each column is padded by one cell a side; the rank column holds one digit
            source_w = max(10, half - 3 - 2 - 8 * (len(headers) - 2) - 1)
            rows = []
            for hit in hits:
                cells: list[str | Text] = [
                    str(hit.rank),
                    fit_source(hit, roots, source_w),
                    Text(f"{hit.retriever_score:.3f}", justify="right"),
                ]
                if reranked:
                    rr = "" if hit.rerank_score is None else f"{hit.rerank_score:.2f}"
                    cells += [Text(rr, justify="right"), Text(f"{hit.score:.3f}", justify="right")]
                rows.append(cells)
            table = self.query_one(f"#ask-{side}", DataTable)
            fill_table(table, headers, rows)
        focused = self.focused
        side = "base" if focused is self.query_one("#ask-base") or not fine_tuned else "tuned"
        table = self.query_one(f"#ask-{side}", DataTable)
        self.show_passage(side, table.cursor_row)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        table_id = event.data_table.id or ""
        if table_id.startswith("ask-") and event.data_table.has_focus:
            self.show_passage(table_id.removeprefix("ask-"), event.cursor_row)

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        widget = event.widget
        if isinstance(widget, DataTable) and (widget.id or "").startswith("ask-"):
            self.show_passage(widget.id.removeprefix("ask-"), widget.cursor_row)

    def show_passage(self, side: str, row: int) -> None:
        """The whole passage, wrapped, with where it comes from and where the other model put it."""
        hits = self.hits(side)
        passage = self.query_one("#ask-passage", Static)
        if not hits:
            passage.update("")
            return
        hit = hits[max(0, min(row, len(hits) - 1))]
        other_side = "base" if side == "tuned" else "tuned"
        other = next((h.rank for h in self.hits(other_side) if h.chunk_id == hit.chunk_id), None)
        label = dict(SIDES)[side]
        head = Text()
        head.append(f"{label} #{hit.rank}", style="bold")
        head.append(f"  {short_source(hit.source, hit.page, self.source_roots())}")
        where = hit.heading or hit.title
        if where:
            head.append(f" · {where}", style="italic")
        head.append(f"\ncosine {hit.retriever_score:.3f}")
        if hit.rerank_score is not None:
            head.append(f" · rerank {hit.rerank_score:.2f} · fused {hit.score:.3f}")
        other_label = dict(SIDES)[other_side]
        answer = self.answer
        if answer is not None and answer.fine_tuned and (other_side == "tuned" or answer.base_hits):
            seen = (
                f"#{other} there too" if other else f"not in its top {len(self.hits(other_side))}"
            )
            head.append(f" · {other_label}: {seen}", style="dim")
        head.append("\n\n")
        head.append(readable(hit.text))
        if self.answer is not None and self.answer.notes:
            head.append("\n\n" + "\n".join(self.answer.notes), style="dim")
        passage.update(head)

    def worker_failed(self, worker) -> None:
        from ragtune.tui.errors import friendly

        self.query_one("#results-status", Static).update(
            Content.styled(f"✘ {worker.description} failed: {friendly(worker.error)}", "$error")
        )
