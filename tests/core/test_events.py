"""Events: JSONL round-trip, torn lines, tailing, throttled progress, rank-0 only."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.engine.core.events import (
    Emitter,
    EvalRow,
    EventTail,
    JsonlEventLog,
    LogStats,
    Progress,
    RunFailed,
    StageStarted,
    TrainLog,
    event_from_dict,
    read_events,
)


def test_round_trip_and_unknown_fields_are_ignored(tmp_path: Path) -> None:
    log = JsonlEventLog(tmp_path / "events.jsonl")
    em = Emitter(log, stage="train")
    em.emit(TrainLog(step=3, loss=0.5, values={"loss": 0.5}))
    em.emit(EvalRow(model="tuned", dim=128, metrics={"ndcg@10": 0.7}))
    log.close()
    events = list(read_events(tmp_path / "events.jsonl"))
    assert [type(e) for e in events] == [TrainLog, EvalRow]
    assert events[0].stage == "train" and events[0].loss == 0.5
    assert event_from_dict({"kind": "train_log", "step": 1, "future_field": 1}).step == 1
    assert event_from_dict({"kind": "from_the_future"}) is None


def test_tail_reads_only_complete_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    tail = EventTail(path)
    assert tail.read_new() == []
    log = JsonlEventLog(path)
    Emitter(log).emit(Progress(done=1, total=2))
    with path.open("a") as fh:
        fh.write('{"kind": "progress", "done": 2')
    got = tail.read_new()
    assert len(got) == 1 and got[0].done == 1
    with path.open("a") as fh:
        fh.write(', "total": 2}\n')
    got = tail.read_new()
    assert len(got) == 1 and got[0].done == 2
    assert len(list(read_events(path))) == 2


def test_progress_is_throttled_but_keeps_the_last() -> None:
    seen: list = []
    em = Emitter(seen.append, stage="generate")
    for i in range(1, 1001):
        em.progress(i, 1000, every=60)
    assert [e.done for e in seen] == [1, 1000]


def test_only_rank_zero_emits(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list = []
    monkeypatch.setenv("RANK", "1")
    Emitter(seen.append).info("hello")
    assert seen == []
    monkeypatch.setenv("RANK", "0")
    Emitter(seen.append).info("hello")
    assert len(seen) == 1


def test_a_torn_last_line_never_swallows_the_next_runs_first_event(tmp_path: Path) -> None:
    """A killed writer leaves half a line; the next run's log starts on a fresh line, and
    readers (whole-file and tailing) skip the torn line, count it, and keep every event."""
    path = tmp_path / "events.jsonl"
    tail = EventTail(path)
    first = JsonlEventLog(path)
    Emitter(first, stage="train").emit(Progress(done=1, total=9))
    first.close()
    with path.open("a") as fh:  # what SIGKILL mid-write leaves
        fh.write('{"kind": "progress", "stage": "train", "do')
    assert [e.done for e in tail.read_new()] == [1]

    second = JsonlEventLog(path)
    Emitter(second, stage="ingest").emit(StageStarted())
    Emitter(second, stage="ingest").emit(Progress(done=5, total=5))
    second.close()

    stats = LogStats()
    events = list(read_events(path, stats))
    assert [(type(e), e.stage) for e in events] == [
        (Progress, "train"),
        (StageStarted, "ingest"),
        (Progress, "ingest"),
    ]
    assert stats.torn == 1
    assert [type(e) for e in tail.read_new()] == [StageStarted, Progress] and tail.torn == 1
    # A log that ends cleanly gets no blank line from the next writer.
    size = path.stat().st_size
    JsonlEventLog(path).close()
    assert path.stat().st_size == size


def test_lines_that_are_not_events_are_counted_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('42\n["progress"]\n{"kind": "progress", "done": 3}\n\n{"kind": "pro\n')
    stats = LogStats()
    assert [e.done for e in read_events(path, stats)] == [3]
    assert stats.torn == 3


def test_error_texts_never_carry_a_key(tmp_path: Path) -> None:
    secret = "sk-proj-Zq8Lr2Vt6Yw1Xc4Bn7Mk0Pa3Sd5Fg9Hj"
    log = JsonlEventLog(tmp_path / "events.jsonl")
    seen: list = []
    em = Emitter(log, seen.append, stage="generate")
    em.error(f"the environment variable {secret} is empty", where=secret, hint=f"export {secret}")
    em.emit(RunFailed(error=f"provider said: bad key {secret}", hint="check OPENAI_API_KEY"))
    log.close()
    text = (tmp_path / "events.jsonl").read_text()
    assert secret not in text and "***" in text
    assert all(secret not in str(e) for e in seen)
    # Names of variables and paths are not keys.
    assert "OPENAI_API_KEY" in text
