"""Workspace: stage markers keyed by fingerprint, status, single-writer lock."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ragtune.engine.core.errors import RagtuneError
from ragtune.engine.core.workspace import Workspace, fingerprint
from ragtune.engine.generate.rows import (
    CallRecord,
    GeneratedRow,
    RecordWriter,
    latest_records,
    read_rows,
)
from ragtune.engine.stages import status_text


def test_markers_follow_the_fingerprint(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "w")
    fp = fingerprint("train", {"lr": 1e-5})
    assert not ws.is_done("train", fp)
    ws.mark_done("train", fp, {"steps": 3})
    assert ws.is_done("train", fp)
    assert not ws.is_done("train", fingerprint("train", {"lr": 2e-5}))
    assert ws.stage_summary("train") == {"steps": 3}
    statuses = status_text(ws)
    assert statuses["train"] == "done"
    assert statuses["ingest"] == "to do"


HOLD = (
    "import sys; from pathlib import Path; from engine.core.workspace import Workspace\n"
    "with Workspace(Path(sys.argv[1])).lock():\n"
    "    print('held', flush=True); sys.stdin.read()\n"
)


def test_lock_refuses_a_live_holder_and_frees_with_a_killed_one(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "w")
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(ws.root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        assert ws.lock().holder() == child.pid
        with pytest.raises(RagtuneError, match=f"pid {child.pid}"), ws.lock():
            pass
    finally:
        child.kill()
        child.wait()
    # SIGKILL ran no cleanup: the file and its pid are still there, but the lock is free.
    assert (ws.state_dir / "run.lock").read_text() == str(child.pid)
    assert ws.lock().holder() is None
    with ws.lock():
        assert (ws.state_dir / "run.lock").read_text() == str(os.getpid())
        assert ws.lock().holder() == os.getpid()
    assert not (ws.state_dir / "run.lock").exists()


def test_a_pid_written_by_hand_or_reused_is_not_a_holder(tmp_path: Path) -> None:
    """Only a process that holds the flock counts: a stale file naming a live pid (pid reuse
    after a reboot) must not block the workspace forever."""
    ws = Workspace.create(tmp_path / "w")
    (ws.state_dir / "run.lock").write_text(str(os.getppid()))
    assert ws.lock().holder() is None
    with ws.lock():
        pass


def test_of_many_racing_processes_exactly_one_gets_the_lock(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "w")
    race = (
        "import sys, time; from pathlib import Path\n"
        "from engine.core.workspace import Workspace\n"
        "from engine.core.errors import RagtuneError\n"
        "start = float(sys.argv[2])\n"
        "time.sleep(max(0.0, start - time.time()))\n"
        "try:\n"
        "    with Workspace(Path(sys.argv[1])).lock():\n"
        "        print('won', flush=True); time.sleep(1.5)\n"
        "except RagtuneError:\n"
        "    print('refused', flush=True)\n"
    )
    import time

    start = str(time.time() + 1.5)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", race, str(ws.root), start], stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outcomes = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outcomes == ["refused", "refused", "refused", "won"]


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
