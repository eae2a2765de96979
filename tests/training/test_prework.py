"""Shared work runs before the ranks start; ranks wait for each other only as long as the timeout
says; every rank resumes the checkpoint rank 0 chose."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from ragtune.engine.api import run_pipeline
from ragtune.engine.core.errors import RagtuneError
from ragtune.engine.core.events import Emitter, Message, StageFinished
from ragtune.engine.core.workspace import Workspace
from ragtune.engine.training.prework import (
    needs_prework,
    prework_dir,
    read_prework,
    run_prework,
)
from tests.test_pipeline import tiny_config
from tests.training.test_launch import two_rank_config

REPO = Path(__file__).resolve().parents[2]


def _torchrun(script: str, tmp_path: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """Two gloo ranks running ``script`` (which finds its folder in ``OUT``)."""
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(script))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OUT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nnodes=1",
            "--nproc_per_node=2",
            str(path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_slow_mining_runs_before_the_ranks_start_so_a_short_timeout_holds(
    tmp_path: Path, tiny_bert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mining here takes longer than the process group's timeout; the ranks never wait on it."""
    import ragtune.engine.embedder.train as train_module

    real = train_module.training_rows
    calls: list[float] = []

    def slow_rows(*args: Any, **kwargs: Any) -> Any:
        calls.append(time.monotonic())
        time.sleep(40)  # a large corpus's mining, longer than the 30 s timeout below
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "training_rows", slow_rows)
    cfg = two_rank_config(tmp_path, tiny_bert, hard_negatives=1, loss="mnrl", corpus_rotation=False)
    cfg.distributed.timeout_minutes = 0.5
    seen: list = []
    ws = run_pipeline(
        cfg, events=Emitter(seen.append), stages=["ingest", "generate", "prepare", "train"]
    )

    assert len(calls) == 1  # in this process, the launcher's
    texts = [e.text for e in seen if isinstance(e, Message)]
    mined = [i for i, t in enumerate(texts) if t.startswith("mining 1 hard negative")]
    started = [i for i, t in enumerate(texts) if "2 processes" in t]
    # Once, and before torchrun: no rank mined again.
    assert len(mined) == 1 and started and mined[0] < started[0]
    summary = next(e.summary for e in seen if isinstance(e, StageFinished) and e.stage == "train")
    done = read_prework(cfg, ws, "embedder")
    assert summary["negatives"] == done.summary["negatives"] and summary["negatives"]["mined"] > 0
    assert summary["steps"] > 0


@pytest.mark.slow
def test_the_ranks_refuse_a_missing_stale_or_changed_prework(
    tmp_path: Path, tiny_bert: Path
) -> None:
    cfg = tiny_config(tmp_path, tiny_bert, hard_negatives=1, loss="mnrl")
    run_pipeline(cfg, stages=["ingest", "generate", "prepare"])
    ws = Workspace.create(cfg.workspace_dir)
    assert needs_prework(cfg, "embedder") and needs_prework(cfg, "reranker")
    with pytest.raises(RagtuneError, match="missing") as missing:
        read_prework(cfg, ws, "embedder")
    assert "python -m ragtune.engine.training.prework" in missing.value.hint

    out = run_prework(cfg, ws, Emitter(), "embedder")
    assert out is not None and out.folder == prework_dir(ws, "embedder")
    assert read_prework(cfg, ws, "embedder").fingerprint == out.fingerprint
    manifest = json.loads((out.folder / "manifest.json").read_text())
    assert manifest["rows"] > 0 and manifest["summary"]["negatives"]["mined"] > 0

    other = copy.deepcopy(cfg)
    other.embedder.hard_negatives = 2
    with pytest.raises(RagtuneError, match="other settings"):
        read_prework(other, ws, "embedder")
    arrow = next((out.folder / "rows").rglob("*.arrow"))
    arrow.write_bytes(arrow.read_bytes() + b"x")
    with pytest.raises(RagtuneError, match="changed after"):
        read_prework(cfg, ws, "embedder")
    # Without hard negatives there is nothing to do before the ranks.
    none = copy.deepcopy(cfg)
    none.embedder.hard_negatives = 0
    assert run_prework(none, ws, Emitter(), "embedder") is None


@pytest.mark.slow
def test_the_timeout_setting_reaches_the_process_group(tmp_path: Path) -> None:
    """A rank that waits longer than distributed.timeout_minutes fails instead of hanging."""
    result = _torchrun(
        """
        import time
        from ragtune.engine.config import RunConfig
        from ragtune.engine.core.dist import barrier, rank
        from ragtune.engine.training.launch import process_group_timeout
        from ragtune.engine.training.worker import init_distributed

        cfg = RunConfig.from_dict({"distributed": {"timeout_minutes": 0.05}})
        init_distributed("gloo", process_group_timeout(cfg))
        if rank() == 1:
            time.sleep(12)
        started = time.monotonic()
        try:
            barrier()
            print(f"rank {rank()} passed the barrier", flush=True)
        except Exception as exc:
            waited = time.monotonic() - started
            print(f"rank {rank()} gave up after {waited:.0f}s: {type(exc).__name__}", flush=True)
            raise SystemExit(3)
        """,
        tmp_path,
    )
    out = result.stdout + result.stderr
    assert "rank 0 gave up after" in out, out[-3000:]
    waited = int(out.split("rank 0 gave up after ")[1].split("s")[0])
    assert waited <= 8  # 3 s timeout, not gloo's default 30 minutes
    assert result.returncode != 0


@pytest.mark.slow
def test_every_rank_resumes_rank_zeros_checkpoint_or_all_fail(tmp_path: Path) -> None:
    """Each rank's folder stands for a node's own disk: rank 1 has a newer checkpoint of its
    own, then lacks the one rank 0 chose."""
    result = _torchrun(
        """
        import json, os
        from pathlib import Path
        from ragtune.engine.core.dist import rank
        from ragtune.engine.core.errors import RagtuneError
        from ragtune.engine.training.arguments import agreed_checkpoint
        from ragtune.engine.training.worker import init_distributed

        init_distributed("gloo", 60.0)
        out = Path(os.environ["OUT"])
        me = out / f"node{rank()}"

        def make(folder, step):
            (folder / f"checkpoint-{step}").mkdir(parents=True, exist_ok=True)
            (folder / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")

        make(me / "a", 5)
        if rank() == 1:
            make(me / "a", 7)
        else:
            make(me / "b", 5)
        report = {"a": Path(agreed_checkpoint(me / "a")).name}
        try:
            agreed_checkpoint(me / "b")
            report["b"] = "resumed"
        except RagtuneError as exc:
            report["b"] = exc.message
        (out / f"rank{rank()}.json").write_text(json.dumps(report))
        """,
        tmp_path,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["a"] for r in reports] == ["checkpoint-5", "checkpoint-5"]
    for r in reports:
        assert r["b"] == "rank 0 resumes from checkpoint-5, which rank(s) 1 cannot see"
