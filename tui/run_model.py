"""What the Training and Results screens show, folded from engine events (no Textual here).

Keeping this separate from widgets means the same state can be rebuilt from a
whole ``events.jsonl`` on re-attach and updated incrementally while following.

``events.jsonl`` holds every run the workspace has seen, one after another: each
``ragtune run`` (and each ingest-only run the chunk preview or the samples start)
writes its stage events and ends with ``RunFinished`` or ``RunFailed``. The view
keeps each run apart (``RunSegment``), so a stage mark, a step count or a
"finished" always belongs to the run it describes, never to the one before.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ragtune.engine.core.event_text import (
    message_text,
    run_failed_text,
    stage_finished_text,
    stage_skipped_text,
)
from ragtune.engine.core.events import (
    EvalRow,
    Event,
    GpuSample,
    Message,
    Progress,
    RunFailed,
    RunFinished,
    StageFinished,
    StageSkipped,
    StageStarted,
    TrainLog,
)
from ragtune.engine.core.payloads import StepProgress

GPU_HISTORY = 120
LOG_LINES = 400
TRAINING_STAGES = ("train", "rerank")


@dataclass
class GpuSeries:
    name: str = ""
    utilization: deque[float] = field(default_factory=lambda: deque(maxlen=GPU_HISTORY))
    memory_pct: deque[float] = field(default_factory=lambda: deque(maxlen=GPU_HISTORY))
    temperature: deque[float] = field(default_factory=lambda: deque(maxlen=GPU_HISTORY))
    memory_used_mb: float = 0.0
    memory_total_mb: float = 0.0


@dataclass
class TrainingProgress:
    """Where the model being trained is, for the header; reset when a training stage starts."""

    model: str = ""
    step: int = 0
    max_steps: int = 0
    epoch: float = 0.0
    learning_rate: float | None = None
    eta_s: float | None = None
    _anchor: tuple[float, int] | None = None
    _last: tuple[float, int] | None = None
    _log_step: int = 0

    @property
    def epoch_now(self) -> float:
        """The epoch at ``step``: trainer logs come every few steps, progress every step, and an
        epoch from the last log beside the current step read as two different moments."""
        if self._log_step and self.epoch:
            return self.epoch * self.step / self._log_step
        return self.epoch

    @property
    def steps_per_s(self) -> float | None:
        """Steps per second since the first step seen in this stage (the ETA's rate)."""
        if self._anchor is None or self._last is None:
            return None
        (t0, s0), (t1, s1) = self._anchor, self._last
        return (s1 - s0) / (t1 - t0) if s1 > s0 and t1 > t0 else None

    def logged(self, step: int, epoch: float) -> None:
        if step > 0 and epoch > 0:
            self.epoch, self._log_step = epoch, step

    def advance(self, time: float, step: int, max_steps: int) -> None:
        """Steps per second since the first step seen in this stage gives the ETA."""
        self.step = max(self.step, step)
        self.max_steps = max_steps or self.max_steps
        if self._anchor is None:
            self._anchor = (time, step)
            return
        t0, s0 = self._anchor
        if step > s0 and time > t0:
            self._last = (time, step)
        if step > s0 and time > t0 and self.max_steps:
            rate = (step - s0) / (time - t0)
            self.eta_s = max(0.0, (self.max_steps - step) / rate)


@dataclass
class RunSegment:
    """One run as ``events.jsonl`` recorded it: its own stage marks, its own ending."""

    started: float
    stages: dict[str, str] = field(default_factory=dict)
    """Only the stages this run reached: running, done, skipped, failed or stopped."""
    current_stage: str = ""
    progress: dict[str, tuple[int, int | None, str, dict[str, Any]]] = field(default_factory=dict)
    training: TrainingProgress = field(default_factory=TrainingProgress)
    finished: bool = False
    seconds: float | None = None
    failure: RunFailed | None = None
    gone: bool = False
    """The process ended without a last word (killed, or lost with the machine)."""
    ingest_ran: bool = False
    skip_reasons: dict[str, str] = field(default_factory=dict)
    stage_since: dict[str, float] = field(default_factory=dict)
    """When each stage started (event time), so a stage that logs nothing for a while still
    shows that it is working."""
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ended(self) -> bool:
        return self.finished or self.failure is not None or self.gone

    @property
    def cancelled(self) -> bool:
        return self.failure is not None and self.failure.cancelled

    @property
    def failed(self) -> bool:
        return self.failure is not None and not self.failure.cancelled

    @property
    def chunks_only(self) -> bool:
        """An ingest-only run that went through (the chunk preview, samples, a cost estimate):
        it made chunks, it did not train anything, so the Training step does not show it."""
        return self.finished and set(self.stages) <= {"ingest"}

    @property
    def training_now(self) -> bool:
        return not self.ended and self.current_stage in TRAINING_STAGES


@dataclass
class RunView:
    run: RunSegment | None = None
    """The latest run in the log, whatever it was."""
    last_training_run: RunSegment | None = None
    """The latest run that was more than a chunk refresh: what the Training step reports."""
    chunks_rebuilt: bool = False
    """An ingest-only run re-chunked the sources after ``last_training_run``."""
    train_loss: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    eval_loss: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    loss_model: str = ""
    """The model whose loss came last: the one the plot shows."""
    gpus: dict[int, GpuSeries] = field(default_factory=dict)
    eval_rows: list[EvalRow] = field(default_factory=list)
    log: deque[tuple[str, str]] = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    logged: int = 0
    """Lines ever logged; ``log`` keeps the last LOG_LINES of them."""
    _held: list[tuple[str, str]] = field(default_factory=list)
    """Stage lines of a run that has touched only ingest so far: a chunk refresh leaves one
    line in the log, not a run's worth."""

    @property
    def shown(self) -> RunSegment | None:
        """A run going now, else the latest run that trained (or tried to)."""
        if self.run is not None and not self.run.ended:
            return self.run
        return self.last_training_run

    @property
    def stages(self) -> dict[str, str]:
        """The marks of the run the Training step shows."""
        run = self.shown
        return run.stages if run else {}

    @property
    def finished(self) -> bool:
        run = self.shown
        return bool(run and run.finished)

    def process_gone(self) -> None:
        """The child exited without saying so (killed, or cancelled mid-write): nothing runs now."""
        run = self.run
        if run is None or run.ended:
            return
        run.gone = True
        self._release()
        for stage, state in run.stages.items():
            if state == "running":
                run.stages[stage] = "stopped"
        self._settle(run)
        where = f" in {run.current_stage}" if run.current_stage else ""
        self._say("warning", f"■ the run stopped{where} without finishing; F5 resumes it")

    def apply(self, events: list[Event]) -> None:
        for event in events:
            self._apply(event)

    def _segment(self, ev: Event) -> RunSegment:
        """The run ``ev`` belongs to: a new one when the previous run has ended."""
        if self.run is None or self.run.ended:
            self.run = RunSegment(started=ev.time)
        return self.run

    def _settle(self, run: RunSegment) -> None:
        if run.chunks_only:
            if run.ingest_ran and self.last_training_run is not None:
                self.chunks_rebuilt = True
        else:
            self.last_training_run = run
            self.chunks_rebuilt = False

    def _apply(self, ev: Event) -> None:
        if isinstance(ev, GpuSample):
            gpu = self.gpus.setdefault(ev.index, GpuSeries(name=ev.name))
            gpu.utilization.append(ev.utilization)
            total = ev.memory_total_mb or 1.0
            gpu.memory_pct.append(100.0 * ev.memory_used_mb / total)
            gpu.temperature.append(ev.temperature_c)
            gpu.memory_used_mb, gpu.memory_total_mb = ev.memory_used_mb, ev.memory_total_mb
            return
        if isinstance(ev, Message):
            line = (ev.level, message_text(ev))
            if self._held and ev.stage == "ingest":
                self._held.append(line)
            else:
                self._say(*line)
            return
        if isinstance(ev, EvalRow):
            self.eval_rows.append(ev)
            return
        run = self._segment(ev)
        if isinstance(ev, (StageStarted, StageSkipped)) and not run.stages:
            self._stage_line(run, ev.stage, "── run started ──")
        if isinstance(ev, StageStarted):
            run.stages[ev.stage] = "running"
            run.current_stage = ev.stage
            run.stage_since[ev.stage] = ev.time
            run.ingest_ran = run.ingest_ran or ev.stage == "ingest"
            if ev.stage in TRAINING_STAGES:
                run.training = TrainingProgress()
            self._stage_line(run, ev.stage, f"▶ {ev.stage} {ev.detail}".rstrip())
        elif isinstance(ev, StageFinished):
            run.stages[ev.stage] = "done"
            run.summaries[ev.stage] = ev.summary or {}
            self._stage_line(run, ev.stage, stage_finished_text(ev))
        elif isinstance(ev, StageSkipped):
            run.stages[ev.stage] = "skipped"
            run.skip_reasons[ev.stage] = ev.reason
            self._stage_line(run, ev.stage, stage_skipped_text(ev))
        elif isinstance(ev, TrainLog):
            self._train_log(run, ev)
        elif isinstance(ev, Progress):
            run.progress[ev.stage] = (ev.done, ev.total, ev.unit, ev.extra)
            if ev.stage in TRAINING_STAGES and ev.unit == "steps" and ev.total:
                model = StepProgress.from_dict(ev.extra).model or run.training.model
                if model != run.training.model:
                    run.training = TrainingProgress(model=model)
                run.training.advance(ev.time, ev.done, ev.total)
        elif isinstance(ev, RunFailed):
            self._release()
            run.failure = ev
            if run.current_stage and run.stages.get(run.current_stage) == "running":
                run.stages[run.current_stage] = "stopped" if ev.cancelled else "failed"
            self._settle(run)
            level = "warning" if ev.cancelled else "error"
            self._say(level, run_failed_text(ev, resume="run again (F5) to resume"))
        elif isinstance(ev, RunFinished):
            run.finished = True
            run.seconds = ev.seconds
            self._settle(run)
            if run.chunks_only:
                for level, line in self._held:
                    if level != "info":
                        self._say(level, line)
                self._held.clear()
                if run.ingest_ran:
                    self._say("info", "✔ chunks rebuilt (an ingest-only run, no training)")
            else:
                self._release()
                self._say("info", f"── run finished in {format_eta(ev.seconds)} ──")

    def _stage_line(self, run: RunSegment, stage: str, line: str) -> None:
        if stage == "ingest" and set(run.stages) <= {"ingest"}:
            self._held.append(("info", line))
            return
        self._release()
        self._say("info", line)

    def _release(self) -> None:
        for level, line in self._held:
            self._say(level, line)
        self._held.clear()

    def _say(self, level: str, line: str) -> None:
        self.log.append((level, line))
        self.logged += 1

    def log_since(self, written: int) -> list[tuple[str, str]]:
        """Lines logged after the first ``written`` ones (those that fell off the end are gone)."""
        new = self.logged - written
        if new <= 0:
            return []
        return list(self.log)[-new:]

    def _train_log(self, run: RunSegment, ev: TrainLog) -> None:
        t = run.training
        if ev.model != t.model:
            run.training = t = TrainingProgress(model=ev.model)
        if ev.split == "train":
            t.advance(ev.time, ev.step, ev.max_steps)
        t.logged(ev.step, ev.epoch)
        # eval and final-summary logs carry no rate of their own (0.0): keep the last real one
        if (
            ev.learning_rate is not None
            and ev.split == "train"
            and (ev.learning_rate > 0 or t.learning_rate is None)
        ):
            t.learning_rate = ev.learning_rate
        if ev.loss is None:
            return
        history = self.train_loss.get(ev.model)
        if ev.split == "train" and history and ev.step <= history[-1][0]:
            # a training that starts over (new settings) is a new curve; a resumed one
            # continues from its checkpoint's step and keeps its history
            self.train_loss[ev.model] = []
            self.eval_loss[ev.model] = []
        target = self.eval_loss if ev.split == "eval" else self.train_loss
        target.setdefault(ev.model, []).append((ev.step, float(ev.loss)))
        self.loss_model = ev.model


def downsample(points: list[tuple[float, float]], buckets: int) -> tuple[list[float], list[float]]:
    """At most ~2 points per bucket (its min and its max, in x order), so spikes stay visible."""
    if buckets <= 0 or len(points) <= 2 * buckets:
        return [p[0] for p in points], [p[1] for p in points]
    xs: list[float] = []
    ys: list[float] = []
    size = len(points) / buckets
    for b in range(buckets):
        part = points[int(b * size) : int((b + 1) * size)]
        if not part:
            continue
        lo = min(part, key=lambda p: p[1])
        hi = max(part, key=lambda p: p[1])
        for p in sorted({lo, hi}, key=lambda p: p[0]):
            xs.append(p[0])
            ys.append(p[1])
    return xs, ys


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
