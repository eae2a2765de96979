"""Workspace: stage markers keyed by fingerprint, status, single-writer lock."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.core.errors import RagtuneError
from engine.core.workspace import Workspace, fingerprint
from engine.generate.rows import CallRecord, GeneratedRow, RecordWriter, latest_records, read_rows


def test_markers_follow_the_fingerprint(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "w")
    fp = fingerprint("train", {"lr": 1e-5})
    assert not ws.is_done("train", fp)
    ws.mark_done("train", fp, {"steps": 3})
    assert ws.is_done("train", fp)
    assert not ws.is_done("train", fingerprint("train", {"lr": 2e-5}))
    assert ws.stage_summary("train") == {"steps": 3}
    assert ws.status()["train"] == "done"
    assert ws.status()["ingest"] == "to do"


def test_lock_refuses_a_live_holder_and_takes_over_a_dead_one(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "w")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (ws.state_dir / "run.lock").write_text(str(child.pid))
        with pytest.raises(RagtuneError, match=f"pid {child.pid}"), ws.lock():
            pass
    finally:
        child.kill()
        child.wait()
    with ws.lock():
        assert (ws.state_dir / "run.lock").read_text() == str(os.getpid())
    assert not (ws.state_dir / "run.lock").exists()


def test_generated_log_survives_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "generated.jsonl"
    row = GeneratedRow(chunk_id="c1", question="what is x?")
    with RecordWriter(path) as w:
        w.write(CallRecord(key="k1", chunk_id="c1", rows=[row]))
        w.write(CallRecord(key="k2", chunk_id="c2", status="failed", error="timeout"))
    with path.open("a") as fh:
        fh.write('{"key": "k3", "chunk_id": "c3", "rows": [')
    assert set(latest_records(path)) == {"k1", "k2"}
    with RecordWriter(path) as w:
        w.write(CallRecord(key="k2", chunk_id="c2", rows=[row]))
        w.write(CallRecord(key="k1", chunk_id="c1", status="failed", error="later failure"))
    recs = latest_records(path)
    assert recs["k1"].status == "ok" and recs["k2"].status == "ok"
    assert len(read_rows(path)) == 2
    assert len(read_rows(path, keys=["k1"])) == 1
    assert all(line.endswith("}") for line in path.read_text().splitlines())
