"""The prepare stage as the pipeline sees it: generated rows and chunks in, train/eval splits out."""

from __future__ import annotations

from typing import Any

from ragtune.engine.core.outputs import Output, dataset_reads
from ragtune.engine.core.stages import Stage, StageContext


def _run(ctx: StageContext) -> dict[str, Any]:
    from ragtune.engine.core.records import read_chunks
    from ragtune.engine.data.prepare import run_prepare
    from ragtune.engine.generate.rows import read_rows

    ws = ctx.ws
    keys_file = ws.state_dir / "generate_keys.txt"
    keys = keys_file.read_text().split("\n") if keys_file.exists() else None
    rows = read_rows(ws.generated_path, keys)
    return run_prepare(ctx.cfg.data, ws, rows, read_chunks(ws.chunks_path), ctx.events)


STAGE = Stage(
    "prepare",
    settings=("data",),
    upstream=("generate",),
    outputs=(Output("dataset", lambda ws: ws.dataset_dir, dataset_reads),),
    run=_run,
)
