"""Step 5: review a sample of generated rows, edit the prompt, then start the full generation."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, Static, TextArea

from engine.core.events import Progress
from tui.follow import follow_events
from tui.messages import EventsRead, RunAlive, WorkResult
from tui.screens.base import WizardScreen
from tui.screens.confirm import ConfirmDialog

EDITABLE = ("question", "response", "negative_retrieval")
STATUS_STYLE = {"accepted": "green", "rejected": "red", "edited": "yellow", "new": "dim"}


class RowEditor(ModalScreen[dict | None]):
    """Edit one sample row's question, answer and hard negative."""

    DEFAULT_CSS = """
    RowEditor { align: center middle; }
    RowEditor > Vertical { width: 90%; height: auto; border: thick $primary; background: $surface;
        padding: 0 1; }
    RowEditor Horizontal { height: auto; }
    RowEditor Label { width: 12; }
    RowEditor Input { width: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", id="edit.save", tooltip="Keep the edited row"),
        Binding("escape", "cancel", "Cancel", show=False),
        Binding("f2", "cancel", "Cancel", id="edit.cancel", tooltip="Discard changes"),
    ]

    def __init__(self, row: dict[str, Any]) -> None:
        super().__init__()
        self.row = row

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(str(self.row.get("context", ""))[:300], style="dim"))
            for key in EDITABLE:
                with Horizontal():
                    yield Label(key.replace("_", " "))
                    yield Input(str(self.row.get(key, "")), id=f"edit-{key}", compact=True)
            with Horizontal():
                yield Button("Save (ctrl+s)", id="save", variant="primary", compact=True)
                yield Button("Cancel (F2)", id="cancel", compact=True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_save() if event.button.id == "save" else self.action_cancel()

    def action_save(self) -> None:
        row = dict(self.row)
        for key in EDITABLE:
            row[key] = self.query_one(f"#edit-{key}", Input).value
        self.dismiss(row)

    def action_cancel(self) -> None:
        self.dismiss(None)


def describe_progress(done: int, total: int | None, extra: dict[str, Any]) -> str:
    parts = [f"{done}/{total}" if total else f"{done}", "calls"]
    for key, label in (
        ("rows", "rows"),
        ("rows_per_s", "rows/s"),
        ("tokens", "tokens"),
        ("cost_usd", "$"),
    ):
        if key in extra and extra[key] is not None:
            value = extra[key]
            shown = f"{value:.2f}" if isinstance(value, float) else str(value)
            parts.append(f"· {label} {shown}" if label != "$" else f"· ${shown}")
    failures = extra.get("failures") or {}
    if failures:
        parts.append("· failures " + ", ".join(f"{k} {v}" for k, v in failures.items()))
    return " ".join(parts)


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
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f5", "sample", "Sample", id="samples.sample", tooltip="Generate a review sample"),
        Binding(
            "f6",
            "generate_all",
            "Generate all",
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
        self.rows: list[dict[str, Any]] = []
        self.status: list[str] = []
        self.prompt_path = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="samples-top"):
            yield TextArea("", id="prompt", show_line_numbers=False)
            yield DataTable(id="sample-table", cursor_type="row", zebra_stripes=True)
        yield Static("F5 samples rows to review; F6 starts the full run.", id="gen-progress")

    def on_mount(self) -> None:
        table = self.query_one("#sample-table", DataTable)
        table.add_columns("", "question", "answer", "negative", "context")
        self.load_prompt()
        self.on_screen_resume()

    def on_screen_resume(self) -> None:
        self.load_prompt()
        handle = self.wizard.run_handle
        if (
            handle is not None and handle.alive()
        ) or self.wizard.ensure_workspace().generated_path.exists():
            self.start_follow()

    def load_prompt(self) -> None:
        ws = self.wizard.ensure_workspace()
        area = self.query_one("#prompt", TextArea)
        files = sorted(ws.prompts_dir.glob("*.txt")) + sorted(ws.prompts_dir.glob("*.md"))
        if self.wizard.cfg.generation.resolved == "llm-free":
            area.text = (
                "LLM-free generator: no prompt. Queries are held-out sentences,\n"
                "headings and keywords of each chunk."
            )
            area.read_only = True
            self.prompt_path = None
        elif files:
            self.prompt_path = files[0]
            area.text = files[0].read_text(encoding="utf-8")
            area.read_only = False
        else:
            area.text = "The default prompt is written to prompts/ with the first sample (F5)."
            area.read_only = True
            self.prompt_path = None

    def save_prompt(self) -> None:
        area = self.query_one("#prompt", TextArea)
        if self.prompt_path is not None and not area.read_only:
            self.prompt_path.write_text(area.text, encoding="utf-8")

    # -- sampling and review --------------------------------------------

    def action_sample(self) -> None:
        self.save_prompt()
        self.query_one("#gen-progress", Static).update("writing a sample…")
        self.sample_worker(self.wizard.api_key)

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="samples",
        description="Sample generation",
    )
    def sample_worker(self, api_key: str | None) -> None:
        app = self.wizard
        ws = app.ensure_workspace()
        if not ws.chunks_path.exists():
            app.engine.ingest(app.cfg, ws)
        rows = app.engine.sample_rows(app.cfg, ws, None, api_key)
        self.post_message(WorkResult("sample", rows))

    def render_rows(self) -> None:
        table = self.query_one("#sample-table", DataTable)
        table.clear()
        for i, (row, status) in enumerate(zip(self.rows, self.status, strict=True)):
            mark = {"accepted": "✔", "rejected": "✘", "edited": "✎"}.get(status, "·")
            table.add_row(
                Text(mark, style=STATUS_STYLE[status]),
                str(row.get("question", ""))[:80],
                str(row.get("response", ""))[:60],
                str(row.get("negative_retrieval", ""))[:40],
                " ".join(str(row.get("context", "")).split())[:80],
                key=str(i),
            )

    def selected_index(self) -> int | None:
        table = self.query_one("#sample-table", DataTable)
        if not self.rows:
            return None
        return table.cursor_row

    def action_mark(self, status: str) -> None:
        i = self.selected_index()
        if i is None:
            self.notify("sample some rows first (F5)", severity="warning")
            return
        self.status[i] = status
        self.render_rows()
        self.query_one("#sample-table", DataTable).move_cursor(row=min(i + 1, len(self.rows) - 1))
        self.save_review()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        i = int(str(event.row_key.value))

        def done(row: dict | None) -> None:
            if row is not None:
                self.rows[i] = row
                self.status[i] = "edited"
                self.render_rows()
                self.save_review()

        self.app.push_screen(RowEditor(self.rows[i]), done)

    def save_review(self) -> None:
        """Kept beside the run so the reviewed rows survive a restart of the wizard."""
        ws = self.wizard.ensure_workspace()
        data = [
            dict(row, review=status) for row, status in zip(self.rows, self.status, strict=True)
        ]
        (ws.state_dir / "sample_review.json").write_text(json.dumps(data, indent=1, default=str))
        self.wizard.sample_rows = data

    # -- full generation -------------------------------------------------

    def action_generate_all(self) -> None:
        rejected = self.status.count("rejected")
        note = f" {rejected} of {len(self.rows)} sample rows were rejected." if rejected else ""
        question = (
            "Start the full generation in the background?"
            + note
            + " It keeps running if you quit; finished calls are never repeated."
        )

        def go(yes: bool | None) -> None:
            if yes:
                self.start_generation()

        self.app.push_screen(ConfirmDialog(question, yes="Start"), go)

    def start_generation(self) -> None:
        app = self.wizard
        self.save_prompt()
        path = app.save_config()
        app.run_handle = app.engine.start_run(path, stages=["ingest", "generate"])
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
        handle = self.wizard.run_handle
        follow_events(self, path, lambda: handle is not None and handle.alive())

    def on_events_read(self, message: EventsRead) -> None:
        latest = None
        for ev in message.events:
            if isinstance(ev, Progress) and ev.stage == "generate":
                latest = ev
        if latest is not None:
            self.query_one("#gen-progress", Static).update(
                "generation: " + describe_progress(latest.done, latest.total, latest.extra)
            )

    def on_run_alive(self, message: RunAlive) -> None:
        if not message.alive:
            self.query_one("#gen-progress", Static).add_class("hint")

    def on_work_result(self, message: WorkResult) -> None:
        if message.kind == "sample":
            self.rows = list(message.value)
            self.status = ["new"] * len(self.rows)
            self.render_rows()
            self.load_prompt()
            self.query_one("#gen-progress", Static).update(
                f"{len(self.rows)} sample rows: F7 accept · F8 reject · enter edit · F5 again"
            )
            self.query_one("#sample-table", DataTable).focus()

    def worker_failed(self, worker) -> None:
        self.query_one("#gen-progress", Static).update("")
