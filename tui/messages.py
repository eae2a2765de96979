"""Streams that long-lived workers post to screens; high-rate ones collapse to the latest.

A worker that ends with one value returns it instead, and its screen takes it in
``on_worker_state_changed`` on success, so a superseded (cancelled) worker is never shown.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from ragtune.engine.core.events import Event


@dataclass
class EventsRead(Message):
    """A batch of events from ``events.jsonl``; never replaced, since losses must not be lost."""

    events: list[Event]
    history: bool = False
    token: int = 0
    """Which follow started it; a restarted follow ignores batches still queued from the old one."""


@dataclass
class RunAlive(Message):
    """Whether the run being followed still has a live process; only the latest matters."""

    alive: bool
    token: int = 0

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunAlive)


@dataclass
class ProcessSample(Message):
    """CPU and memory of the run's process and its children (a CPU run has no GPU samples)."""

    cpu_percent: float
    """Summed over the processes: 200 is two cores busy."""
    rss_mb: float
    cores: int
    token: int = 0

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ProcessSample)
