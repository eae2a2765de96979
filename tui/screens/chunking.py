"""Step 3: how documents are cut into passages; live counts, a length histogram and samples."""

from __future__ import annotations

import copy
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.timer import Timer
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from ragtune.engine.config import RunConfig
from ragtune.tui.engine_client import ChunkPreview
from ragtune.tui.screens.base import WizardScreen
from ragtune.tui.widgets.config_form import ConfigForm
from ragtune.tui.widgets.data_table import DataTable
from ragtune.tui.widgets.plots import BarChart

FIELDS = ["max_tokens", "overlap_tokens", "min_tokens", "tokenizer", "respect_headings"]


class ChunkingScreen(WizardScreen):
    STEP = "chunking"
    HEADING = "Chunking: passage size and overlap, in tokens of the embedder's tokenizer"
    HELP = (
        "Chunks are what the retriever returns. Around 200-300 tokens suits most documents; "
        "overlap keeps a sentence cut at a boundary findable. The preview chunks the first "
        "50 documents with these settings and refreshes as you type."
    )
    DEFAULT_CSS = """
    ChunkingScreen #chunk-lower { height: 1fr; }
    ChunkingScreen #chunk-left { width: 2fr; }
    ChunkingScreen #chunk-right { width: 3fr; }
    ChunkingScreen #chunk-samples { height: 1fr; }
    ChunkingScreen #chunk-detail-scroll { height: 1fr; border-top: solid $panel; }
    ChunkingScreen #chunk-stats { height: auto; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f5", "preview", "Preview", id="chunking.preview", tooltip="Chunk a sample now"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._debounce: Timer | None = None
        self.preview: ChunkPreview | None = None

    def compose_body(self) -> ComposeResult:
        yield ConfigForm(self.wizard.cfg.chunking, FIELDS, prefix="chunking", id="chunk-form")
        with Horizontal(id="chunk-lower"):
            with Vertical(id="chunk-left"):
                yield Static("press F5 to chunk a sample of your documents", id="chunk-stats")
                yield BarChart(id="chunk-hist")
            with Vertical(id="chunk-right"):
                yield DataTable(id="chunk-samples", zebra_stripes=True, cursor_type="row")
                # the table cuts a chunk to one line; the highlighted one is here whole
                with VerticalScroll(id="chunk-detail-scroll", can_focus=False):
                    yield Static("", id="chunk-detail")

    def on_mount(self) -> None:
        table = self.query_one("#chunk-samples", DataTable)
        table.add_column("source", width=14)
        table.add_column("tokens", width=6)
        table.add_column("text", width=120)

    def on_config_form_valid(self, message: ConfigForm.Valid) -> None:
        changed = message.section.to_dict() != self.wizard.cfg.chunking.to_dict()
        self.wizard.cfg.chunking = message.section  # type: ignore[assignment]
        if not changed:
            return
        if self._debounce is not None:
            self._debounce.stop()
        if self.preview is not None:
            self._debounce = self.set_timer(0.6, self.action_preview)

    def action_preview(self) -> None:
        if self.query_one(ConfigForm).validate_now() is None:
            return
        if not self.wizard.cfg.sources.has_documents:
            self.query_one("#chunk-stats", Static).update(
                "no documents picked (description-only run): nothing to chunk yet"
            )
            return
        self.query_one("#chunk-stats", Static).update("chunking a sample…")
        self.preview_worker(copy.deepcopy(self.wizard.cfg))

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="chunking",
        description="Chunk preview",
    )
    def preview_worker(self, cfg: RunConfig) -> ChunkPreview:
        """``cfg``: a copy, so typing on while it chunks cannot change what it chunks."""
        return self.wizard.engine.preview_chunks(cfg)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Only a finished preview counts: one superseded by F5 or a newer setting is cancelled
        by ``exclusive`` and never gets here as a success."""
        if event.worker.group == "chunking" and event.state == WorkerState.SUCCESS:
            self.show_preview(event.worker.result)

    def show_preview(self, preview: ChunkPreview) -> None:
        self.preview = preview
        s = preview.stats
        parts = [
            f"{s.documents} docs",
            f"{s.chunks} chunks",
            f"{s.too_short} too short",
            f"{s.duplicates} duplicates",
        ]
        if s.chunks:
            parts.append(
                f"tokens min {s.token_min} · median {s.token_median:g} · max {s.token_max}"
            )
        self.query_one("#chunk-stats", Static).update(" · ".join(parts))
        # bin starts only: full "lo-hi" labels collide and plotext then drops some at random
        hist = s.histogram
        labels = [label.split("-")[0] for label in hist]
        counts = [float(c) for c in hist.values()]
        self.query_one(BarChart).show_bars(labels, counts, "chunks by length (tokens, bin start)")
        table = self.query_one("#chunk-samples", DataTable)
        table.clear()
        for chunk in preview.chunks:
            text = " ".join(chunk.text.split())
            table.add_row(chunk.source.rsplit("/", 1)[-1], str(chunk.n_tokens), text[:160])
        self.show_chunk(0)

    @on(DataTable.RowHighlighted, "#chunk-samples")
    def chunk_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_chunk(event.cursor_row)

    def show_chunk(self, row: int) -> None:
        """The highlighted chunk whole: its source as the run names it, tokens, heading."""
        from ragtune.tui.screens.results import readable

        detail = self.query_one("#chunk-detail", Static)
        chunks = self.preview.chunks if self.preview is not None else []
        if not chunks:
            detail.update("")
            return
        chunk = chunks[max(0, min(row, len(chunks) - 1))]
        head = Text(chunk.source, style="bold")
        head.append(f" · {chunk.n_tokens} tokens")
        if chunk.heading:
            head.append(f" · {chunk.heading}", style="italic")
        head.append("\n")
        head.append(readable(chunk.text))
        detail.update(head)

    def worker_failed(self, worker) -> None:
        """Say why instead of leaving "chunking a sample…" up forever."""
        from ragtune.tui.errors import friendly

        self.query_one("#chunk-stats", Static).update(
            Content.styled(f"✘ chunk preview failed: {friendly(worker.error)}", "$error")
        )

    def commit_state(self) -> None:
        section = self.query_one(ConfigForm).validate_now()
        if section is not None:
            self.wizard.cfg.chunking = section  # type: ignore[assignment]

    def leave_problem(self) -> str | None:
        if self.query_one(ConfigForm).validate_now() is None:
            return "fix the chunking settings marked in red"
        return None
