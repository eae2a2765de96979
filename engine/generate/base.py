"""The interface every generator implements, so the pipeline can plug in either one."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ragtune.engine.core.events import Emitter
from ragtune.engine.core.records import Chunk
from ragtune.engine.core.workspace import Workspace


@dataclass
class GenerationSummary:
    chunks: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    rows: int = 0
    keys: list[str] = field(default_factory=list)
    failures_by_reason: dict[str, int] = field(default_factory=dict)
    dropped_by_filter: dict[str, int] = field(default_factory=dict)
    cost_usd: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0


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
