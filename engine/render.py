"""Rich rendering of engine events for the headless CLI: progress bars on stderr, tables on stdout."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine.core.events import (
    Event,
    Message,
    RunFailed,
    StageFinished,
    StageSkipped,
    StageStarted,
    TrainLog,
)
from engine.core.events import (
    Progress as ProgressEvent,
)


class RichRenderer:
    """An event sink; call ``close`` to stop the live display."""

    def __init__(self, console: Console | None = None, *, quiet: bool = False) -> None:
        self.console = console or Console(stderr=True)
        self.quiet = quiet
        self.progress = Progress(
            TextColumn("[bold]{task.fields[stage]:<9}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} {task.fields[unit]}"),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
            disable=quiet,
        )
        self._tasks: dict[str, TaskID] = {}
        self._loss: dict[str, str] = {}
        if not quiet:
            self.progress.start()

    def _task(self, stage: str) -> TaskID:
        if stage not in self._tasks:
            self._tasks[stage] = self.progress.add_task(
                stage, stage=stage, unit="", note="", total=None
            )
        return self._tasks[stage]

    def __call__(self, event: Event) -> None:
        if self.quiet:
            return
        if isinstance(event, StageStarted):
            self._task(event.stage)
        elif isinstance(event, ProgressEvent):
            self.progress.update(
                self._task(event.stage),
                completed=event.done,
                total=event.total,
                unit=event.unit,
                note=self._loss.get(event.stage, ""),
            )
        elif isinstance(event, TrainLog):
            if event.split == "train" and event.loss is not None:
                self._loss[event.stage] = f"loss {event.loss:.4f}"
            elif event.split == "eval":
                key = next((k for k in event.values if k.endswith("ndcg@10")), None)
                if key:
                    self._loss[event.stage] = f"{key} {event.values[key]:.4f}"
        elif isinstance(event, StageFinished):
            task = self._task(event.stage)
            total = self.progress.tasks[task].total or 1
            self.progress.update(task, completed=total, total=total, note=f"{event.seconds:.1f}s")
        elif isinstance(event, StageSkipped):
            self.progress.console.print(
                f"[dim]{event.stage}: skipped ({event.reason})[/]", soft_wrap=True
            )
        elif isinstance(event, Message):
            style = {"warning": "yellow", "error": "red"}.get(event.level, "dim")
            where = f"{event.where}: " if event.where else ""
            hint = f" — {event.hint}" if event.hint else ""
            line = escape(f"{event.stage}: {where}{event.text}{hint}")
            self.progress.console.print(f"[{style}]{line}[/]", soft_wrap=True)
        elif isinstance(event, RunFailed):
            self.progress.console.print(
                f"[red]{escape(f'failed in {event.stage}: {event.error}')}[/]", soft_wrap=True
            )

    def close(self) -> None:
        if not self.quiet:
            self.progress.stop()


def metrics_table(rows: list[dict[str, Any]], title: str = "") -> Table:
    """The base vs fine-tuned table, changes coloured: what the user came for."""
    table = Table(title=title or None)
    for col in ("dim", "metric", "base", "fine-tuned", "change"):
        table.add_column(col, justify="right" if col != "metric" else "left")
    for r in rows:
        rel = r.get("rel_change")
        change = "n/a" if rel is None else f"{rel * 100:+.1f}%"
        colour = "green" if (rel or 0) > 0.0005 else "red" if (rel or 0) < -0.0005 else "white"
        table.add_row(
            str(r["dim"]),
            r["metric"],
            f"{r['base']:.4f}",
            f"{r['tuned']:.4f}",
            f"[{colour}]{change}[/]",
        )
    return table
