"""Following a run's ``events.jsonl`` from a thread worker: history first, then new lines."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from textual.message_pump import MessagePump
from textual.worker import get_current_worker

from engine.core.events import EventTail
from tui.messages import EventsRead, RunAlive

POLL_S = 0.25


def follow_events(
    target: MessagePump,
    path: Path,
    alive: Callable[[], bool],
    poll: float = POLL_S,
    token: int = 0,
) -> None:
    """Post event batches to ``target`` until the run is gone and drained, or the worker is cancelled.

    Never touches widgets: the screen folds the events into its own state.
    """
    worker = get_current_worker()
    tail = EventTail(path)
    target.post_message(EventsRead(tail.read_new(), history=True, token=token))
    while not worker.is_cancelled:
        running = alive()
        events = tail.read_new()
        if events:
            target.post_message(EventsRead(events, token=token))
        target.post_message(RunAlive(running, token=token))
        if not running and not events:
            return
        time.sleep(poll)
