"""Events: JSONL round-trip, torn lines, tailing, throttled progress, rank-0 only."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.core.events import (
    Emitter,
    EvalRow,
    EventTail,
    JsonlEventLog,
    Progress,
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
