"""The interface every generator implements, so the pipeline can plug in either one."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

from ragtune.engine.core.events import Emitter
from ragtune.engine.core.payloads import GenerationProgress, GenerationSummary
from ragtune.engine.core.records import Chunk
from ragtune.engine.core.workspace import Workspace

__all__ = ["GenerationProgress", "GenerationSummary", "Generator", "failure_reasons"]


class Generator(Protocol):
    """Writes records for ``chunks`` to ``ws.generated_path``; records already there are kept.

    ``keys`` in the summary are the records this configuration stands for, so
    data preparation reads exactly those (a changed prompt leaves old keys unread).
    """

    name: str

    def generate(
        self,
        chunks: Sequence[Chunk],
        ws: Workspace,
        events: Emitter,
        cancel: threading.Event | None = None,
    ) -> GenerationSummary: ...


def failure_reasons(by_reason: dict[str, int]) -> str:
    """``timeout 12, bad_json 10``: most frequent reason first, so the cause is read first."""
    items = sorted(by_reason.items(), key=lambda kv: (-int(kv[1]), str(kv[0])))
    return ", ".join(f"{k} {v}" for k, v in items)
