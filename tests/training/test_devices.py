"""How many processes train where: "auto", one pinned GPU instead of DataParallel, GPU sizes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ragtune.engine.config import RunConfig
from ragtune.engine.config.training import EmbedderConfig
from ragtune.engine.core.errors import ConfigError
from ragtune.engine.core.gpu import propose_batch_size
from ragtune.engine.core.models import encode_batch_size, inference_dtype
from ragtune.engine.training.launch import (
    check_distributed,
    pinned_gpu,
    planned_processes,
    process_group_timeout,
    processes_per_node,
    torchrun_command,
    uses_launcher,
)


def test_auto_is_the_default_and_numbers_still_load() -> None:
    assert RunConfig().distributed.nproc_per_node == "auto"
    assert (
        RunConfig.from_dict({"distributed": {"nproc_per_node": 4}}).distributed.nproc_per_node == 4
    )
    assert (
        RunConfig.from_dict({"distributed": {"nproc_per_node": "AUTO"}}).distributed.nproc_per_node
        == "auto"
    )
    for bad in (0, -1, "all", 1.5):
        with pytest.raises(ConfigError, match=r"distributed\.nproc_per_node"):
            RunConfig.from_dict({"distributed": {"nproc_per_node": bad}})
    cfg = RunConfig.from_dict({"distributed": {"timeout_minutes": 90}})
    assert process_group_timeout(cfg) == 5400.0


def test_auto_is_one_process_here_without_a_launcher(tmp_path: Path) -> None:
    cfg = RunConfig.from_dict({"embedder": {"device": "cpu"}, "reranker": {"device": "cpu"}})
    assert processes_per_node(cfg, "cpu") == 1
    assert planned_processes(cfg, "embedder") == 1
    assert planned_processes(RunConfig(), "embedder") == 1  # no GPU on this machine
    assert not uses_launcher(cfg, "embedder") and not uses_launcher(cfg, "reranker")
    two = RunConfig.from_dict({"embedder": {"device": "cpu"}, "distributed": {"nproc_per_node": 2}})
    assert processes_per_node(two, "cpu") == 2 and uses_launcher(two, "embedder")
    assert planned_processes(two, "embedder") == 2


def test_one_process_among_several_gpus_is_pinned_to_one() -> None:
    # cuda = the first visible GPU; cuda:N the N-th of those CUDA_VISIBLE_DEVICES lists.
    assert pinned_gpu("cuda", 1, 4, None) == "0"
    assert pinned_gpu("cuda:2", 1, 4, None) == "2"
    assert pinned_gpu("cuda:1", 1, 2, "5,7") == "7"
    # Nothing to pin: one GPU, several processes (DDP), or not CUDA.
    assert pinned_gpu("cuda", 1, 1, None) is None
    assert pinned_gpu("cuda", 4, 4, None) is None
    assert pinned_gpu("cpu", 1, 4, None) is None


def test_a_single_gpu_device_with_several_processes_is_refused() -> None:
    cfg = RunConfig.from_dict({"distributed": {"nproc_per_node": 2}})
    with pytest.raises(ConfigError, match=r"distributed\.nproc_per_node"):
        check_distributed(cfg, "cuda:1")


def test_the_worker_command_takes_the_resolved_count_and_the_pinned_device(tmp_path: Path) -> None:
    cfg = RunConfig()
    cmd = torchrun_command(
        cfg, tmp_path / "c.toml", "embedder", "nccl", tmp_path, nproc=1, device="cuda"
    )
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--nproc_per_node=1" in cmd and cmd[cmd.index("--device") + 1] == "cuda"
    multi = RunConfig.from_dict(
        {
            "distributed": {
                "nnodes": 2,
                "rdzv_endpoint": "n0:29500",
                "timeout_minutes": 30,
            }
        }
    )
    cmd = torchrun_command(multi, tmp_path / "c.toml", "embedder", "nccl", tmp_path, nproc=8)
    # Nodes > 0 wait in the rendezvous while node 0 mines: as long as the process group would.
    assert "--nproc_per_node=8" in cmd and "--rdzv_conf=timeout=1800" in cmd


def test_inference_runs_in_float32_on_cpu_and_batches_follow_the_device() -> None:
    import torch

    assert inference_dtype("auto", "cpu") == torch.float32
    assert inference_dtype("bf16", "cpu") == torch.float32
    assert encode_batch_size(32, "cuda", memory_gib=80) == 32  # set by the user: kept
    assert encode_batch_size(0, "cpu") == 64
    assert encode_batch_size(0, "cuda", memory_gib=8) == 64
    assert encode_batch_size(0, "cuda", memory_gib=24) == 128
    assert encode_batch_size(0, "cuda", memory_gib=80) == 512
    assert encode_batch_size(0, "cuda", memory_gib=141) == 1024


def test_the_proposed_batch_grows_with_memory_and_checkpointing(minilm_path: Path) -> None:
    base = EmbedderConfig(base_model=str(minilm_path), max_seq_length=256)
    small = propose_batch_size(base, memory_gib=8, gpu="RTX 4060")
    large = propose_batch_size(base, memory_gib=24, gpu="RTX 4090")
    assert 2 <= small.batch_size < large.batch_size <= 512
    assert small.reason.startswith("RTX 4060 (8 GiB): the model (~22M parameters)")
    assert "2 × 256 tokens" in small.reason
    checkpointed = EmbedderConfig(
        base_model=str(minilm_path), max_seq_length=256, gradient_checkpointing=True
    )
    assert propose_batch_size(checkpointed, memory_gib=8).batch_size > small.batch_size
    negatives = EmbedderConfig(base_model=str(minilm_path), max_seq_length=256, hard_negatives=2)
    assert propose_batch_size(negatives, memory_gib=8).batch_size < small.batch_size
    assert "capped at 512" in propose_batch_size(base, memory_gib=141).reason
    # No GPU here: the configured batch stays, and the reason says why.
    here = propose_batch_size(base)
    assert here.batch_size == base.batch_size and "no GPU" in here.reason
    unknown = propose_batch_size(EmbedderConfig(base_model="/nonexistent/model"), memory_gib=24)
    assert unknown.batch_size == 32 and "could not read" in unknown.reason
