"""Step 7: start or re-attach to the training run and watch it: losses, GPU, log, cancel.

The run is a separate process writing ``events.jsonl``; this screen only reads
that file, so quitting the wizard never stops training and a re-opened
workspace redraws the whole history.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import RichLog, Static

from engine.core.workspace import STAGES
from tui.follow import follow_events
from tui.messages import EventsRead, RunAlive
from tui.run_model import RunView, format_eta
from tui.screens.base import WizardScreen
from tui.screens.confirm import ConfirmDialog
from tui.widgets.plots import GpuPanel, LossPlot

REDRAW_S = 0.5
LEVEL_STYLE = {"error": "bold red", "warning": "yellow", "info": ""}
STAGE_STYLE = {
    "done": "green",
    "running": "bold",
    "failed": "red",
    "skipped": "dim",
    "stopped": "yellow",
}


class TrainingScreen(WizardScreen):
    STEP = "training"
    HEADING = "Training: generation, training sets, embedder, evaluation, reranker"
    HELP = (
        "F5 saves config.toml and starts every remaining stage in a background process "
        "(the same as `ragtune run config.toml`). Quit whenever you like: the run goes on, "
        "and opening the workspace again re-attaches. F8 stops it cleanly; finished work is kept."
    )
    DEFAULT_CSS = """
    TrainingScreen #train-status { height: 1; }
    TrainingScreen #train-main { height: 1fr; }
    TrainingScreen #train-side { width: 30; padding-left: 1; }
    TrainingScreen #stages { height: auto; margin-top: 1; }
    TrainingScreen #train-log { height: 7; border-top: solid $panel; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "f5",
            "start_run",
            "Start",
            id="training.start",
            tooltip="Save config.toml and run the remaining stages in the background",
        ),
        Binding(
            "f8",
            "cancel_run",
            "Cancel run",
            id="training.cancel",
            tooltip="Stop the run cleanly; finished stages are kept",
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.view = RunView()
        self.alive = False
        self._dirty = False
        self._log_written = 0
        self._following = False
        self._token = 0

    def compose_body(self) -> ComposeResult:
        yield Static("no run yet: F5 starts one", id="train-status")
        with Horizontal(id="train-main"):
            yield LossPlot(id="loss-plot")
            with Vertical(id="train-side"):
                yield GpuPanel(id="gpu")
                yield Static("", id="stages")
        yield RichLog(id="train-log", max_lines=400, wrap=False, markup=False)

    def on_mount(self) -> None:
        self.set_interval(REDRAW_S, self.redraw)
        self._dirty = True
        self.on_screen_resume()

    def on_screen_resume(self) -> None:
        ws = self.wizard.ensure_workspace()
        handle = self.wizard.state.run_handle
        self.alive = handle is not None and handle.alive()
        if not self._following and (self.alive or ws.events_path.exists()):
            self.follow(ws.events_path)

    def follow(self, path: Path) -> None:
        self._following = True
        self._token += 1
        self.view = RunView()
        self._log_written = 0
        self.query_one("#train-log", RichLog).clear()
        self.follow_worker(path, self._token)

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="training-follow",
        description="Following the run",
    )
    def follow_worker(self, path: Path, token: int) -> None:
        handle = self.wizard.state.run_handle
        follow_events(self, path, lambda: handle is not None and handle.alive(), token=token)

    def on_events_read(self, message: EventsRead) -> None:
        if message.token != self._token:
            return
        self.view.apply(message.events)
        self._dirty = True

    def on_run_alive(self, message: RunAlive) -> None:
        if message.token != self._token:
            return
        was = self.alive
        self.alive = message.alive
        if not message.alive:
            self.view.process_gone()
            self._dirty = True
        if was and not message.alive:
            self._following = False
            self._dirty = True
            if self.view.failed:
                self.notify(self.view.failed, title="run stopped", severity="error")
            elif self.view.finished:
                self.notify("run finished: F3 shows the results", title="done")

    def on_worker_state_changed(self, event) -> None:
        super().on_worker_state_changed(event)
        if event.worker.group == "training-follow" and event.worker.is_finished:
            self._following = False

    def redraw(self) -> None:
        """At most every REDRAW_S, however fast events arrive."""
        if not self._dirty:
            return
        self._dirty = False
        v = self.view
        self.query_one(LossPlot).show(v.train_loss, v.eval_loss)
        self.query_one(GpuPanel).show(v.gpus)
        self.query_one("#train-status", Static).update(self.status_text())
        stages = Text()
        for stage in STAGES:
            state = v.stages.get(stage, "")
            mark = {"done": "✔", "running": "▶", "failed": "✘", "skipped": "↷", "stopped": "■"}.get(
                state, "·"
            )
            line = f"{mark} {stage}"
            prog = v.progress.get(stage)
            if prog and state == "running":
                done, total, unit, _ = prog
                line += f" {done}/{total or '?'} {unit}"
            stages.append(line + "\n", style=STAGE_STYLE.get(state, "dim"))
        self.query_one("#stages", Static).update(stages)
        log = self.query_one("#train-log", RichLog)
        lines = list(v.log)
        new = lines[self._log_written :] if self._log_written <= len(lines) else lines
        for level, text in new:
            log.write(Text(text, style=LEVEL_STYLE.get(level, "")))
        self._log_written = len(lines)

    def status_text(self) -> Text:
        v = self.view
        if not v.stages and not v.train_loss:
            return Text("no run yet: F5 starts one", style="dim")
        # What the run said last wins over "the process is alive": a cancelled child takes a
        # moment to exit, and "running generate" after "run failed" was a lie.
        if v.failed:
            cancelled = v.failed.startswith(("cancelled", "interrupted"))
            state = "cancelled" if cancelled else "failed"
        elif v.finished:
            state = "finished"
        else:
            state = "running" if self.alive else "stopped"
        text = Text()
        text.append(
            f"{state} ",
            style={"running": "bold green", "failed": "bold red", "cancelled": "bold yellow"}.get(
                state, "bold"
            ),
        )
        text.append(f"{v.current_stage or '-'}" if state == "running" else "")
        if v.max_steps:
            text.append(f" · {v.model} step {v.step}/{v.max_steps} · epoch {v.epoch:.2f}")
            text.append(f" · ETA {format_eta(v.eta_s if self.alive else 0)}")
        if v.learning_rate:
            text.append(f" · lr {v.learning_rate:.2e}")
        return text

    def action_start_run(self) -> None:
        handle = self.wizard.state.run_handle
        if handle is not None and handle.alive():
            self.notify("a run is already going; F8 cancels it", severity="warning")
            return
        problem = self.wizard.screen_problems()
        if problem:
            self.notify(problem, title="not ready", severity="warning")
            return

        def go(yes: bool | None) -> None:
            if yes:
                self.start()

        gen = self.wizard.cfg.generation.resolved
        self.app.push_screen(
            ConfirmDialog(
                f"Run all remaining stages now (generator: {gen})? "
                "It runs in the background and survives quitting the wizard.",
                yes="Start",
            ),
            go,
        )

    def start(self) -> None:
        app = self.wizard
        path = app.save_config()
        app.state.run_handle = app.engine.start_run(path, stages=None)
        self.alive = True
        self.notify(f"started (pid {app.state.run_handle.pid}); config {path}")
        self.workers.cancel_group(self, "training-follow")
        self.follow(app.ensure_workspace().events_path)

    def action_cancel_run(self) -> None:
        handle = self.wizard.state.run_handle
        if handle is None or not handle.alive():
            self.notify("no run is going", severity="warning")
            return

        def stop(yes: bool | None) -> None:
            if yes and handle.alive():
                handle.cancel()
                self.notify("cancelling: the run stops after the current step")

        self.app.push_screen(
            ConfirmDialog("Stop the run? Finished stages are kept.", yes="Stop run"), stop
        )
