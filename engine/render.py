"""Rich rendering of engine events for the headless CLI: progress bars on stderr, tables on stdout."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

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
from engine.generate.base import failure_reasons


class _Count(ProgressColumn):
    """``done/total unit``, or ``done unit`` while the total is not known yet."""

    def render(self, task: Task) -> Text:
        done = int(task.completed)
        counted = f"{done}/{int(task.total)}" if task.total is not None else str(done)
        return Text(f"{counted} {task.fields['unit']}".rstrip())


class _Time(ProgressColumn):
    """One duration per stage: elapsed while it runs, its own measured time once finished."""

    def render(self, task: Task) -> Text:
        seconds = task.fields.get("seconds")
        if seconds is None:
            seconds = task.elapsed or 0.0
        minutes, secs = divmod(int(seconds), 60)
        return Text(f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}", style="progress.elapsed")


class RichRenderer:
    """An event sink; call ``close`` to stop the live display."""

    def __init__(self, console: Console | None = None, *, quiet: bool = False) -> None:
        self.console = console or Console(stderr=True)
        self.quiet = quiet
        self.progress = Progress(
            TextColumn("[bold]{task.fields[stage]:<9}"),
            BarColumn(),
            _Count(),
            TextColumn("{task.fields[note]}"),
            _Time(),
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
            note = self._loss.get(event.stage, "")
            done = event.done
            failures = event.extra.get("failures") if isinstance(event.extra, dict) else None
            if failures and isinstance(failures, dict):
                # live, so a run stopped by too many failures still shows how many and why;
                # the bar counts the chunks that succeeded, not those merely attempted
                summary = {"failed": sum(failures.values()), "failures_by_reason": failures}
                note = f"[yellow]{escape(failed_note(summary))}[/]"
                done = max(0, done - _failed_count(summary))
            self.progress.update(
                self._task(event.stage),
                completed=done,
                total=event.total,
                unit=event.unit,
                note=note,
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
            note = self._loss.get(event.stage, "")
            failed = _failed_count(event.summary) if event.stage == "generate" else 0
            if failed:
                # the bar must not read "180/180" when 22 of those calls failed
                total = int(event.summary.get("chunks") or total)
                done = max(0, total - failed)
                note = f"[yellow]{escape(failed_note(event.summary))}[/]"
            else:
                done = total
            self.progress.update(
                task, completed=done, total=total, note=note, seconds=event.seconds
            )
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
            # before the first stage starts (config, lock) there is no stage to name
            where = f"stage {event.stage}" if event.stage else "run"
            if event.cancelled:
                line, style = f"stopped in {where}: {event.error}", "yellow"
            else:
                line, style = f"failed in {where}: {event.error}", "red"
            self.progress.console.print(f"[{style}]{escape(line)}[/]", soft_wrap=True)

    def close(self) -> None:
        if not self.quiet:
            self.progress.stop()


def _failed_count(summary: dict[str, Any]) -> int:
    try:
        return int(summary.get("failed") or 0)
    except (TypeError, ValueError):
        return 0


def _reasons(summary: dict[str, Any]) -> str:
    return failure_reasons(summary.get("failures_by_reason") or {})


def failed_note(summary: dict[str, Any]) -> str:
    """The short note on the generate bar: ``22 failed (timeout 12, bad_json 10)``."""
    reasons = _reasons(summary)
    return f"{_failed_count(summary)} failed" + (f" ({reasons})" if reasons else "")


def generation_failures(summary: dict[str, Any]) -> str:
    """One line for a generate stage that left failed calls, or "" when none failed.

    ``generate: 22 of 180 chunks failed (timeout 12, bad_json 10); the next run retries
    them``: the count, the reasons and what happens next, so the user neither thinks the
    run was complete nor that the failed chunks are lost.
    """
    failed = _failed_count(summary)
    if not failed:
        return ""
    chunks = summary.get("chunks")
    of = f" of {chunks}" if chunks else ""
    reasons = _reasons(summary)
    because = f" ({reasons})" if reasons else ""
    return f"generate: {failed}{of} chunks failed{because}; the next run retries them"


def gains_table(gains: dict[str, Any]) -> Table:
    """Per size, what training changed in nDCG@10 and whether the queries tell it from zero."""
    from engine.evaluate.ir import gain_verdict
    from engine.evaluate.stats import CONFIDENCE

    table = Table(
        title=f"nDCG@10 change, fine-tuned − {gains['against']} ({CONFIDENCE:.0%} paired "
        f"bootstrap over {gains['queries']} queries)",
        title_justify="left",
    )
    for col in ("dim", "change", "interval", "reads as"):
        table.add_column(col, justify="left" if col == "reads as" else "right")
    for dim, g in sorted(gains["by_dim"].items(), key=lambda item: -int(item[0])):
        verdict = gain_verdict(g)
        colour = {"gain": "green", "loss": "red"}.get(verdict, "white")
        table.add_row(
            dim,
            f"{g['mean']:+.4f}",
            f"{g['low']:+.4f} to {g['high']:+.4f}",
            f"[{colour}]{verdict}[/]",
        )
    return table


def metrics_table(rows: list[dict[str, Any]], title: str = "") -> Table:
    """Base, base + rotation (when measured) and fine-tuned, changes coloured: what the user
    came for, with the change that training itself earned beside the raw one."""
    rotated = any("base_rotated" in r for r in rows)
    table = Table(title=title or None)
    columns = ["dim", "metric", "base"]
    columns += ["base + rotation"] if rotated else []
    columns += ["fine-tuned", "vs base"] + (["vs base + rotation"] if rotated else [])
    for col in columns:
        table.add_column(col, justify="left" if col == "metric" else "right")

    def change(rel: float | None) -> str:
        if rel is None:
            return "n/a"
        colour = "green" if rel > 0.0005 else "red" if rel < -0.0005 else "white"
        return f"[{colour}]{rel * 100:+.1f}%[/]"

    for r in rows:
        cells = [str(r["dim"]), r["metric"], f"{r['base']:.4f}"]
        if rotated:
            mid = r.get("base_rotated")
            cells.append("" if mid is None else f"{mid:.4f}")
        cells += [f"{r['tuned']:.4f}", change(r.get("rel_change"))]
        if rotated:
            cells.append(change(r.get("rel_change_vs_rotated")))
        table.add_row(*cells)
    return table
