"""Replays a recorded ``events.jsonl`` into a workspace as if a run were writing it.

Used by tests, the benchmark and demos: the Training screen follows the file
exactly as it follows a real child process, so the whole read path is exercised.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path


class ReplayRun:
    """A ``RunHandle`` whose 'process' is a thread copying recorded lines at ``rate`` lines/s.

    Event times are moved to now (keeping their spacing), as a run started now would
    write them; a cancel ends the log the way the engine does, with a cancelled
    ``RunFailed``.
    """

    def __init__(self, source: Path, workspace: Path, rate: float = 200.0):
        self.pid = os.getpid()
        self.workspace = Path(workspace)
        self._lines = Path(source).read_text(encoding="utf-8").splitlines()
        self._rate = rate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="replay-run")
        self.written = 0
        self._thread.start()

    def _run(self) -> None:
        target = self.workspace / "events.jsonl"
        target.parent.mkdir(parents=True, exist_ok=True)
        shift: float | None = None
        stage = ""
        with target.open("a", encoding="utf-8") as fh:
            for line in self._lines:
                if self._stop.is_set():
                    error = (
                        "training stopped; the last checkpoint is kept and `ragtune run` resumes it"
                        if stage in ("train", "rerank")
                        else "cancelled; finished work is kept in the workspace"
                    )
                    data = {
                        "kind": "run_failed",
                        "stage": stage,
                        "error": error,
                        "error_type": "Cancelled",
                        "time": time.time(),
                    }
                    fh.write(json.dumps(data) + "\n")
                    break
                data = json.loads(line)
                if data.get("kind") == "stage_started":
                    stage = str(data.get("stage", ""))
                if isinstance(data.get("time"), (int, float)):
                    if shift is None:
                        shift = time.time() - data["time"]
                    data["time"] += shift
                fh.write(json.dumps(data) + "\n")
                fh.flush()
                self.written += 1
                if self._rate > 0:
                    time.sleep(1.0 / self._rate)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def cancel(self) -> None:
        self._stop.set()

    def wait(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)
