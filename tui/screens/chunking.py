"""Step 3: how documents are cut into passages; live counts, a length histogram and samples."""

from __future__ import annotations

from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import DataTable, Static

from tui.engine_client import ChunkPreview
from tui.messages import WorkResult
from tui.screens.base import WizardScreen
from tui.widgets.config_form import ConfigForm
from tui.widgets.plots import BarChart

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
    ChunkingScreen #chunk-samples { width: 3fr; }
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
            yield DataTable(id="chunk-samples", zebra_stripes=True, cursor_type="row")

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
        self.preview_worker()

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="chunking",
        description="Chunk preview",
    )
    def preview_worker(self) -> None:
        self.post_message(WorkResult("chunks", self.wizard.engine.preview_chunks(self.wizard.cfg)))

    def on_work_result(self, message: WorkResult) -> None:
        if message.kind != "chunks":
            return
        preview: ChunkPreview = message.value
        self.preview = preview
        s = preview.stats
        parts = [
            f"{s[key]} {label}"
            for key, label in (
                ("documents", "docs"),
                ("chunks", "chunks"),
                ("too_short", "too short"),
                ("duplicates", "duplicates"),
            )
            if key in s
        ]
        tokens = s.get("tokens") or {}
        if tokens:
            parts.append(
                f"tokens min {tokens.get('min')} · median {tokens.get('median')} · "
                f"max {tokens.get('max')}"
            )
        self.query_one("#chunk-stats", Static).update(" · ".join(parts) or "no statistics")
        # bin starts only: full "lo-hi" labels collide and plotext then drops some at random
        labels = [label.split("-")[0] for label, _ in preview.histogram]
        counts = [float(c) for _, c in preview.histogram]
        self.query_one(BarChart).show_bars(labels, counts, "chunks by length (tokens, bin start)")
        table = self.query_one("#chunk-samples", DataTable)
        table.clear()
        for chunk in preview.samples:
            text = " ".join(str(chunk.get("text", "")).split())
            table.add_row(
                str(chunk.get("source", "")).rsplit("/", 1)[-1],
                str(chunk.get("n_tokens", "")),
                text[:160],
            )

    def leave_problem(self) -> str | None:
        if self.query_one(ConfigForm).validate_now() is None:
            return "fix the chunking settings marked in red"
        return None
