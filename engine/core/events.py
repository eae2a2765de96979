"""Typed events that every stage emits and that the CLI and the TUI render.

The schema is the contract between the engine and its front ends: one JSON
object per line in ``events.jsonl``, with a ``kind`` key naming the class below
and the fields of that class. Front ends must ignore kinds and fields they do
not know, so the engine may add both without breaking an older TUI.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from ragtune.engine.core.dist import is_main_process
from ragtune.engine.core.payloads import Payload
from ragtune.engine.core.redact import redact


@dataclass(kw_only=True)
class Event:
    kind: ClassVar[str] = "event"
    stage: str = ""
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


@dataclass(kw_only=True)
class StageStarted(Event):
    kind: ClassVar[str] = "stage_started"
    detail: str = ""


@dataclass(kw_only=True)
class StageFinished(Event):
    kind: ClassVar[str] = "stage_finished"
    seconds: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)
    """A payload's ``to_dict`` (``ragtune.engine.core.payloads``); read it back with its ``from_dict``."""


@dataclass(kw_only=True)
class StageSkipped(Event):
    """The stage's output already exists for the same inputs and settings."""

    kind: ClassVar[str] = "stage_skipped"
    reason: str = ""


@dataclass(kw_only=True)
class Progress(Event):
    kind: ClassVar[str] = "progress"
    done: int = 0
    total: int | None = None
    unit: str = "items"
    extra: dict[str, Any] = field(default_factory=dict)
    """A payload's ``to_dict``; read it back with that payload's ``from_dict``."""


@dataclass(kw_only=True)
class TrainLog(Event):
    """One trainer log line; ``split`` is "train" or "eval" so plots can separate curves."""

    kind: ClassVar[str] = "train_log"
    model: str = "embedder"
    split: str = "train"
    step: int = 0
    max_steps: int = 0
    epoch: float = 0.0
    loss: float | None = None
    learning_rate: float | None = None
    values: dict[str, float] = field(default_factory=dict)


@dataclass(kw_only=True)
class EvalRow(Event):
    """Metrics for one model at one Matryoshka dimension (``dim`` 0 for rerankers)."""

    kind: ClassVar[str] = "eval_row"
    model: str = "base"
    dim: int = 0
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(kw_only=True)
class GpuSample(Event):
    kind: ClassVar[str] = "gpu_sample"
    index: int = 0
    rank: int = 0
    name: str = ""
    utilization: float = 0.0
    memory_used_mb: float = 0.0
    memory_total_mb: float = 0.0
    temperature_c: float = 0.0


@dataclass(kw_only=True)
class Message(Event):
    """A human-readable note; ``level`` warning/error items name the file or row in ``where``."""

    kind: ClassVar[str] = "message"
    level: str = "info"
    text: str = ""
    where: str = ""
    hint: str = ""


@dataclass(kw_only=True)
class RunFailed(Event):
    """The run stopped before its last stage: an error, or a cancel the user asked for."""

    kind: ClassVar[str] = "run_failed"
    error: str = ""
    hint: str = ""
    error_type: str = ""

    @property
    def cancelled(self) -> bool:
        """Stopped on request (Ctrl-C, Cancel): finished work is kept and a rerun resumes."""
        return self.error_type == "Cancelled"


@dataclass(kw_only=True)
class RunFinished(Event):
    kind: ClassVar[str] = "run_finished"
    workspace: str = ""
    seconds: float = 0.0


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        StageStarted,
        StageFinished,
        StageSkipped,
        Progress,
        TrainLog,
        EvalRow,
        GpuSample,
        Message,
        RunFailed,
        RunFinished,
    )
}


def event_from_dict(data: dict[str, Any]) -> Event | None:
    """Rebuild an event, dropping unknown fields; unknown kinds give None."""
    cls = EVENT_TYPES.get(str(data.get("kind", "")))
    if cls is None:
        return None
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


EventSink = Callable[[Event], None]


class Emitter:
    """Fans events out to sinks; thread-safe, and quiet on non-zero ranks."""

    def __init__(self, *sinks: EventSink, stage: str = "") -> None:
        self._sinks: list[EventSink] = list(sinks)
        self._lock = threading.Lock()
        self.stage = stage
        self._last_progress: dict[str, float] = {}

    def add(self, sink: EventSink) -> None:
        self._sinks.append(sink)

    def remove(self, sink: EventSink) -> None:
        if sink in self._sinks:
            self._sinks.remove(sink)

    def for_stage(self, stage: str) -> Emitter:
        child = Emitter(stage=stage)
        child._sinks = self._sinks
        child._lock = self._lock
        child._last_progress = self._last_progress
        return child

    def emit(self, event: Event) -> None:
        if not event.stage:
            event.stage = self.stage
        if not is_main_process():
            return
        if isinstance(event, (Message, RunFailed)):
            # Error texts quote what they were given, and a key may be among it.
            for name in ("text", "where", "hint", "error"):
                if isinstance(getattr(event, name, None), str):
                    setattr(event, name, redact(getattr(event, name)))
        with self._lock:
            for sink in self._sinks:
                sink(event)

    def progress(
        self,
        done: int,
        total: int | None = None,
        unit: str = "items",
        *,
        every: float = 0.25,
        extra: Payload | None = None,
    ) -> None:
        """Emit progress at most every ``every`` seconds, always the first and last;
        ``extra`` is the stage's own counters (``ragtune.engine.core.payloads``)."""
        now = time.monotonic()
        last = self._last_progress.get(self.stage)
        final = total is not None and done >= total
        if last is not None and not final and now - last < every:
            return
        self._last_progress[self.stage] = now
        self.emit(
            Progress(done=done, total=total, unit=unit, extra=extra.to_dict() if extra else {})
        )

    def info(self, text: str, **kw: str) -> None:
        self.emit(Message(level="info", text=text, **kw))

    def warning(self, text: str, *, where: str = "", hint: str = "") -> None:
        self.emit(Message(level="warning", text=text, where=where, hint=hint))

    def error(self, text: str, *, where: str = "", hint: str = "") -> None:
        self.emit(Message(level="error", text=text, where=where, hint=hint))


class JsonlEventLog:
    """Appends events to ``events.jsonl``, flushed per line so a reader can tail it live.

    A writer killed mid-line leaves a torn last line; the next writer starts on a fresh line,
    so the torn one is dropped alone by readers instead of swallowing this run's first event.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("a", encoding="utf-8")
        if not _ends_a_line(self.path):
            self._fh.write("\n")
            self._fh.flush()

    def __call__(self, event: Event) -> None:
        self._fh.write(json.dumps(event.to_dict(), default=str) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def _ends_a_line(path: Path) -> bool:
    """Empty, or its last byte is a newline."""
    with path.open("rb") as fh:
        fh.seek(0, 2)
        if fh.tell() == 0:
            return True
        fh.seek(-1, 2)
        return fh.read(1) == b"\n"


def _parse(line: str) -> Event | Exception | None:
    """The event on one complete line; None for a kind this version does not know; a
    ``ValueError`` for a line that is not an event (torn by a killed writer)."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        return exc
    if not isinstance(data, dict):
        return ValueError("not a JSON object")
    try:
        return event_from_dict(data)
    except TypeError as exc:
        return exc


@dataclass
class LogStats:
    """What a reader skipped: lines torn by a killed writer (or otherwise not an event)."""

    torn: int = 0


def read_events(path: Path, stats: LogStats | None = None) -> Iterator[Event]:
    """Events from a log, skipping (and counting in ``stats``) lines torn by a killed writer."""
    path = Path(path)
    if not path.exists():
        return
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.strip():
                continue
            event = _parse(line)
            if isinstance(event, Exception):
                if stats is not None:
                    stats.torn += 1
                continue
            if event is not None:
                yield event


class EventTail:
    """Incremental reader for a growing log; the TUI polls it to follow a child process.

    ``torn`` counts the lines it skipped because a killed writer cut them off.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._offset = 0
        self._partial = ""
        self.torn = 0

    def read_new(self) -> list[Event]:
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8", errors="replace") as fh:
            fh.seek(self._offset)
            chunk = fh.read()
            self._offset = fh.tell()
        text = self._partial + chunk
        lines = text.split("\n")
        self._partial = lines.pop()
        out: list[Event] = []
        for line in lines:
            if not line.strip():
                continue
            event = _parse(line)
            if isinstance(event, Exception):
                self.torn += 1
            elif event is not None:
                out.append(event)
        return out
