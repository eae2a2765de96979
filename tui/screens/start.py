"""Step 1: start a new run, or open (and resume, or re-attach to) an existing workspace."""

from __future__ import annotations

import copy
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Button, Label, Static
from textual.widgets.data_table import RowDoesNotExist
from textual.worker import Worker, WorkerState

from ragtune.engine.stages import STAGES
from ragtune.tui.engine_client import is_run_folder
from ragtune.tui.screens.base import WizardScreen
from ragtune.tui.screens.confirm import ConfirmDialog
from ragtune.tui.widgets.data_table import DataTable
from ragtune.tui.widgets.text_entry import Input

if TYPE_CHECKING:
    from ragtune.engine.config import RunConfig

STAGE_MARK = {
    "done": "✔",
    "stale": "↻",
    "partial": "…",
    "incomplete": "…",
    "running": "▶",
    "to do": "·",
    "off": "–",
}
# below this width the longest stage names are shortened so every column is on screen
NARROW = 100
SHORT = {"generate": "gen", "prepare": "prep", "evaluate": "eval"}


def next_step_for(status: dict[str, str]) -> str:
    """Where a resumed run continues: results once there are any (even if settings changed
    since), else the first step whose stage has not produced its output."""
    produced = {"done", "stale"}
    if status.get("evaluate") in produced:
        return "results"
    if (
        status.get("generate") in {*produced, "partial", "incomplete"}
        or status.get("train") in produced
    ):
        return "training"
    if status.get("ingest") in produced:
        return "llm"
    return "sources"


class StartScreen(WizardScreen):
    STEP = "start"
    HEADING = "Start: a new run, or pick up an existing one"
    HELP = (
        "A run is one folder (workspace) holding its config, chunks, generated rows, models "
        "and metrics. Open one to resume it; a training run still going is re-attached."
    )
    DEFAULT_CSS = """
    StartScreen #new-row { height: auto; margin: 1 0; }
    StartScreen #new-row Label { padding: 0 1 0 0; }
    StartScreen #run-name { width: 30; }
    StartScreen #runs { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f5", "new_run", "New run", id="start.new", tooltip="Start a run with this name"),
        Binding("f6", "open_selected", "Open", id="start.open", tooltip="Open the highlighted run"),
    ]

    notice = ""
    """Why the last "New run" was refused; kept until the name changes."""

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="new-row"):
            yield Label("New run named")
            # Empty, so typing names the new run (the open run's name would only be refused).
            yield Input(placeholder="a folder name, e.g. handbook", id="run-name", compact=True)
            yield Button("Create (F5)", id="new", compact=True, variant="primary")
        yield Static(
            "Existing runs (enter or F6 opens; ✔ done, ↻ stale: a setting changed, … partial, "
            "▶ running, · to do, – off):",
            classes="hint",
            id="runs-legend",
        )
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static("", id="start-status", classes="hint")

    def on_mount(self) -> None:
        self.narrow: bool | None = None
        self.set_columns()
        self.refresh_runs()
        app = self.wizard
        if app.workspace is not None and app.workspace.config_path.exists():
            self.call_after_refresh(self.resume, app.workspace.root)

    AUTO_FOCUS = "#run-name"

    def set_columns(self) -> bool:
        """Nine stages do not fit 80 columns under their full names; says whether it changed."""
        narrow = self.app.size.width < NARROW
        if narrow == self.narrow:
            return False
        self.narrow = narrow
        table = self.query_one("#runs", DataTable)
        table.clear(columns=True)
        table.add_column("run", key="run")
        for stage in STAGES:
            table.add_column(SHORT.get(stage, stage) if narrow else stage, key=stage)
        return True

    def on_resize(self) -> None:
        if self.set_columns():
            self.refresh_runs()

    def on_screen_resume(self) -> None:
        """Back on Start, typing names a new run: the field has the focus, and is emptied
        when it holds the open run's name (which would only be refused)."""
        self.refresh_runs()
        name = self.query_one("#run-name", Input)
        if self.wizard.workspace is not None and name.value.strip() == self.wizard.cfg.run.name:
            name.value = ""
        name.focus()

    def refresh_runs(self) -> None:
        """The marks check every run's outputs and sources (stat calls, parquet footers,
        model configs): slow on a big corpus or a network mount, so a worker reads them."""
        app = self.wizard
        current = copy.deepcopy(app.cfg) if app.workspace is not None else None
        self.runs_worker(app.runs_dir, current)

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="start-runs",
        description="Reading each run's stage status",
    )
    def runs_worker(
        self, runs_dir: Path, current: RunConfig | None
    ) -> list[tuple[Path, dict[str, str]]]:
        return self.wizard.engine.run_statuses(runs_dir, current)

    def show_runs(self, runs: list[tuple[Path, dict[str, str]]]) -> None:
        table = self.query_one("#runs", DataTable)
        table.clear()
        for path, status in runs:
            marks = [STAGE_MARK.get(status[s], "?") for s in STAGES]
            table.add_row(path.name, *marks, key=str(path))
        if self.notice:
            self.status(self.notice, "bad")
            return
        self.status(
            f"{len(runs)} run(s) in {self.wizard.runs_dir}"
            if runs
            else f"no runs yet in {self.wizard.runs_dir}"
        )

    def action_new_run(self) -> None:
        name = self.query_one("#run-name", Input).value.strip()
        if not name or "/" in name or name.startswith("."):
            self.notify("give the run a folder name, e.g. handbook", severity="warning")
            return
        app = self.wizard
        root = app.runs_dir / name
        if is_run_folder(root):
            self.refuse_existing(root)
            return
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            self.notice = f"✘ {root} already exists and is not a ragtune run: pick another name"
            self.status(self.notice, "bad")
            self.query_one("#run-name", Input).focus()
            return
        self.status(f"creating {name!r}: checking whether the model Hub can be reached…")
        self.hub_worker(name)

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="start-hub",
        description="Checking whether the model Hub can be reached",
    )
    def hub_worker(self, name: str) -> tuple[str, bool]:
        """A new run's default models are swapped for local ones where the Hub cannot be
        reached; the probe can take 2 s, so it runs here, not on the UI thread."""
        return name, self.wizard.engine.hub_reachable()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        group, state = event.worker.group, event.state
        if group == "start-runs" and state == WorkerState.ERROR:
            from ragtune.tui.errors import friendly

            self.status(f"✘ {friendly(event.worker.error)}", "bad")
            return
        if state != WorkerState.SUCCESS:
            return
        if group == "start-runs":
            self.show_runs(event.worker.result)
            return
        if group != "start-hub":
            return
        name, online = event.worker.result
        if not self.is_current or self.query_one("#run-name", Input).value.strip() != name:
            self.refresh_runs()
            return  # the user typed another name or left meanwhile: that F5 is not this one
        app = self.wizard
        app.new_run(name, online=online)
        app.ensure_workspace()
        app.goto("sources")

    def refuse_existing(self, root: Path) -> None:
        """A new run must never take over an old one: its settings would be reset to
        defaults and F5 would rerun it from scratch. Offer to open it instead."""
        table = self.query_one("#runs", DataTable)
        with suppress(RowDoesNotExist):
            table.move_cursor(row=table.get_row_index(str(root)))
        self.notice = (
            f"✘ a run named {root.name!r} already exists: F6 opens it, or type another name"
        )
        self.status(self.notice, "bad")

        def answer(open_it: bool | None) -> None:
            if open_it:
                self.resume(root)
            else:
                self.query_one("#run-name", Input).focus()

        self.app.push_screen(
            ConfirmDialog(
                f"A run named {root.name!r} already exists in {root.parent}. Open it (its "
                "settings and results as they are), or go back and pick another name?",
                yes="Open it",
                no="Another name",
            ),
            answer,
        )

    def status(self, text: str, kind: str = "hint") -> None:
        widget = self.query_one("#start-status", Static)
        widget.set_classes(kind)
        widget.update(text)

    @on(Input.Changed, "#run-name")
    def name_changed(self) -> None:
        if self.notice:
            self.notice = ""
            self.refresh_runs()

    @on(Button.Pressed, "#new")
    @on(Input.Submitted, "#run-name")
    def new_run_asked(self) -> None:
        self.action_new_run()

    @on(DataTable.RowSelected, "#runs")
    def run_selected(self, event: DataTable.RowSelected) -> None:
        self.resume(Path(str(event.row_key.value)))

    def action_open_selected(self) -> None:
        table = self.query_one("#runs", DataTable)
        if table.row_count == 0:
            self.notify("no run to open; create one with F5", severity="warning")
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        self.resume(Path(str(key.value)))

    def resume(self, root: Path) -> None:
        app = self.wizard
        self.notice = ""
        try:
            app.open_workspace(root)
        except Exception as exc:
            from ragtune.tui.errors import friendly

            self.notify(friendly(exc), title="cannot open run", severity="error")
            return
        ws = app.ensure_workspace()
        handle = app.engine.attach(ws)
        if handle is not None:
            app.state.run_handle = handle
            self.notify(f"re-attached to the running process {handle.pid}")
            app.goto("training")
            return
        app.goto(next_step_for(app.engine.run_status(ws.root)))
