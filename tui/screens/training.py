"""Step 7: start or re-attach to the training run and watch it: losses, GPU, log, cancel.

The run is a separate process writing ``events.jsonl``; this screen only reads
that file, so quitting the wizard never stops training and a re-opened
workspace redraws the whole history.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import RichLog, Static
from textual.worker import Worker, WorkerState

from ragtune.engine.config.training import LOSSES
from ragtune.engine.core.event_text import not_trained
from ragtune.engine.core.stages import StageStatus
from ragtune.engine.stages import STAGES
from ragtune.tui.follow import follow_events
from ragtune.tui.messages import EventsRead, ProcessSample, RunAlive
from ragtune.tui.run_model import TRAINING_STAGES, RunSegment, RunView, format_eta
from ragtune.tui.screens.base import WizardScreen
from ragtune.tui.screens.confirm import ConfirmDialog
from ragtune.tui.widgets.plots import GpuPanel, LossPlot

REDRAW_S = 0.5
LEVEL_STYLE = {"error": "bold red", "warning": "yellow", "info": ""}
STAGE_STYLE = {
    "done": "green",
    "running": "bold",
    "stopping": "bold yellow",
    "failed": "red",
    "skipped": "dim",
    "stopped": "yellow",
}
STAGE_MARK = {
    "done": "✔",
    "running": "▶",
    "stopping": "■",
    "failed": "✘",
    "skipped": "↷",
    "stopped": "■",
}
SKIP_WORDS = {"up to date": "up to date", "switched off in the config": "off"}
PLAN_MARK = {
    "done": "✔",
    "stale": "↻",
    "to do": "·",
    "partial": "…",
    "incomplete": "…",
    "off": "–",
}
"""The engine's stage status (``ragtune status``), shown while no run is going."""
PENDING = ("stale", "to do", "partial", "incomplete")
PLAN_STYLE = {
    "done": "green",
    "stale": "yellow",
    "to do": "dim",
    "partial": "yellow",
    "incomplete": "yellow",
    "off": "dim",
}

EMBEDDER_LOSSES = {name: choice.label for name, choice in LOSSES.items()}
RERANKER_LOSSES = {
    "bce": "binary cross-entropy on (query, passage) pairs",
    "lambda": "listwise LambdaLoss over each query's passages",
    "mnrl": "in-batch multiple negatives ranking loss",
}
LOSS_HELP = (
    "The loss plot shows the model being trained: each point is the trainer's mean over the "
    "steps since the point before; a point at step 1 is a single batch (with warmup, at "
    "learning rate 0). "
    "Batches differ a lot (on the bundled handbook, one set of weights scores 3.6 to 8.4 "
    "depending on the batch), so points jump. The default distill loss sums, at every "
    "Matryoshka size, a contrastive term that falls as the model learns and a KL term "
    "towards the base model that starts near 0 and grows as the model moves away from it: "
    "its level is not comparable to plain MNRL and a rising stretch is not a failure. The "
    "Results step says whether training helped."
)
NOTE_WIDE = 80
"""From this width on the note under the plot says what the points are, not only the loss."""


def stage_state(run: RunSegment | None, stage: str, stopping: bool) -> str:
    state = run.stages.get(stage, "") if run else ""
    return "stopping" if stopping and state == "running" else state


class TrainingScreen(WizardScreen):
    STEP = "training"
    HEADING = "Training: generation, training sets, embedder, evaluation, reranker"
    HELP = (
        "F5 saves config.toml and starts every remaining stage in a background process "
        "(the same as `ragtune run config.toml`). Quit whenever you like: the run goes on, "
        "and opening the workspace again re-attaches. F8 stops it at the end of the current "
        "step and keeps a checkpoint; F5 then resumes from it. ✔ done in this run, ↷ already "
        "up to date, ▶ running, ■ stopped, ✘ failed, · not reached. " + LOSS_HELP
    )
    DEFAULT_CSS = """
    TrainingScreen #train-status { height: auto; max-height: 3; }
    TrainingScreen #train-main { height: 1fr; }
    TrainingScreen #train-plot { width: 1fr; }
    TrainingScreen #loss-note { height: auto; max-height: 5; color: $text-muted; }
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
            tooltip="Stop the run at the end of the current step; F5 resumes it",
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.view = RunView()
        self.alive = False
        self.stopping = False
        """Cancel was sent and the run has not stopped yet."""
        self.started_at: float | None = None
        """When F5 started a run whose first event has not arrived yet."""
        self._dirty = False
        self._log_written = 0
        self._following = False
        self._token = 0
        self.process: ProcessSample | None = None
        """The run's latest CPU and memory sample."""
        self.plan: dict[str, StageStatus] = {}
        """The engine's status of every stage for the config as it is now."""

    def compose_body(self) -> ComposeResult:
        yield Static("no run yet: F5 starts one", id="train-status")
        with Horizontal(id="train-main"):
            with Vertical(id="train-plot"):
                yield LossPlot(id="loss-plot")
                yield Static("", id="loss-note")
            with Vertical(id="train-side"):
                yield GpuPanel(id="gpu")
                yield Static("", id="stages")
        yield RichLog(id="train-log", max_lines=400, min_width=20, wrap=True, markup=False)

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
        self.plan_worker()

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="training-plan",
        description="Reading the stage status",
    )
    def plan_worker(self) -> dict[str, StageStatus]:
        app = self.wizard
        return app.engine.stage_status(app.cfg, app.ensure_workspace())

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
        pid = handle.pid if handle is not None and handle.pid > 0 else None
        follow_events(
            self, path, lambda: handle is not None and handle.alive(), token=token, pid=pid
        )

    def on_process_sample(self, message: ProcessSample) -> None:
        if message.token == self._token:
            self.process = message
            self._dirty = True

    def on_events_read(self, message: EventsRead) -> None:
        if message.token != self._token:
            return
        self.view.apply(message.events)
        run = self.view.run
        if self.started_at is not None and run is not None and run.started >= self.started_at:
            self.started_at = None
        if self.stopping and run is not None and run.ended:
            self.stopping = False
        self._dirty = True

    def on_run_alive(self, message: RunAlive) -> None:
        if message.token != self._token:
            return
        was = self.alive
        self.alive = message.alive
        if not message.alive:
            self.view.process_gone()
            self.stopping = False
            self.started_at = None
            self._dirty = True
        if was and not message.alive:
            self._following = False
            self._dirty = True
            self.plan_worker()
            run = self.view.shown
            if run is None:
                return
            if run.cancelled:
                self.notify(f"run cancelled: {self.again(run)}", title="run stopped")
            elif run.failure is not None:
                self.notify(run.failure.error, title="run failed", severity="error")
            elif run.finished:
                trained = any(s in run.stages for s in TRAINING_STAGES)
                self.notify(
                    "run finished: F3 shows the results"
                    if trained
                    else f"{', '.join(run.stages)} finished; training has not run yet",
                    title="done",
                )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "training-follow" and event.worker.is_finished:
            self._following = False
        if event.worker.group == "training-plan" and event.state == WorkerState.SUCCESS:
            self.plan = event.worker.result
            self._dirty = True

    def on_resize(self, event: events.Resize) -> None:
        """Log lines are wrapped when written: a new width re-wraps them all. The log takes
        a quarter of a tall terminal (7 rows at 24)."""
        self._log_written = 0
        log = self.query_one("#train-log", RichLog)
        log.clear()
        log.styles.height = max(7, event.size.height // 4)
        self._dirty = True

    def redraw(self) -> None:
        """At most every REDRAW_S, however fast events arrive."""
        if not self._dirty:
            return
        self._dirty = False
        v = self.view
        model = v.loss_model
        plot = self.query_one(LossPlot)
        plot.show(v.train_loss.get(model, []), v.eval_loss.get(model, []), self.loss_title(model))
        self.query_one("#loss-note", Static).update(self.loss_note(model))
        self.query_one(GpuPanel).show(v.gpus, self.cpu_text())
        self.query_one("#train-status", Static).update(self.status_text())
        self.query_one("#stages", Static).update(self.stages_text())
        log = self.query_one("#train-log", RichLog)
        # RichLog measures a line against the whole terminal's width; the log's own width
        # is what a wrapped line must fit in
        width = log.scrollable_content_region.width or None
        for level, text in v.log_since(self._log_written):
            log.write(Text(text, style=LEVEL_STYLE.get(level, "")), width=width)
        self._log_written = v.logged

    # -- what is on screen ---------------------------------------------

    def cpu_text(self) -> str:
        """Without GPU samples: the run's CPU and memory, its training rate and ETA."""
        lines = ["no GPU: a CPU run"]
        proc = self.process
        if proc is not None and self.alive:
            lines.append(f"CPU {proc.cpu_percent:.0f}% ({proc.cores} cores = {proc.cores}00%)")
            lines.append(f"memory {proc.rss_mb / 1024:.2f} GB resident")
        run = self.view.shown
        if run is not None and run.training_now:
            t = run.training
            rate = t.steps_per_s
            cfg = self.wizard.cfg
            batch = cfg.embedder.batch_size if t.model == "embedder" else cfg.reranker.batch_size
            if rate:
                lines.append(f"{rate * batch:.1f} samples/s ({rate:.2f} steps/s × batch {batch})")
            if t.eta_s is not None:
                lines.append(f"ETA {format_eta(t.eta_s)}")
        return "\n".join(lines)

    def loss_title(self, model: str) -> str:
        if not model:
            return "loss"
        cfg = self.wizard.cfg
        name = cfg.embedder.loss if model == "embedder" else cfg.reranker.loss
        return f"{model} training loss ({name}) by step"

    def loss_note(self, model: str) -> str:
        """What the curve's numbers are, so a level or a rise that is normal for it does not alarm."""
        cfg = self.wizard.cfg
        if model == "reranker":
            name = cfg.reranker.loss
            what = RERANKER_LOSSES.get(name, name)
        elif model == "embedder":
            name = cfg.embedder.loss
            dims = cfg.embedder.matryoshka_dims
            sizes = f"{len(dims)} Matryoshka sizes" if dims else "every Matryoshka size"
            what = f"{EMBEDDER_LOSSES.get(name, name)}, summed over {sizes}"
        else:
            return ""
        wide = self.query_one("#loss-note", Static).size.width >= NOTE_WIDE
        if not wide:
            return f"{name} = {what}. Jumps by batch; F1 explains."
        points = self.view.train_loss.get(model) or [(0, 0.0)]
        first = " (step 1: a single batch)" if points[0][0] == 1 else ""
        grows = model == "embedder" and name in ("distill", "hybrid_distill")
        return (
            f"{name} = {what}. Each point is the mean since the one before{first}. Batches "
            "differ a lot"
            + (", and the KL part grows as the model leaves the base" if grows else "")
            + ": jumps and rises are normal. Results (F3) tell; F1 explains."
        )

    def stages_text(self) -> Text:
        v = self.view
        run = v.shown
        chunks_only = run is None and v.run is not None and v.run.chunks_only
        if chunks_only:
            run = v.run  # no training run yet: the chunks an ingest-only run left are ready
        text = Text()
        for stage in STAGES:
            state = stage_state(run, stage, self.stopping)
            if chunks_only and state == "skipped":
                state = "done"
            if self.started_at is not None:
                state = ""
            planned = self.planned(stage)
            if planned is not None and (planned.state in PENDING or not state):
                # what the engine would do now outranks what the last run did
                text.append(self.plan_line(stage, planned) + "\n", style=PLAN_STYLE[planned.state])
                continue
            line = f"{STAGE_MARK.get(state, '·')} {stage}"
            if run is not None and state == "done" and not_trained(run.summaries.get(stage)):
                line += "  not trained"
            if run is not None and state == "skipped":
                reason = run.skip_reasons.get(stage, "")
                line += f"  {SKIP_WORDS.get(reason, 'skipped')}"
            prog = run.progress.get(stage) if run is not None else None
            if state == "stopping":
                line += "  stopping…"
            elif prog and state == "running":
                done, total, unit, _ = prog
                line += f" {done}/{total or '?'} {unit}"
            text.append(line + "\n", style=STAGE_STYLE.get(state, "dim"))
        return text

    def planned(self, stage: str) -> StageStatus | None:
        """The engine's status of ``stage`` while nothing runs (a run's own marks win then)."""
        if self.alive or self.started_at is not None:
            return None
        return self.plan.get(stage)

    @staticmethod
    def plan_line(stage: str, status: StageStatus) -> str:
        line = f"{PLAN_MARK.get(status.state, '·')} {stage}  {status.state}"
        if status.state == "stale" and status.reasons:
            # on a line of its own: the side panel is 30 columns
            line += "\n    " + ", ".join(status.reasons)
        return line

    def pending(self) -> list[str]:
        """Stages the engine would run now: to do, or stale since a setting changed."""
        return [s for s in STAGES if (st := self.planned(s)) is not None and st.state in PENDING]

    def finished_text(self, run: RunSegment) -> Text:
        """A finished run, and what it means now: results only when the engine has them, and
        a setting changed since named with the stages it makes stale."""
        text = Text()
        text.append("finished ", style="bold")
        text.append(f"in {format_eta(run.seconds)}")
        plan = self.plan
        results = (
            plan["evaluate"].state in ("done", "stale")
            if "evaluate" in plan
            else "evaluate" in run.stages
        )
        trained = [s for s in TRAINING_STAGES if s in run.stages]
        if not trained and not results:
            ran = ", ".join(run.stages) or "nothing"
            text.append(f" ({ran} only): training has not run yet · F5 runs the remaining stages")
            return text
        stale = [s for s in self.pending() if plan[s].state == "stale"]
        todo = [s for s in self.pending() if plan[s].state != "stale"]
        if stale:
            said = {r for s in stale for r in plan[s].reasons}
            reasons = sorted({r for r in said if not r.endswith("(upstream)")} or said)
            text.append(" · changed since: ", style="yellow")
            text.append(f"{', '.join(reasons)} → {', '.join(stale)} stale", style="yellow")
        if todo:
            text.append(f" · {', '.join(todo)} not run yet")
        if stale or todo:
            text.append(" · F5 reruns them")
        if results:
            text.append(
                " · F3 shows the last results" if stale or todo else " · F3 shows the results"
            )
        if self.view.chunks_rebuilt:
            text.append(" · the chunks were rebuilt since: F5 reruns what they changed")
        return text

    def status_text(self) -> Text:
        v = self.view
        run = v.shown
        text = Text()
        if self.started_at is not None and self.alive:
            text.append("starting ", style="bold green")
            text.append("the run (loading the engine and the models)…")
            return text
        if run is None:
            text.append("no run yet: F5 runs every stage", style="dim")
            if v.run is not None and v.run.chunks_only:
                text.append(" (the chunks are ready)", style="dim")
            return text
        where = run.current_stage or "-"
        if not run.ended:
            if self.stopping:
                text.append("stopping… ", style="bold yellow")
                text.append(f"{where}: ends after the current step and keeps a checkpoint")
                return text
            text.append("running ", style="bold green")
            text.append(where)
            text.append(self.stage_detail(run))
            return text
        if run.finished:
            return self.finished_text(run)
        if run.cancelled or run.gone:
            text.append("cancelled " if run.cancelled else "stopped ", style="bold yellow")
            text.append(f"in {where}")
            t = run.training
            if where in TRAINING_STAGES and t.max_steps:
                text.append(f" at {t.model} step {t.step}/{t.max_steps}")
            text.append(f" · {self.again(run)}")
            return text
        text.append("failed ", style="bold red")
        error = run.failure.error if run.failure else ""
        text.append(f"in {where}: {error}" if run.current_stage else error)
        return text

    @staticmethod
    def again(run: RunSegment) -> str:
        """What F5 does after a stop: training resumes a checkpoint, other stages keep their work."""
        if run.current_stage in TRAINING_STAGES:
            return "F5 resumes from the last checkpoint"
        return "F5 continues where it stopped; finished work is kept"

    def stage_detail(self, run: RunSegment) -> str:
        """The running stage's own progress: steps, epoch, ETA and rate while training, and
        how long it has been at it (saving a model or evaluating logs nothing for a while)."""
        stage = run.current_stage
        t = run.training
        since = run.stage_since.get(stage)
        took = time.time() - since if since else -1.0
        elapsed = f" · {format_eta(took)} in {stage}" if took >= 0 else ""
        if stage in TRAINING_STAGES and t.max_steps:
            if t.step >= t.max_steps:
                return f" · {t.model} trained ({t.max_steps} steps): saving the model{elapsed}"
            parts = [f" · {t.model} step {t.step}/{t.max_steps}", f"epoch {t.epoch_now:.2f}"]
            parts.append(f"ETA {format_eta(t.eta_s)}")
            if t.learning_rate:
                parts.append(f"lr {t.learning_rate:.2e}")
            return " · ".join(parts)
        prog = run.progress.get(stage)
        if prog:
            done, total, unit, _ = prog
            return f" · {done}/{total or '?'} {unit}{elapsed}"
        return elapsed

    # -- actions -----------------------------------------------------------

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
        generating = "generate" not in self.plan or self.plan["generate"].state != "done"
        self.app.push_screen(
            ConfirmDialog(
                f"Run all remaining stages now (generator: {gen})?"
                + (self.wizard.state.paid_run_note() if generating else "")
                + " It runs in the background and survives quitting the wizard.",
                yes="Start",
            ),
            go,
        )

    def start(self) -> None:
        app = self.wizard
        path = app.save_config()
        self.started_at = time.time() - 1.0
        self.stopping = False
        app.state.run_handle = app.engine.start_run(path, stages=None, api_key=app.state.api_key)
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
                self.stopping = True
                self._dirty = True
                self.redraw()

        self.app.push_screen(
            ConfirmDialog(
                "Stop the run? It ends after the current step; finished stages and the last "
                "checkpoint are kept, and F5 resumes.",
                yes="Stop run",
            ),
            stop,
        )
