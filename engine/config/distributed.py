"""How training is spread over GPUs and machines (through torchrun)."""

from __future__ import annotations

from dataclasses import dataclass

from engine.config.base import Section, setting


@dataclass
class DistributedConfig(Section):
    nproc_per_node: int = setting(
        1, help="training processes per machine, usually one per GPU", minimum=1
    )
    nnodes: int = setting(1, help="machines taking part", minimum=1)
    node_rank: int = setting(0, help="this machine's index among nnodes", minimum=0)
    rdzv_endpoint: str = setting("", help="host:port of the rendezvous for several machines")
    backend: str = setting(
        "auto", help="auto = nccl on GPU, gloo on CPU", choices=("auto", "nccl", "gloo")
    )
