"""How training is spread over GPUs and machines (through torchrun)."""

from __future__ import annotations

from dataclasses import dataclass

from ragtune.engine.config.base import Section, setting
from ragtune.engine.core.errors import ConfigError


@dataclass
class DistributedConfig(Section):
    nproc_per_node: int | str = setting(
        "auto",
        help='training processes per machine: "auto" = one per visible GPU (1 on CPU), or a number',
    )
    nnodes: int = setting(1, help="machines taking part", minimum=1)
    node_rank: int = setting(0, help="this machine's index among nnodes", minimum=0)
    rdzv_endpoint: str = setting("", help="host:port of the rendezvous for several machines")
    backend: str = setting(
        "auto", help="auto = nccl on GPU, gloo on CPU", choices=("auto", "nccl", "gloo")
    )
    timeout_minutes: float = setting(
        60.0,
        help="how long a rank waits for the others in a collective (a checkpoint save, the "
        "last step) before the job fails",
        minimum=0.01,
        fingerprint=False,
    )

    def check(self) -> None:
        value = self.nproc_per_node
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, str):
            value = value.strip().lower()
        if value != "auto" and not (isinstance(value, int) and value >= 1):
            raise ConfigError(
                "distributed.nproc_per_node", self.nproc_per_node, '"auto" or a number >= 1'
            )
        object.__setattr__(self, "nproc_per_node", value)
