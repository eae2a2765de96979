"""The words for engine events that front ends print: one wording for the CLI and the wizard.

Plain text only (no Rich markup, no Textual): the CLI's renderer adds colour, the wizard's
log adds its own, and neither rewords, so a message reads the same wherever a user meets it.
"""

from __future__ import annotations

from typing import Any

from ragtune.engine.core.events import Message, RunFailed, StageFinished, StageSkipped
from ragtune.engine.core.payloads import RerankSummary


def _fix(hint: str) -> str:
    return f" (fix: {hint})" if hint else ""


def message_text(ev: Message) -> str:
    """``ingest: docs/scan.pdf: skipped: encrypted PDF (fix: decrypt it)``."""
    stage = f"{ev.stage}: " if ev.stage else ""
    where = f"{ev.where}: " if ev.where else ""
    return f"{stage}{where}{ev.text}{_fix(ev.hint)}"


def stage_skipped_text(ev: StageSkipped) -> str:
    """``↷ ingest skipped: up to date``."""
    return f"↷ {ev.stage} skipped: {ev.reason}"


def not_trained(summary: dict[str, Any] | None) -> bool:
    """A rerank stage that finished by deciding not to train (its summary says why)."""
    return RerankSummary.from_dict(summary).not_trained


def stage_finished_text(ev: StageFinished) -> str:
    """``✔ train in 12.3s``, or why a reranker stage finished without training one."""
    rerank = RerankSummary.from_dict(ev.summary)
    if rerank.not_trained:
        return f"✔ {ev.stage}: no reranker trained ({rerank.reason})"
    return f"✔ {ev.stage} in {ev.seconds:.1f}s"


def run_failed_text(ev: RunFailed, *, hint: bool = True, resume: str = "") -> str:
    """``✘ failed in stage generate: … (fix: …)``, or ``■ cancelled in stage train: …``.

    Before the first stage starts (config, lock) there is no stage to name, so the run is
    named. ``hint=False`` where the front end prints the error's fix on its own line anyway
    (the CLI, as the run's exception ends it); ``resume`` is how this front end resumes (the
    wizard's key), added to a cancel unless the error already says how."""
    where = f"stage {ev.stage}" if ev.stage else "run"
    if ev.cancelled:
        again = f"; {resume}" if resume and "resume" not in ev.error else ""
        return f"■ cancelled in {where}: {ev.error}{again}"
    return f"✘ failed in {where}: {ev.error}{_fix(ev.hint) if hint else ''}"
