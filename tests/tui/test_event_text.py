"""The CLI and the wizard's log word every event the same way (engine.core.event_text)."""

from __future__ import annotations

import io

from ragtune.engine.core.events import Message, RunFailed, StageFinished, StageSkipped, StageStarted
from ragtune.engine.render import RichRenderer
from ragtune.tui.run_model import RunView


def cli_lines(*events) -> list[str]:
    from rich.console import Console

    buf = io.StringIO()
    renderer = RichRenderer(Console(file=buf, width=300, color_system=None))
    for event in events:
        renderer(event)
    renderer.close()
    return [line.strip() for line in buf.getvalue().splitlines()]


def wizard_lines(*events) -> list[str]:
    view = RunView()
    view.apply(list(events))
    return [line for _, line in view.log]


WARNING = Message(
    stage="ingest",
    level="warning",
    text="skipped: encrypted PDF",
    where="handbook/scan.pdf",
    hint="decrypt it or remove it from sources",
)
SAID = (
    "ingest: handbook/scan.pdf: skipped: encrypted PDF (fix: decrypt it or remove it from sources)"
)


def test_a_message_and_a_skip_read_the_same_in_both_front_ends() -> None:
    events = (
        StageSkipped(stage="index", reason="up to date", time=1.0),
        StageStarted(stage="generate", time=2.0),
        Message(stage="generate", level="warning", text="3 chunks failed", time=3.0),
    )
    cli, wizard = cli_lines(WARNING, *events), wizard_lines(WARNING, *events)
    for line in (SAID, "↷ index skipped: up to date", "generate: 3 chunks failed"):
        assert line in cli and line in wizard, (line, cli, wizard)


def test_a_failure_reads_the_same_and_only_the_wizard_repeats_the_fix() -> None:
    failed = RunFailed(stage="generate", error="boom", hint="lower the rate", time=1.0)
    (wizard_line,) = wizard_lines(StageStarted(stage="generate"), failed)[-1:]
    assert wizard_line == "✘ failed in stage generate: boom (fix: lower the rate)"
    # the CLI prints the fix on its own ``fix:`` line when the run's exception reaches main
    assert "✘ failed in stage generate: boom" in cli_lines(failed)
    assert not any("lower the rate" in line for line in cli_lines(failed))

    lock = RunFailed(stage="", error="lock held", time=1.0)
    assert "✘ failed in run: lock held" in cli_lines(lock)
    assert wizard_lines(lock)[-1] == "✘ failed in run: lock held"


def test_a_cancel_says_how_to_resume_only_where_the_error_does_not() -> None:
    stop = RunFailed(stage="train", error="interrupted", error_type="Cancelled", time=1.0)
    assert "■ cancelled in stage train: interrupted" in cli_lines(stop)
    assert wizard_lines(StageStarted(stage="train"), stop)[-1] == (
        "■ cancelled in stage train: interrupted; run again (F5) to resume"
    )
    says = RunFailed(
        stage="train", error="stopped; `ragtune run` resumes it", error_type="Cancelled"
    )
    assert wizard_lines(StageStarted(stage="train"), says)[-1].endswith("resumes it")


def test_a_reranker_left_untrained_says_why() -> None:
    done = StageFinished(stage="rerank", seconds=2.0, summary={"trained": False, "reason": "few"})
    assert wizard_lines(StageStarted(stage="rerank"), done)[-1] == (
        "✔ rerank: no reranker trained (few)"
    )
    trained = StageFinished(stage="train", seconds=12.34)
    assert wizard_lines(StageStarted(stage="train"), trained)[-1] == "✔ train in 12.3s"
