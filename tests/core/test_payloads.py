"""Typed event payloads: through events.jsonl and back, and old or newer logs still render."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from ragtune.engine.core.event_text import not_trained, stage_finished_text
from ragtune.engine.core.events import (
    Emitter,
    JsonlEventLog,
    Progress,
    StageFinished,
    read_events,
)
from ragtune.engine.core.payloads import (
    DeploySummary,
    EncodeProgress,
    EvaluateSummary,
    ExportSummary,
    GenerationProgress,
    GenerationSummary,
    IndexSummary,
    IngestSummary,
    PrepareSummary,
    RerankSummary,
    StepProgress,
    TrainSummary,
)
from ragtune.engine.render import RichRenderer

RECORDED = Path(__file__).parents[1] / "tui" / "data" / "run_events.jsonl"

COUNTERS = GenerationProgress(
    rows=36,
    rows_per_s=2.5,
    calls=14,
    input_tokens=1200,
    output_tokens=800,
    failures={"timeout": 2},
    retries={"rate_limited": 6},
    cost_usd=0.0123,
)
GENERATED = GenerationSummary(
    chunks=12,
    done=10,
    failed=2,
    rows=36,
    keys=["a", "b"],
    failures_by_reason={"timeout": 2},
    cost_usd=None,
)


def render(*events) -> str:
    buf = io.StringIO()
    renderer = RichRenderer(Console(file=buf, width=200, color_system=None))
    for event in events:
        renderer(event)
    renderer.close()
    return buf.getvalue()


def test_payloads_come_back_from_events_jsonl_as_they_went(tmp_path: Path) -> None:
    log = JsonlEventLog(tmp_path / "events.jsonl")
    em = Emitter(log, stage="generate")
    em.progress(10, 12, unit="chunks", extra=COUNTERS)
    em.for_stage("train").progress(5, 5, unit="steps", extra=StepProgress("embedder", 1.5))
    em.for_stage("evaluate").progress(
        9, 9, unit="texts", extra=EncodeProgress(model="tuned", part="document")
    )
    em.emit(StageFinished(seconds=2.0, summary=GENERATED.to_dict()))
    log.close()
    progress, steps, encoded, finished = read_events(tmp_path / "events.jsonl")

    assert isinstance(progress, Progress) and progress.done == 10
    assert GenerationProgress.from_dict(progress.extra) == COUNTERS
    assert StepProgress.from_dict(steps.extra) == StepProgress(model="embedder", elapsed=1.5)
    assert EncodeProgress.from_dict(encoded.extra).part == "document"
    assert isinstance(finished, StageFinished)
    # The record keys go to generate_keys.txt, not into the event.
    assert "keys" not in finished.summary
    back = GenerationSummary.from_dict(finished.summary)
    assert back.failed == 2 and back.failures_by_reason == {"timeout": 2} and back.keys == []


def test_the_wire_keeps_the_keys_it_had() -> None:
    assert set(COUNTERS.to_dict()) == {
        "rows",
        "rows_per_s",
        "calls",
        "input_tokens",
        "output_tokens",
        "failures",
        "retries",
        "cost_usd",
    }
    assert set(StepProgress().to_dict()) == {"model", "elapsed"}
    assert set(EncodeProgress().to_dict()) == {"model", "part"}
    declined = RerankSummary(trained=False, reason="too few queries", base_model="m")
    assert declined.to_dict() == {"trained": False, "reason": "too few queries", "base_model": "m"}
    trained = RerankSummary(base_model="m", fusion_weight=0.3, training={"steps": 4}).to_dict()
    assert "trained" not in trained and "reason" not in trained and "evaluation" not in trained
    assert DeploySummary(rows=12).to_dict() == {"rows": 12}
    chosen = DeploySummary(rows=12, suggestion="onnx 128 int8", interpolation_weight=0.5)
    assert set(chosen.to_dict()) == {"rows", "suggestion", "interpolation_weight"}
    assert IndexSummary(documents=4, terms=9).to_dict() == {"documents": 4, "terms": 9}
    assert EvaluateSummary(suites=["held-out"]).to_dict() == {"suites": ["held-out"]}
    described = IngestSummary(documents=0, synthetic_chunks=40).to_dict()
    assert described == {"documents": 0, "synthetic_chunks": 40}
    train = TrainSummary(dims=[64, 32], train_pairs=10, steps=3, device="cpu").to_dict()
    assert set(train) == {
        "dims",
        "train_pairs",
        "steps",
        "best_metric",
        "best_checkpoint",
        "device",
        "precision",
    }
    assert train["best_metric"] is None  # not measured is written, as before
    local = ExportSummary(embedder="m/e", retrieval="", bm25_index="m/e/bm25").to_dict()
    assert list(local) == ["embedder", "retrieval", "bm25_index"]
    pushed = ExportSummary(embedder="m/e", reranker="m/r", embedder_url="u").to_dict()
    assert list(pushed) == ["embedder", "retrieval", "bm25_index", "reranker", "embedder_url"]


def test_ingest_summary_holds_every_chunk_count() -> None:
    """``IngestSummary`` is built from ``ChunkStats.to_dict()``: a count added there must be
    a field here, or ingest fails on its first run instead of dropping it."""
    from ragtune.engine.ingest.chunking import ChunkStats

    stats = ChunkStats(documents=2, chunks=5, duplicates=1, max_tokens=128)
    stats.add_length(40)
    made = IngestSummary(**stats.to_dict(), tokenizer="t", chunks_path="c.parquet").to_dict()
    assert made == {**stats.to_dict(), "tokenizer": "t", "chunks_path": "c.parquet"}


def test_unknown_keys_are_ignored_and_missing_ones_take_their_defaults() -> None:
    newer = {**COUNTERS.to_dict(), "gpu_seconds": 3.5, "tokens": 99}
    assert GenerationProgress.from_dict(newer) == COUNTERS
    assert GenerationProgress.from_dict({}) == GenerationProgress()
    assert GenerationProgress.from_dict(None) == GenerationProgress()
    assert GenerationProgress.from_dict({"rows": 4}).rows == 4
    # a hand-edited record: a value of the wrong kind is its default, not a crash later
    assert GenerationProgress.from_dict({"failures": "many", "calls": None}).failures == {}
    assert GenerationSummary.from_dict({"failures_by_reason": [1]}).failures_by_reason == {}
    assert EvaluateSummary.from_dict({"suites": "held-out"}).suites == []
    assert not RerankSummary.from_dict({"trained": True, "future": 1}).not_trained


def test_an_old_events_jsonl_still_renders() -> None:
    """Recorded before the payloads were typed: plain dicts, some keys missing."""
    events = list(read_events(RECORDED))
    out = render(*events)
    assert "generate  " in out and "212/212 chunks" in out and "2/2 files" in out
    generate = next(e for e in events if isinstance(e, StageFinished) and e.stage == "generate")
    assert GenerationSummary.from_dict(generate.summary).rows == 640
    assert stage_finished_text(generate) == "✔ generate in 1.5s"


def test_the_old_dict_shapes_render_as_before() -> None:
    """What an engine before the typed payloads wrote, with a key a newer one might add."""
    waiting = Progress(
        stage="generate",
        done=199,
        total=212,
        unit="chunks",
        extra={"rows": 590, "retries": {"rate_limited": 7}, "failures": {"timeout": 3}, "x": 1},
    )
    out = render(waiting)
    assert "196/212" in out and "3 failed (timeout 3)" in out
    assert "retries: rate_limited 7" in out
    stopped = StageFinished(
        stage="generate",
        seconds=3.0,
        summary={"chunks": 180, "failed": 22, "failures_by_reason": {"timeout": 22}, "new": 1},
    )
    assert "158/180" in render(stopped) and "22 failed (timeout 22)" in render(stopped)
    declined = StageFinished(
        stage="rerank", seconds=1.0, summary={"trained": False, "reason": "too few queries"}
    )
    assert stage_finished_text(declined) == "✔ rerank: no reranker trained (too few queries)"
    assert not_trained(declined.summary) and not not_trained({}) and not not_trained(None)
    assert not not_trained(json.loads(json.dumps({"fusion_weight": 0.2, "base_model": "m"})))


def test_a_prepare_record_without_a_count_says_unknown_not_zero(tmp_path: Path) -> None:
    from ragtune.engine.core.workspace import Workspace
    from ragtune.engine.export.stage import _data_line

    made = PrepareSummary(rows_in=9, train_pairs=7, eval_queries=2, eval_chunks=2, corpus=5)
    assert set(made.to_dict()) == {
        "rows_in",
        "train_pairs",
        "eval_queries",
        "eval_chunks",
        "corpus",
        "dropped",
    }
    ws = Workspace.create(tmp_path / "ws")
    assert _data_line(ws) == "unknown"
    ws.mark_done("prepare", "fp", summary=made.to_dict())
    assert _data_line(ws) == "7 query–passage pairs from 5 passages; 2 held-out queries"
    ws.mark_done("prepare", "fp", summary={"train_pairs": 0, "rows_in": 1})
    assert _data_line(ws) == "0 query–passage pairs from ? passages; ? held-out queries"
