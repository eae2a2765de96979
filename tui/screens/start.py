"""Step 1: start a new run, or open (and resume, or re-attach to) an existing workspace."""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Button, DataTable, Input, Label, Static
from textual.widgets.data_table import RowDoesNotExist

from engine.core.workspace import Workspace
from engine.stages import STAGES, stage_statuses
from tui.screens.base import WizardScreen
from tui.screens.confirm import ConfirmDialog

STAGE_MARK = {
    "done": "✔",
    "partial": "…",
    "incomplete": "…",
    "running": "▶",
    "stale": "↻",
    "to do": "·",
}


def list_workspaces(runs_dir: Path) -> list[tuple[Path, dict[str, str]]]:
    """Run folders under ``runs_dir`` (those with a config or a state dir) and their stage status."""
    if not runs_dir.is_dir():
        return []
    out = []
    for child in sorted(runs_dir.iterdir()):
        if child.is_dir() and is_run_folder(child):
            out.append((child, _states(Workspace(child.resolve()))))
    return out


def is_run_folder(path: Path) -> bool:
    return (path / "config.toml").exists() or (path / ".state").is_dir()


def _states(ws: Workspace) -> dict[str, str]:
    return {stage: st.state for stage, st in stage_statuses(ws).items()}


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
            yield Input(self.wizard.cfg.run.name, id="run-name", compact=True)
            yield Button("Create (F5)", id="new", compact=True, variant="primary")
        yield Static(
            "Existing runs (enter or F6 opens; ✔ done, … partial, · to do):", classes="hint"
        )
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static("", id="start-status", classes="hint")

    def on_mount(self) -> None:
        table = self.query_one("#runs", DataTable)
        table.add_column("run", key="run")
        for stage in STAGES:
            table.add_column(stage, key=stage)
        self.refresh_runs()
        app = self.wizard
        if app.workspace is not None and app.workspace.config_path.exists():
            self.call_after_refresh(self.resume, app.workspace.root)

    def on_screen_resume(self) -> None:
        self.refresh_runs()

    def refresh_runs(self) -> None:
        table = self.query_one("#runs", DataTable)
        table.clear()
        runs = list_workspaces(self.wizard.runs_dir)
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
        app.new_run(name)
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

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "run-name" and self.notice:
            self.notice = ""
            self.refresh_runs()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "new":
            self.action_new_run()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_new_run()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
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
            from tui.errors import friendly

            self.notify(friendly(exc), title="cannot open run", severity="error")
            return
        ws = app.ensure_workspace()
        handle = app.engine.attach(ws)
        if handle is not None:
            app.state.run_handle = handle
            self.notify(f"re-attached to the running process {handle.pid}")
            app.goto("training")
            return
        app.goto(next_step_for(_states(ws)))
