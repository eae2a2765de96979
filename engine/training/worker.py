"""One rank of a distributed training stage, started by torchrun (by ragtune or by hand).

    torchrun --nproc_per_node 4 -m ragtune.engine.training.worker --config runs/x/config.toml

Rank 0 writes events, the model and a JSON summary; every rank records a RagtuneError it
hits, so the launcher can show the user the real cause instead of torchrun's exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from ragtune.engine.core.dist import barrier, rank, world_size
from ragtune.engine.core.errors import RagtuneError
from ragtune.engine.core.events import Emitter, JsonlEventLog, StageFinished, StageStarted
from ragtune.engine.training.prework import STAGE_OF


class DistributedCancel(threading.Event):
    """A stop request every rank sees at the same step.

    A rank that stopped alone would wait forever in the next gradient all-reduce, so
    ``is_set`` is a collective: the trainer callback calls it once per step on every rank and
    the answer is the MAX over ranks of "a signal arrived or the cancel file exists".
    """

    def __init__(self, flag: Path | None = None, every: int = 10) -> None:
        super().__init__()
        self.flag = flag
        # The all-reduce syncs the host with the GPU; every rank calls is_set once per step,
        # so asking every ``every``-th call keeps the ranks agreed at a tenth of the stalls.
        self.every = max(1, every)
        self._calls = 0
        self._agreed = False

    def is_set(self) -> bool:
        local = super().is_set() or (self.flag is not None and self.flag.exists())
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            if local:
                super().set()
            return local
        if self._agreed:
            return True
        # Every rank counts the same calls, so all of them ask on the same step.
        self._calls += 1
        if self._calls % self.every:
            return False
        import torch

        device = (
            torch.device("cuda", torch.cuda.current_device())
            if dist.get_backend() == "nccl"
            else torch.device("cpu")
        )
        flag = torch.tensor([1 if local else 0], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        self._agreed = bool(flag.item())
        if self._agreed:
            super().set()
        return self._agreed


def install_signals(cancel: threading.Event) -> None:
    """First SIGINT/SIGTERM: stop after the step (with a checkpoint); a second: stop now."""

    def handler(signum: int, frame: Any) -> None:
        if threading.Event.is_set(cancel):
            raise KeyboardInterrupt
        threading.Event.set(cancel)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def init_distributed(backend: str, timeout_s: float) -> None:
    """Join the group before the trainer does, so it uses our backend, this rank's GPU and
    ``distributed.timeout_minutes`` (NCCL's own default, 10 minutes, ends long waits)."""
    from datetime import timedelta

    import torch

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if backend == "nccl" or (torch.cuda.is_available() and torch.cuda.device_count() > local_rank):
        torch.cuda.set_device(local_rank)
    if world_size() > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))


def run_stage(which: str, cfg: Any, ws: Any, events: Emitter, cancel: threading.Event) -> dict:
    if which == "embedder":
        from ragtune.engine.embedder.train import train_embedder

        return train_embedder(cfg, ws, events, cancel)
    from ragtune.engine.reranker.train import run_reranker_stage

    return run_reranker_stage(cfg, ws, events, cancel)


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, default=str, indent=2), encoding="utf-8")
    tmp.replace(path)


def mark_done(cfg: Any, ws: Any, which: str, summary: dict[str, Any], events: Emitter) -> None:
    """Record the stage as the pipeline would, so a later `ragtune run` continues after it."""
    from ragtune.engine.stages import plan

    stage = STAGE_OF[which]
    try:
        # With the inputs, as a pipeline run records them: a stage recorded without them is
        # never current, so the next `ragtune run` would train again.
        plan(cfg.for_workspace(ws.root), ws).record(stage, summary)
    except RagtuneError as exc:
        events.warning(f"{stage} not marked done: {exc.message}", hint=exc.hint)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m ragtune.engine.training.worker", description=__doc__
    )
    p.add_argument("--config", required=True, help="config.toml, or a workspace folder")
    p.add_argument("--which", choices=tuple(STAGE_OF), default="embedder")
    p.add_argument("--backend", default="", help="gloo or nccl; default from [distributed]")
    p.add_argument("--summary", default="", help="JSON file rank 0 writes the summary to")
    p.add_argument(
        "--events", default="", help="event log rank 0 appends to (default events.jsonl)"
    )
    p.add_argument(
        "--cancel-file",
        default="",
        help="stop within 10 steps (every rank at the same one) once this file exists",
    )
    p.add_argument(
        "--device",
        default="",
        help="overrides the section's device (the launcher pins one GPU as cuda)",
    )
    p.add_argument(
        "--mark-done",
        action="store_true",
        help="mark the stage done in the workspace (for runs started by hand with srun/torchrun)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from ragtune.engine.core.quiet import quiet_libraries

    quiet_libraries()
    from ragtune.engine.config import load_config
    from ragtune.engine.core.gpu import named_oom
    from ragtune.engine.core.workspace import Workspace
    from ragtune.engine.training.launch import (
        choose_backend,
        process_group_timeout,
        training_device,
    )

    summary_path = Path(args.summary) if args.summary else None
    error_dir = summary_path.parent if summary_path else None
    log: JsonlEventLog | None = None
    try:
        config = Path(args.config)
        cfg = load_config(config / "config.toml" if config.is_dir() else config)
        if args.device:
            (cfg.embedder if args.which == "embedder" else cfg.reranker).device = args.device
        ws = Workspace.create(cfg.workspace_dir)
        error_dir = error_dir or ws.state_dir / f"launch_{args.which}"
        backend = args.backend or choose_backend(
            cfg.distributed.backend, training_device(cfg, args.which)
        )
        init_distributed(backend, process_group_timeout(cfg))
        cancel = DistributedCancel(Path(args.cancel_file) if args.cancel_file else None)
        install_signals(cancel)
        if rank() == 0:
            log = JsonlEventLog(Path(args.events) if args.events else ws.events_path)
        events = Emitter(*([log] if log else []), stage=STAGE_OF[args.which])
        if args.mark_done:
            events.emit(StageStarted(detail=f"{world_size()} processes"))
        with named_oom(STAGE_OF[args.which], cfg):
            summary = run_stage(args.which, cfg, ws, events, cancel)
        seen = _candidates_per_query(args.which)
        if seen is not None:
            # What multi-GPU buys with in-batch losses: the user (and a test) can check it.
            summary["candidates_per_query"] = seen
        if rank() == 0:
            if summary_path is not None:
                write_json(summary_path, summary)
            if args.mark_done:
                mark_done(cfg, ws, args.which, summary, events)
                events.emit(StageFinished(summary=json.loads(json.dumps(summary, default=str))))
        # Other ranks exit only after rank 0 has written the summary they may read.
        barrier()
        return 0
    except RagtuneError as exc:
        if error_dir is not None:
            write_json(
                error_dir / f"error.rank{rank()}.json",
                {
                    "type": type(exc).__name__,
                    "message": exc.message,
                    "hint": exc.hint,
                    "where": exc.where,
                },
            )
        print(f"rank {rank()}: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    finally:
        if log is not None:
            log.close()
        _shutdown()


def _candidates_per_query(which: str) -> int | None:
    """In-batch candidates per query of the last step, when the loss records them."""
    if which != "embedder":
        return None
    from ragtune.engine.embedder.losses import MatryoshkaDistillLoss

    return MatryoshkaDistillLoss.seen_candidates


def _shutdown() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
