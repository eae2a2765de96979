"""Step 5: review a sample of generated rows, edit the prompt, then start the full generation."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Label, Static
from textual.worker import Worker, WorkerState

from ragtune.engine.core.events import (
    Event,
    Progress,
    RunFailed,
    StageFinished,
    StageSkipped,
    StageStarted,
)
from ragtune.engine.core.payloads import GenerationProgress
from ragtune.engine.generate.review import DECIDED, ReviewEntry
from ragtune.engine.generate.rows import GeneratedRow
from ragtune.tui.follow import follow_events
from ragtune.tui.messages import EventsRead, RunAlive
from ragtune.tui.screens.base import WizardScreen
from ragtune.tui.screens.confirm import ConfirmDialog
from ragtune.tui.widgets.data_table import DataTable
from ragtune.tui.widgets.text_entry import TextArea

EDITABLE = ("question", "response", "negative_retrieval")
QUIET_S = 10
"""After this long without a finished chunk, the progress line says it is waiting."""
STATUS_STYLE = {"accepted": "$success", "rejected": "$error", "edited": "$warning", "new": "dim"}


class RowEditor(ModalScreen["GeneratedRow | None"]):
    """Edit one sample row's question, answer and hard negative.

    Each part is a bordered, wrapping text area: LLM-free questions keep a chunk's heading
    and line breaks, which a one-line input drew over the dialog's border.
    """

    DEFAULT_CSS = """
    RowEditor { align: center middle; }
    RowEditor > VerticalScroll {
        width: 90%; max-width: 120; height: auto; max-height: 90%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    RowEditor #edit-context {
        height: auto; max-height: 6; color: $text-muted; border: round $panel;
        padding: 0 1;
    }
    RowEditor .edit-label { color: $text-muted; margin-top: 1; }
    RowEditor TextArea { height: auto; min-height: 3; max-height: 8; }
    RowEditor #edit-buttons { height: auto; margin-top: 1; }
    RowEditor Button { margin-right: 2; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", id="edit.save", tooltip="Keep the edited row"),
        Binding("escape", "cancel", "Cancel", show=False),
        Binding("f2", "cancel", "Cancel", id="edit.cancel", tooltip="Discard changes"),
    ]

    def __init__(self, row: GeneratedRow) -> None:
        super().__init__()
        self.row = row

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static("passage", classes="edit-label")
            with VerticalScroll(id="edit-context", can_focus=False):
                yield Static(Text(self.row.positive or self.row.context))
            for key in EDITABLE:
                yield Label(key.replace("_", " "), classes="edit-label")
                yield TextArea(
                    str(getattr(self.row, key)),
                    id=f"edit-{key}",
                    soft_wrap=True,
                    show_line_numbers=False,
                    tab_behavior="focus",
                )
            with Horizontal(id="edit-buttons"):
                yield Button("Save (ctrl+s)", id="save", variant="primary", compact=True)
                yield Button("Cancel (F2)", id="cancel", compact=True)
        # The keys stay in sight when the dialog scrolls (at 80x24 its buttons do).
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#edit-question", TextArea).focus()

    @on(Button.Pressed, "#save")
    def save_pressed(self) -> None:
        self.action_save()

    @on(Button.Pressed, "#cancel")
    def cancel_pressed(self) -> None:
        self.action_cancel()

    def action_save(self) -> None:
        values = {key: self.query_one(f"#edit-{key}", TextArea).text.strip() for key in EDITABLE}
        self.dismiss(replace(self.row, **values))

    def action_cancel(self) -> None:
        self.dismiss(None)


def one_line(text: str, width: int) -> str:
    """A cell's text on one line: headings and line breaks of LLM-free rows folded."""
    return " ".join(str(text).split())[:width]


REASONS = {
    "rate_limited": "rate limit (429)",
    "timeout": "timeout",
    "connection": "connection",
    "server_error": "server error",
    "api_error": "API error",
    "schema": "malformed reply",
    "object": "malformed reply",
}


def by_reason(counts: dict[str, int]) -> str:
    return ", ".join(f"{REASONS.get(k, k.replace('_', ' '))} {v}" for k, v in counts.items() if v)


def describe_progress(done: int, total: int | None, extra: GenerationProgress) -> str:
    """The generate stage's own progress fields: chunks done, rows written, calls, tokens,
    cost, and retries and failures by reason (a run waiting on 429s says so)."""
    parts = [f"{done}/{total}" if total else f"{done}", "chunks"]
    if extra.rows is not None:
        parts.append(f"· {extra.rows} rows written")
    if extra.rows_per_s:
        parts.append(f"· {extra.rows_per_s:.2f} rows/s")
    if extra.calls:
        parts.append(f"· {extra.calls} calls")
    tokens_in, tokens_out = extra.input_tokens, extra.output_tokens
    if tokens_in or tokens_out:
        parts.append(f"· {tokens_in:,} in / {tokens_out:,} out tokens")
    if extra.cost_usd is not None:
        parts.append(f"· ${extra.cost_usd:.2f}")
    retries = by_reason(extra.retries)
    if retries:
        parts.append(f"· retries: {retries}")
    failures = by_reason(extra.failures)
    if failures:
        parts.append(f"· failed: {failures}")
    return " ".join(parts)


def merge_review(rows: list[GeneratedRow], saved: list[ReviewEntry]) -> list[ReviewEntry]:
    """A fresh sample with the saved decisions: a reviewed row comes back as it was kept.

    An edited row is shown with its edited text (the run uses that one), and decisions on
    rows this sample did not draw again stay listed after it, since the run still applies
    them; re-sampling used to show edited rows with their original text and then drop
    unmatched decisions from review.json on the next save.
    """
    entries: list[ReviewEntry] = []
    used: set[int] = set()
    for row in rows:
        match = next(
            (i for i, e in enumerate(saved) if i not in used and e.matches(row)),
            None,
        )
        if match is not None and saved[match].status in DECIDED:
            used.add(match)
            entries.append(saved[match])
        else:
            entries.append(ReviewEntry.for_row(row))
    entries += [e for i, e in enumerate(saved) if i not in used and e.status in DECIDED]
    return entries


class SamplesScreen(WizardScreen):
    STEP = "samples"
    HEADING = "Samples: check what the generator writes before the full run"
    HELP = (
        "F5 writes a small sample from chunks spread over your sources. F7 accepts, F8 rejects, "
        "enter edits the highlighted row. Edit the prompt and sample again until the rows look "
        "right, then F6 starts the full generation in the background: you may leave this screen "
        "(or quit) and come back; the progress is read from the run's events."
    )
    DEFAULT_CSS = """
    SamplesScreen #samples-top { height: 2fr; }
    SamplesScreen #prompt { width: 2fr; }
    SamplesScreen #sample-table { width: 3fr; }
    SamplesScreen #gen-progress { height: auto; color: $text; }
    SamplesScreen #sample-detail-scroll { height: 1fr; border-top: solid $panel; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f5", "sample", "Sample", id="samples.sample", tooltip="Generate a review sample"),
        Binding(
            "f6",
            "generate_all",
            "Generate",
            id="samples.all",
            tooltip="Start the full generation in the background",
            priority=True,
        ),
        Binding(
            "f7",
            "mark('accepted')",
            "Accept",
            id="samples.accept",
            tooltip="Accept row",
            priority=True,
        ),
        Binding(
            "f8",
            "mark('rejected')",
            "Reject",
            id="samples.reject",
            tooltip="Reject row",
            priority=True,
        ),
    ]

    AUTO_FOCUS = "#sample-table"

    def __init__(self) -> None:
        super().__init__()
        self.prompt_path: Path | None = None

    @property
    def entries(self) -> list[ReviewEntry]:
        """The sample rows and their decisions live in the run's state, not in this screen."""
        return self.wizard.state.review

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="samples-top"):
            yield TextArea("", id="prompt", show_line_numbers=False)
            yield DataTable(id="sample-table", cursor_type="row", zebra_stripes=True)
        # the table cuts each part to one line; the highlighted row is here whole
        with VerticalScroll(id="sample-detail-scroll", can_focus=False):
            yield Static("", id="sample-detail")
        yield Static("F5 samples rows to review; F6 starts the full run.", id="gen-progress")

    def on_mount(self) -> None:
        self.set_interval(1.0, self.tick)
        table = self.query_one("#sample-table", DataTable)
        table.add_columns("", "question", "answer", "negative", "context")
        self.render_rows()
        if self.entries:
            self.query_one("#gen-progress", Static).update(
                f"{len(self.entries)} saved sample rows: F7 accept · F8 reject · enter edit · "
                "F5 samples again (decisions are kept)"
            )

    def on_screen_resume(self) -> None:
        self.load_prompt()
        handle = self.wizard.state.run_handle
        if (
            handle is not None and handle.alive()
        ) or self.wizard.ensure_workspace().generated_path.exists():
            self.start_follow()

    def load_prompt(self) -> None:
        """The queries prompt the LLM is sent for each chunk (written from the default if new)."""
        ws = self.wizard.ensure_workspace()
        area = self.query_one("#prompt", TextArea)
        if not self.wizard.cfg.generation.calls_llm:
            area.text = (
                "LLM-free generator: no prompt. Queries are held-out sentences,\n"
                "headings and keywords of each chunk."
            )
            area.read_only = True
            self.prompt_path = None
            return
        self.prompt_path, text = self.wizard.engine.queries_prompt(ws)
        if area.text != text:
            area.text = text
        area.read_only = False

    def save_prompt(self) -> None:
        area = self.query_one("#prompt", TextArea)
        if self.prompt_path is not None and not area.read_only:
            self.wizard.engine.save_queries_prompt(self.wizard.ensure_workspace(), area.text)

    # -- sampling and review --------------------------------------------

    def action_sample(self) -> None:
        self.save_prompt()
        self.query_one("#gen-progress", Static).update("writing a sample…")
        self.sample_worker(self.wizard.state.api_key or self._env_key())

    def _env_key(self) -> str | None:
        env = self.wizard.cfg.generation.llm.api_key_env
        return os.environ.get(env) if env else None

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="samples",
        description="Sample generation",
    )
    def sample_worker(self, api_key: str | None) -> list[ReviewEntry]:
        app = self.wizard
        ws = app.ensure_workspace()
        rows = app.engine.sample_rows(app.cfg, ws, None, api_key)
        return merge_review(rows, app.engine.saved_review(ws))

    def render_rows(self) -> None:
        table = self.query_one("#sample-table", DataTable)
        table.clear()
        for i, entry in enumerate(self.entries):
            row, status = entry.row, entry.status
            mark = {"accepted": "✔", "rejected": "✘", "edited": "✎"}.get(status, "·")
            table.add_row(
                Content.styled(mark, STATUS_STYLE[status]),
                one_line(row.question, 80),
                one_line(row.response, 60),
                one_line(row.negative_retrieval, 40),
                one_line(row.positive or row.context, 80),
                key=str(i),
            )
        self.show_row(table.cursor_row)

    @on(DataTable.RowHighlighted, "#sample-table")
    def sample_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_row(event.cursor_row)

    def show_row(self, i: int) -> None:
        """The highlighted row whole: question, answer, hard negative and its passage."""
        from ragtune.tui.screens.results import readable

        detail = self.query_one("#sample-detail", Static)
        if not self.entries:
            detail.update("")
            return
        entry = self.entries[max(0, min(i, len(self.entries) - 1))]
        row = entry.row
        text = Content()
        text += Content.styled(f"{entry.status}", STATUS_STYLE[entry.status])
        text += Content.styled(f" · chunk {row.chunk_id}\n", "dim")
        for label, value in (
            ("question", row.question),
            ("answer", row.response),
            ("negative", row.negative_retrieval),
        ):
            if value:
                text += Content.styled(f"{label}: ", "bold")
                text += f"{value}\n"
        text += Content.styled("passage: ", "bold")
        text += readable(row.positive or row.context)
        detail.update(text)

    def selected_index(self) -> int | None:
        table = self.query_one("#sample-table", DataTable)
        if not self.entries:
            return None
        return table.cursor_row

    def action_mark(self, status: str) -> None:
        i = self.selected_index()
        if i is None:
            self.notify("sample some rows first (F5)", severity="warning")
            return
        entry = self.entries[i]
        if status == "accepted" and entry.status == "edited":
            status = "edited"  # accepting an edited row keeps the edit
        entry.status = status
        self.render_rows()
        self.query_one("#sample-table", DataTable).move_cursor(
            row=min(i + 1, len(self.entries) - 1)
        )
        self.save_review()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        i = int(str(event.row_key.value))

        def done(row: GeneratedRow | None) -> None:
            if row is not None:
                entry = self.entries[i]
                entry.row = row
                entry.status = "edited"
                self.render_rows()
                self.save_review()

        self.app.push_screen(RowEditor(self.entries[i].row), done)

    def save_review(self) -> None:
        """To the workspace's review.json, which the full run (wizard or ragtune run) applies."""
        self.wizard.engine.save_review(self.wizard.ensure_workspace(), self.entries)

    # -- full generation -------------------------------------------------

    def review_summary(self) -> str:
        """What the review will do to the full run, in the words of what really happens."""
        counts = {s: sum(e.status == s for e in self.entries) for s in DECIDED}
        if not any(counts.values()):
            return "No sample rows reviewed: every generated row is used."
        parts = []
        if counts["rejected"]:
            parts.append(f"{counts['rejected']} rejected row(s) are left out of training")
        if counts["edited"]:
            parts.append(f"{counts['edited']} edited row(s) are used as edited")
        if counts["accepted"]:
            parts.append(f"{counts['accepted']} accepted row(s) are kept")
        text = "; ".join(parts) + "."
        if self.wizard.cfg.generation.calls_llm and (counts["edited"] or counts["accepted"]):
            text += " Accepted and edited questions are shown to the LLM as examples."
        return text

    def action_generate_all(self) -> None:
        question = (
            "Start the full generation in the background? "
            + self.review_summary()
            + self.wizard.state.paid_run_note()
            + " It keeps running if you quit; finished calls are never repeated."
        )

        def go(yes: bool | None) -> None:
            if yes:
                self.start_generation()

        self.app.push_screen(ConfirmDialog(question, yes="Start"), go)

    def tick(self) -> None:
        """A generation that has gone quiet says so, second by second."""
        if self.progress is not None and self.ended is None:
            self.show_progress()

    def start_generation(self) -> None:
        app = self.wizard
        self.save_prompt()
        path = app.save_config()
        app.state.run_handle = app.engine.start_run(
            path, stages=["ingest", "generate"], api_key=app.state.api_key
        )
        self.progress = self.ended = None
        self.query_one("#gen-progress", Static).update("generation started…")
        self.start_follow()

    def start_follow(self) -> None:
        ws = self.wizard.ensure_workspace()
        self.follow_worker(ws.events_path)

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="samples-follow",
        description="Following generation",
    )
    def follow_worker(self, path) -> None:
        handle = self.wizard.state.run_handle
        follow_events(self, path, lambda: handle is not None and handle.alive())

    progress: Progress | None = None
    """The generate stage's latest progress while a generation is followed."""
    ended: Event | None = None

    def on_events_read(self, message: EventsRead) -> None:
        for ev in message.events:
            if isinstance(ev, StageStarted) and ev.stage == "generate":
                self.progress = self.ended = None  # the log holds earlier runs too
            elif isinstance(ev, Progress) and ev.stage == "generate":
                self.progress = ev
            elif (
                isinstance(ev, (StageFinished, StageSkipped)) and ev.stage == "generate"
            ) or isinstance(ev, RunFailed):
                self.ended = ev
        self.show_progress()

    def show_progress(self) -> None:
        """The latest counts; while calls are out and nothing lands, how long it has been,
        and once generation ends, a done mark and what happens to the rows next."""
        ev = self.progress
        widget = self.query_one("#gen-progress", Static)
        if ev is None and self.ended is None:
            return
        text = Content()
        ended = self.ended
        if isinstance(ended, RunFailed):
            text += Content.styled("✘ generation stopped: ", "$error")
            text += ended.error
        elif ended is not None:
            text += Content.styled("✔ generation done", "bold $success")
            if isinstance(ended, StageSkipped):
                text += f" ({ended.reason})"
        else:
            text += Content.styled("generation: ", "bold")
        if ev is not None:
            text += (": " if ended is not None else "") + describe_progress(
                ev.done, ev.total, GenerationProgress.from_dict(ev.extra)
            )
            quiet = time.time() - ev.time
            if ended is None and quiet >= QUIET_S:
                text += Content.styled(
                    f" · nothing finished for {quiet:.0f}s: calls out or retrying "
                    "(retries are counted when they end)",
                    "$warning",
                )
        if ended is not None and not isinstance(ended, RunFailed):
            text += Content.styled(
                "\nrows written are not all used: the quality gate and your review drop "
                "some, and step 7's prepare stage says how many are kept",
                "dim",
            )
        widget.update(text)

    def on_run_alive(self, message: RunAlive) -> None:
        if not message.alive:
            self.query_one("#gen-progress", Static).add_class("hint")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A finished sample only: one superseded by F5 again is cancelled and never shown,
        so it cannot replace the newer rows (and the review built on them)."""
        if event.worker.group == "samples" and event.state == WorkerState.SUCCESS:
            self.wizard.state.review = list(event.worker.result)
            self.render_rows()
            self.load_prompt()
            n = len(self.entries)
            if n:
                text = f"{n} sample rows: F7 accept · F8 reject · enter edit · F5 again"
            else:
                text = "0 sample rows: the chunks gave the generator nothing (see Chunking)"
            self.query_one("#gen-progress", Static).update(text)
            self.query_one("#sample-table", DataTable).focus()

    def worker_failed(self, worker) -> None:
        from ragtune.tui.errors import friendly

        self.query_one("#gen-progress", Static).update(
            Content.styled(f"✘ {worker.description} failed: {friendly(worker.error)}", "$error")
        )
