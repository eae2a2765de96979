"""Following a run's ``events.jsonl`` from a thread worker: history first, then new lines."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from textual.message_pump import MessagePump
from textual.worker import get_current_worker

from ragtune.engine.core.events import EventTail
from ragtune.tui.messages import EventsRead, ProcessSample, RunAlive

POLL_S = 0.25


class ProcessTree:
    """CPU and resident memory of a run's process and its children (torchrun workers, the
    tokenizer pool), read the way ``top`` does; nothing when the process is gone."""

    def __init__(self, pid: int) -> None:
        import psutil

        self._psutil = psutil
        self._seen: dict[int, psutil.Process] = {}
        try:
            self.root: psutil.Process | None = psutil.Process(pid)
        except psutil.Error:
            self.root = None

    def sample(self) -> tuple[float, float] | None:
        psutil = self._psutil
        if self.root is None:
            return None
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return None
        cpu = rss = 0.0
        for proc in procs:
            # a Process object remembers its last CPU time: keep one per pid
            proc = self._seen.setdefault(proc.pid, proc)
            try:
                cpu += proc.cpu_percent(None)
                rss += proc.memory_info().rss
            except psutil.Error:
                continue
        return cpu, rss / 2**20


def follow_events(
    target: MessagePump,
    path: Path,
    alive: Callable[[], bool],
    poll: float = POLL_S,
    token: int = 0,
    pid: int | None = None,
) -> None:
    """Post event batches to ``target`` until the run is gone and drained, or the worker is cancelled.

    Never touches widgets: the screen folds the events into its own state. With ``pid``,
    the run's CPU and memory are sampled as well.
    """
    import os

    worker = get_current_worker()
    tail = EventTail(path)
    tree = ProcessTree(pid) if pid else None
    cores = os.cpu_count() or 1
    target.post_message(EventsRead(tail.read_new(), history=True, token=token))
    while not worker.is_cancelled:
        running = alive()
        events = tail.read_new()
        if events:
            target.post_message(EventsRead(events, token=token))
        target.post_message(RunAlive(running, token=token))
        sample = tree.sample() if tree is not None and running else None
        if sample is not None:
            target.post_message(ProcessSample(*sample, cores=cores, token=token))
        if not running and not events:
            return
        time.sleep(poll)
