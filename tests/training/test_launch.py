"""Multi-process training through torchrun: 2 gloo ranks on CPU, launched the way `ragtune run` does."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pytest

from ragtune.engine.api import run_pipeline
from ragtune.engine.config import RunConfig
from ragtune.engine.core.errors import Cancelled, ConfigError, InputError
from ragtune.engine.core.events import Emitter, Message, StageFinished, TrainLog, read_events
from ragtune.engine.core.workspace import Workspace
from ragtune.engine.training.launch import (
    check_distributed,
    choose_backend,
    launch_training,
    torchrun_command,
)
from ragtune.engine.training.worker import DistributedCancel
from tests.test_pipeline import tiny_config

TWO_RANKS = {"distributed": {"nproc_per_node": 2, "backend": "gloo"}}


def two_rank_config(tmp_path: Path, model: Path, **embedder: object) -> RunConfig:
    cfg = tiny_config(tmp_path, model, **embedder)
    cfg.distributed.nproc_per_node = 2
    cfg.distributed.backend = "gloo"
    return cfg


@pytest.mark.slow
def test_two_gloo_ranks_train_through_the_pipeline_and_the_model_loads(
    tmp_path: Path, tiny_bert: Path
) -> None:
    cfg = two_rank_config(tmp_path, tiny_bert)
    seen: list = []
    ws = run_pipeline(
        cfg, events=Emitter(seen.append), stages=["ingest", "generate", "prepare", "train"]
    )

    train_done = [e for e in seen if isinstance(e, StageFinished) and e.stage == "train"]
    assert len(train_done) == 1
    summary = train_done[0].summary
    assert summary["dims"] == [64, 32, 16] and summary["steps"] > 0
    # The default loss (distill) scores each query against every rank's passages.
    assert cfg.embedder.loss == "distill"
    assert summary["candidates_per_query"] == cfg.embedder.batch_size * 2
    assert ws.stage_summary("train")["train_pairs"] == summary["train_pairs"]

    # Rank 0's trainer logs reach the caller's sinks and events.jsonl exactly once each.
    relayed = [e for e in seen if isinstance(e, TrainLog) and e.split == "train"]
    assert relayed and all(e.stage == "train" for e in relayed)
    logged = [e for e in read_events(ws.events_path) if isinstance(e, TrainLog)]
    assert [(e.step, e.split) for e in logged] == [
        (e.step, e.split) for e in seen if isinstance(e, TrainLog)
    ]
    # No log line twice; two different lines may share a step (with one step, the first-step
    # log and the end-of-training summary both say step 1).
    identities = [(e.step, e.split, tuple(sorted(e.values))) for e in logged]
    assert len(set(identities)) == len(identities)
    assert any(isinstance(e, Message) and "2 processes" in e.text for e in seen)

    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(ws.embedder_dir), device="cpu")
    emb = model.encode(["forklift battery changes"], truncate_dim=16)
    assert emb.shape == (1, 16)
    log = (ws.state_dir / "launch_embedder" / "torchrun.log").read_text()
    assert "torch.distributed.run" in log and "--nproc_per_node=2" in log


@pytest.mark.slow
def test_a_rank_error_comes_back_as_the_same_error(tmp_path: Path, tiny_modernbert: Path) -> None:
    cfg = two_rank_config(tmp_path, tiny_modernbert)
    ws = Workspace.create(cfg.workspace_dir)
    with pytest.raises(InputError, match="no prepared dataset") as info:
        launch_training(cfg, ws, Emitter(), "embedder", threading.Event())
    assert "--stages ingest,generate,prepare" in info.value.hint
    assert list((ws.state_dir / "launch_embedder").glob("error.rank*.json"))


@pytest.mark.slow
def test_cancel_stops_every_rank_with_a_checkpoint(tmp_path: Path, tiny_modernbert: Path) -> None:
    cfg = two_rank_config(tmp_path, tiny_modernbert, epochs=20.0)
    run_pipeline(cfg, stages=["ingest", "generate", "prepare"])
    ws = Workspace.create(cfg.workspace_dir)
    cancel = threading.Event()

    def stop_on_first_log(event: object) -> None:
        if isinstance(event, TrainLog):
            cancel.set()

    with pytest.raises(Cancelled):
        launch_training(cfg, ws, Emitter(stop_on_first_log), "embedder", cancel)
    assert list((ws.checkpoints_dir / "embedder").glob("checkpoint-*"))
    assert not ws.embedder_dir.exists()


def test_single_node_uses_standalone_and_several_nodes_a_fixed_rank_zero(tmp_path: Path) -> None:
    cfg = RunConfig.from_dict(TWO_RANKS)
    cmd = torchrun_command(cfg, tmp_path / "config.toml", "embedder", "gloo", tmp_path)
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--standalone" in cmd and "--nproc_per_node=2" in cmd
    assert cmd[cmd.index("-m", 3) + 1] == "ragtune.engine.training.worker"
    assert cmd[cmd.index("--summary") + 1] == str(tmp_path / "summary.json")

    multi = RunConfig.from_dict(
        {
            "distributed": {
                "nproc_per_node": 4,
                "nnodes": 2,
                "node_rank": 1,
                "rdzv_endpoint": "n0:29500",
            }
        }
    )
    cmd = torchrun_command(multi, tmp_path / "c.toml", "reranker", "nccl", tmp_path)
    assert "--standalone" not in cmd
    assert {
        "--nnodes=2",
        "--node_rank=1",
        "--rdzv_backend=static",
        "--rdzv_endpoint=n0:29500",
    } <= set(cmd)
    assert cmd[cmd.index("--which") + 1] == "reranker"


def test_backend_follows_the_device_and_bad_settings_name_their_key() -> None:
    assert choose_backend("auto", "cpu") == "gloo"
    assert choose_backend("auto", "cuda") == "nccl"
    assert choose_backend("gloo", "cuda") == "gloo"
    with pytest.raises(ConfigError, match=r"distributed\.backend"):
        choose_backend("nccl", "cpu")
    no_endpoint = RunConfig.from_dict({"distributed": {"nnodes": 2}})
    with pytest.raises(ConfigError, match=r"distributed\.rdzv_endpoint"):
        check_distributed(no_endpoint, "cpu")
    bad_rank = RunConfig.from_dict(
        {"distributed": {"nnodes": 2, "node_rank": 2, "rdzv_endpoint": "n0:1"}}
    )
    with pytest.raises(ConfigError, match=r"distributed\.node_rank"):
        check_distributed(bad_rank, "cpu")


def test_cancel_file_or_signal_sets_the_cancel_without_a_process_group(tmp_path: Path) -> None:
    flag = tmp_path / "cancel"
    cancel = DistributedCancel(flag)
    assert not cancel.is_set()
    flag.write_text("now")
    assert cancel.is_set()
    other = DistributedCancel(None)
    other.set()
    assert other.is_set()


def test_summary_json_is_what_launch_returns(tmp_path: Path) -> None:
    from ragtune.engine.training.launch import _result

    (tmp_path / "summary.json").write_text(json.dumps({"steps": 3}))
    assert _result(0, tmp_path, tmp_path / "log", cancelled=False) == {"steps": 3}
    (tmp_path / "summary.json").unlink()
    (tmp_path / "log").write_text("line\nTraceback: boom\n")
    with pytest.raises(Exception, match="boom"):
        _result(1, tmp_path, tmp_path / "log", cancelled=False)
