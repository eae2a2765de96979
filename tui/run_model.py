"""What the Training and Results screens show, folded from engine events (no Textual here).

Keeping this separate from widgets means the same state can be rebuilt from a
whole ``events.jsonl`` on re-attach and updated incrementally while following.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from engine.core.events import (
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

GPU_HISTORY = 120
LOG_LINES = 400


@dataclass
class GpuSeries:
    name: str = ""
    utilization: deque[float] = field(default_factory=lambda: deque(maxlen=GPU_HISTORY))
    memory_pct: deque[float] = field(default_factory=lambda: deque(maxlen=GPU_HISTORY))
    temperature: deque[float] = field(default_factory=lambda: deque(maxlen=GPU_HISTORY))
    memory_used_mb: float = 0.0
    memory_total_mb: float = 0.0


@dataclass
class RunView:
    stages: dict[str, str] = field(default_factory=dict)
    current_stage: str = ""
    model: str = ""
    train_loss: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    eval_loss: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    step: int = 0
    max_steps: int = 0
    epoch: float = 0.0
    learning_rate: float | None = None
    eta_s: float | None = None
    progress: dict[str, tuple[int, int | None, str, dict[str, Any]]] = field(default_factory=dict)
    gpus: dict[int, GpuSeries] = field(default_factory=dict)
    eval_rows: list[EvalRow] = field(default_factory=list)
    log: deque[tuple[str, str]] = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    finished: bool = False
    failed: str = ""
    _rate_anchor: tuple[float, int] | None = None

    def process_gone(self) -> None:
        """The child exited without saying so (killed, or cancelled mid-write): nothing runs now."""
        for stage, state in self.stages.items():
            if state == "running":
                self.stages[stage] = "failed" if self.failed else "stopped"

    def apply(self, events: list[Event]) -> None:
        for event in events:
            self._apply(event)

    def _apply(self, ev: Event) -> None:
        if isinstance(ev, StageStarted):
            self.stages[ev.stage] = "running"
            self.current_stage = ev.stage
            self.finished = False
            self.failed = ""
            self.log.append(("info", f"▶ {ev.stage} {ev.detail}".rstrip()))
        elif isinstance(ev, StageFinished):
            self.stages[ev.stage] = "done"
            self.log.append(("info", f"✔ {ev.stage} in {ev.seconds:.1f}s"))
        elif isinstance(ev, StageSkipped):
            self.stages[ev.stage] = "skipped"
            self.log.append(("info", f"↷ {ev.stage} skipped: {ev.reason}"))
        elif isinstance(ev, TrainLog):
            self._train_log(ev)
        elif isinstance(ev, Progress):
            self.progress[ev.stage] = (ev.done, ev.total, ev.unit, ev.extra)
        elif isinstance(ev, GpuSample):
            gpu = self.gpus.setdefault(ev.index, GpuSeries(name=ev.name))
            gpu.utilization.append(ev.utilization)
            total = ev.memory_total_mb or 1.0
            gpu.memory_pct.append(100.0 * ev.memory_used_mb / total)
            gpu.temperature.append(ev.temperature_c)
            gpu.memory_used_mb, gpu.memory_total_mb = ev.memory_used_mb, ev.memory_total_mb
        elif isinstance(ev, EvalRow):
            self.eval_rows.append(ev)
        elif isinstance(ev, Message):
            where = f"{ev.where}: " if ev.where else ""
            hint = f" (fix: {ev.hint})" if ev.hint else ""
            self.log.append((ev.level, f"{where}{ev.text}{hint}"))
        elif isinstance(ev, RunFailed):
            self.failed = ev.error or "failed"
            if self.current_stage:
                self.stages[self.current_stage] = "failed"
            hint = f" (fix: {ev.hint})" if ev.hint else ""
            self.log.append(("error", f"run failed: {ev.error}{hint}"))
        elif isinstance(ev, RunFinished):
            self.finished = True
            self.log.append(("info", f"run finished in {ev.seconds:.0f}s"))

    def _train_log(self, ev: TrainLog) -> None:
        if ev.model != self.model:
            self.model = ev.model
            self._rate_anchor = None
        self.step = ev.step
        self.max_steps = ev.max_steps or self.max_steps
        self.epoch = ev.epoch
        history = self.train_loss.get(ev.model)
        if ev.split == "train" and history and ev.step < history[-1][0]:
            self.train_loss[ev.model] = []
            self.eval_loss[ev.model] = []
        if ev.loss is not None:
            target = self.eval_loss if ev.split == "eval" else self.train_loss
            target.setdefault(ev.model, []).append((ev.step, float(ev.loss)))
        # eval and final-summary logs carry no rate of their own (0.0): keep the last real one
        if (
            ev.learning_rate is not None
            and ev.split == "train"
            and (ev.learning_rate > 0 or self.learning_rate is None)
        ):
            self.learning_rate = ev.learning_rate
        if ev.split == "train":
            if self._rate_anchor is None:
                self._rate_anchor = (ev.time, ev.step)
            else:
                t0, s0 = self._rate_anchor
                if ev.step > s0 and ev.time > t0 and self.max_steps:
                    rate = (ev.step - s0) / (ev.time - t0)
                    self.eta_s = max(0.0, (self.max_steps - ev.step) / rate)


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
