"""Rich rendering of engine events for the headless CLI: progress bars on stderr, tables on stdout."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from ragtune.engine.core.event_text import message_text, run_failed_text, stage_skipped_text
from ragtune.engine.core.events import (
    Event,
    Message,
    RunFailed,
    StageFinished,
    StageSkipped,
    StageStarted,
    TrainLog,
)
from ragtune.engine.core.events import (
    Progress as ProgressEvent,
)
from ragtune.engine.evaluate.results import MetricRow, Recommendation, SuiteResult
from ragtune.engine.generate.base import GenerationProgress, GenerationSummary, failure_reasons


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
        self._retries: dict[str, str] = {}
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
            counters = GenerationProgress.from_dict(event.extra)
            failures, retries = counters.failures, counters.retries
            if any(retries.values()):
                # a run waiting on 429s or timeouts says so while it waits, not only at the end
                self._retries[event.stage] = f"retries: {failure_reasons(retries)}"
            if failures:
                # live, so a run stopped by too many failures still shows how many and why;
                # the bar counts the chunks that succeeded, not those merely attempted
                summary = GenerationSummary(
                    failed=sum(failures.values()), failures_by_reason=failures
                )
                note = f"[yellow]{escape(failed_note(summary))}[/]"
                done = max(0, done - _failed_count(summary))
            note = _joined(note, self._retries.get(event.stage, ""))
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
            generated = GenerationSummary.from_dict(event.summary)
            failed = _failed_count(generated) if event.stage == "generate" else 0
            if failed:
                # the bar must not read "180/180" when 22 of those calls failed
                total = int(generated.chunks or total)
                done = max(0, total - failed)
                note = f"[yellow]{escape(failed_note(generated))}[/]"
            else:
                done = total
            note = _joined(note, self._retries.get(event.stage, ""))
            self.progress.update(
                task, completed=done, total=total, note=note, seconds=event.seconds
            )
        elif isinstance(event, StageSkipped):
            self._say("dim", stage_skipped_text(event))
        elif isinstance(event, Message):
            self._say(
                {"warning": "yellow", "error": "red"}.get(event.level, "dim"), message_text(event)
            )
        elif isinstance(event, RunFailed):
            # the run's exception reaches ``cli.main``, which prints the fix on its own line
            style = "yellow" if event.cancelled else "red"
            self._say(style, run_failed_text(event, hint=False))

    def _say(self, style: str, line: str) -> None:
        self.progress.console.print(f"[{style}]{escape(line)}[/]", soft_wrap=True)

    def close(self) -> None:
        if not self.quiet:
            self.progress.stop()


def _failed_count(summary: GenerationSummary) -> int:
    try:
        return int(summary.failed or 0)
    except (TypeError, ValueError):
        return 0


def _reasons(summary: GenerationSummary) -> str:
    return failure_reasons(summary.failures_by_reason)


def _joined(note: str, more: str) -> str:
    return f"{note} · [dim]{escape(more)}[/]" if note and more else note or escape(more)


def failed_note(summary: GenerationSummary) -> str:
    """The short note on the generate bar: ``22 failed (timeout 12, bad_json 10)``."""
    reasons = _reasons(summary)
    return f"{_failed_count(summary)} failed" + (f" ({reasons})" if reasons else "")


def generation_failures(summary: GenerationSummary) -> str:
    """One line for a generate stage that left failed calls, or "" when none failed.

    ``generate: 22 of 180 chunks failed (timeout 12, bad_json 10); the next run retries
    them``: the count, the reasons and what happens next, so the user neither thinks the
    run was complete nor that the failed chunks are lost.
    """
    failed = _failed_count(summary)
    if not failed:
        return ""
    of = f" of {summary.chunks}" if summary.chunks else ""
    reasons = _reasons(summary)
    because = f" ({reasons})" if reasons else ""
    return f"generate: {failed}{of} chunks failed{because}; the next run retries them"


def gains_table(suite: SuiteResult) -> Table:
    """Per size, what training changed in nDCG@10 and whether the queries tell it from zero."""
    from ragtune.engine.evaluate.stats import CONFIDENCE

    first = next(iter(suite.gains.values()))
    table = Table(
        title=f"nDCG@10 change, fine-tuned − {first.against} ({CONFIDENCE:.0%} paired "
        f"bootstrap over {first.queries} queries)",
        title_justify="left",
    )
    for col in ("dim", "change", "interval", "reads as"):
        table.add_column(col, justify="left" if col == "reads as" else "right")
    for dim, g in sorted(suite.gains.items(), reverse=True):
        table.add_row(
            str(dim), f"{g.mean:+.4f}", f"{g.low:+.4f} to {g.high:+.4f}", _verdict(g.verdict)
        )
    return table


def _verdict(verdict: str) -> str:
    colour = {"gain": "green", "loss": "red"}.get(verdict, "white")
    return f"[{colour}]{verdict}[/]"


def metrics_table(rows: list[MetricRow], title: str = "") -> Table:
    """Base, base + rotation (when measured) and fine-tuned, changes coloured: what the user
    came for, with the change that training itself earned beside the raw one."""
    rotated = any(r.base_rotated is not None for r in rows)
    table = Table(title=title or None)
    columns = ["dim", "metric", "base"]
    columns += ["base + rotation"] if rotated else []
    columns += ["fine-tuned", "vs base"] + (["vs base + rotation"] if rotated else [])
    for col in columns:
        table.add_column(col, justify="left" if col == "metric" else "right")

    def change(after: float | None, before: float | None) -> str:
        if after is None or not before:
            return "n/a"
        rel = (after - before) / before
        colour = "green" if rel > 0.0005 else "red" if rel < -0.0005 else "white"
        return f"[{colour}]{rel * 100:+.1f}%[/]"

    def num(v: float | None) -> str:
        return "" if v is None else f"{v:.4f}"

    for r in rows:
        cells = [str(r.dim), r.metric, num(r.base)]
        if rotated:
            cells.append(num(r.base_rotated))
        cells += [num(r.tuned), change(r.tuned, r.base)]
        if rotated:
            cells.append(change(r.tuned, r.base_rotated))
        table.add_row(*cells)
    return table


def retrievers_table(
    suite: SuiteResult,
    metric: str = "ndcg@10",
    title: str = "",
    labels: dict[str, str] | None = None,
) -> Table:
    """Every retriever per size: the metric, then its change against the dense base with the
    95% paired-bootstrap interval, coloured by whether the queries tell it from zero."""
    from ragtune.engine.evaluate.stats import CONFIDENCE

    rows = suite.retriever_rows(metric)
    dims = sorted({d for r in rows for d in r.values}, reverse=True)
    queries = next((g.queries for r in rows for g in r.changes.values()), suite.queries)
    table = Table(
        title=title
        or f"{suite.name} queries: retrievers, {metric} (change vs dense base, "
        f"{CONFIDENCE:.0%} interval over {queries} queries)",
        title_justify="left",
    )
    table.add_column("retriever")
    for d in dims:
        table.add_column(str(d), justify="right")
    for row in rows:
        cells = []
        for d in dims:
            value, g = row.values.get(d), row.changes.get(d)
            cell = "" if value is None else f"{value:.4f}"
            if g is not None:
                colour = {"gain": "green", "loss": "red"}.get(g.verdict, "white")
                cell += f"\n[{colour}]{g.mean:+.4f}[/]\n[dim]\\[{g.low:+.3f},{g.high:+.3f}][/]"
            cells.append(cell)
        table.add_row((labels or {}).get(row.retriever, row.label), *cells)
    return table


def recommendation_text(rec: Recommendation) -> str:
    """The recommendation as rich markup: what to ship, why, and what to keep in mind."""
    lines = [f"[bold]recommended retriever: {escape(rec.label)}[/] — {escape(rec.reason)}"]
    if rec.uses_bm25:
        lines.append(f"fusion: {escape(rec.fusion)}")
    lines += [f"[yellow]note: {escape(c)}[/]" for c in rec.caveats]
    return "\n".join(lines)
