"""Runs a training stage on several processes through torchrun and reports it as a local stage.

The parent never joins the process group: it starts ``torchrun`` in its own session, relays the
events rank 0 writes, turns a cancel request into a stop all ranks agree on, and reads back the
summary rank 0 leaves behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ragtune.engine.config import RunConfig
from ragtune.engine.core.errors import Cancelled, ConfigError, RagtuneError
from ragtune.engine.core.events import Emitter, EventTail
from ragtune.engine.core.gpu import named_oom
from ragtune.engine.core.workspace import Workspace
from ragtune.engine.training.prework import STAGE_OF, run_prework

WHICH = ("embedder", "reranker")
REPO_ROOT = Path(__file__).resolve().parent.parent
LOG_TAIL_LINES = 40


def choose_backend(preference: str, device: str) -> str:
    """nccl for CUDA, gloo otherwise; an explicit nccl without CUDA is a config error."""
    if preference == "auto":
        return "nccl" if device.startswith("cuda") else "gloo"
    if preference == "nccl" and not device.startswith("cuda"):
        raise ConfigError(
            "distributed.backend", preference, "gloo or auto on a machine without CUDA GPUs"
        )
    return preference


def training_device(cfg: RunConfig, which: str) -> str:
    from ragtune.engine.core.models import pick_device

    section = cfg.embedder if which == "embedder" else cfg.reranker
    return pick_device(section.device)


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def processes_per_node(cfg: RunConfig, device: str) -> int:
    """``distributed.nproc_per_node`` as a number: "auto" is one per visible GPU on CUDA (one
    when the device names a single GPU, ``cuda:1``), one on CPU and MPS."""
    n = cfg.distributed.nproc_per_node
    if n != "auto":
        return int(n)
    if device == "cuda":
        return max(1, _gpu_count())
    return 1


def planned_processes(cfg: RunConfig, which: str) -> int:
    """``processes_per_node`` without importing torch (NVML counts the GPUs), for fingerprints
    and status: a run that trained with "auto" on one GPU matches one recorded with 1."""
    n = cfg.distributed.nproc_per_node
    if n != "auto":
        return int(n)
    section = cfg.embedder if which == "embedder" else cfg.reranker
    if section.device not in ("auto", "cuda"):
        return 1
    from ragtune.engine.core.gpu import visible_gpus

    return max(1, len(visible_gpus()))


def pinned_gpu(device: str, nproc: int, gpu_count: int, visible: str | None) -> str | None:
    """The one GPU a single process must be held to, as a CUDA_VISIBLE_DEVICES value, or None.

    One process that sees several GPUs gets wrapped in ``torch.nn.DataParallel`` by the
    trainer, slower than one GPU for an encoder this size and never what was asked for.
    ``visible`` is the CUDA_VISIBLE_DEVICES already set, whose entries ``cuda:N`` indexes.
    """
    if nproc != 1 or gpu_count < 2 or not device.startswith("cuda"):
        return None
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    ids = [v.strip() for v in (visible or "").split(",") if v.strip()]
    return ids[index] if index < len(ids) else str(index)


def uses_launcher(cfg: RunConfig, which: str) -> bool:
    """Whether ``which`` trains in child processes (torchrun) rather than in this one."""
    device = training_device(cfg, which)
    nproc = processes_per_node(cfg, device)
    if cfg.distributed.nnodes > 1 or nproc > 1:
        return True
    if not device.startswith("cuda"):
        return False
    return (
        pinned_gpu(device, nproc, _gpu_count(), os.environ.get("CUDA_VISIBLE_DEVICES")) is not None
    )


def process_group_timeout(cfg: RunConfig) -> float:
    """Seconds a rank waits in a collective; NCCL's own default (10 minutes) is shorter than
    a large corpus's checkpoint save or last evaluation."""
    return cfg.distributed.timeout_minutes * 60.0


def check_distributed(cfg: RunConfig, device: str) -> None:
    """Fail before starting processes when the settings cannot work on this machine."""
    d = cfg.distributed
    nproc = processes_per_node(cfg, device)
    if d.nnodes > 1 and not d.rdzv_endpoint:
        raise ConfigError("distributed.rdzv_endpoint", "", "host:port of the node with node_rank 0")
    if d.nnodes > 1 and ":" not in d.rdzv_endpoint:
        raise ConfigError("distributed.rdzv_endpoint", d.rdzv_endpoint, "host:port")
    if d.node_rank >= d.nnodes:
        raise ConfigError("distributed.node_rank", d.node_rank, f"0 to {d.nnodes - 1}")
    if ":" in device and nproc > 1:
        raise ConfigError(
            "distributed.nproc_per_node",
            d.nproc_per_node,
            f"1 while the device is {device} (one GPU); or set the device to auto or cuda",
        )
    if device.startswith("cuda"):
        gpus = _gpu_count()
        if nproc > gpus:
            raise ConfigError(
                "distributed.nproc_per_node",
                d.nproc_per_node,
                f'"auto" or at most the {gpus} visible GPU(s) (see CUDA_VISIBLE_DEVICES)',
            )


def torchrun_command(
    cfg: RunConfig,
    config_path: Path,
    which: str,
    backend: str,
    run_dir: Path,
    *,
    nproc: int | None = None,
    device: str = "",
) -> list[str]:
    """The command a user could also type; single-node runs use --standalone (a free port).

    Several nodes use the static rendezvous so global rank 0, which writes events and the
    model, lives on ``node_rank`` 0, the node whose workspace the user is watching.
    """
    d = cfg.distributed
    n = nproc if nproc is not None else d.nproc_per_node
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={n}"]
    if d.nnodes > 1:
        cmd += [
            f"--nnodes={d.nnodes}",
            f"--node_rank={d.node_rank}",
            "--rdzv_backend=static",
            f"--rdzv_endpoint={d.rdzv_endpoint}",
            f"--rdzv_conf=timeout={int(process_group_timeout(cfg))}",
        ]
    else:
        cmd += ["--standalone", "--nnodes=1"]
    return [
        *cmd,
        "-m",
        "ragtune.engine.training.worker",
        "--config",
        str(config_path),
        "--which",
        which,
        "--backend",
        backend,
        "--summary",
        str(run_dir / "summary.json"),
        "--events",
        str(run_dir / "events.jsonl"),
        "--cancel-file",
        str(run_dir / "cancel"),
        *(["--device", device] if device else []),
    ]


def _worker_env(pinned: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if pinned is not None:
        env["CUDA_VISIBLE_DEVICES"] = pinned
    path = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + path if path else "")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _stop(proc: subprocess.Popen, wait: float = 30.0) -> None:
    """SIGTERM to the whole group (torchrun and its workers), SIGKILL if still alive."""
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        proc.wait()


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The end of the first failing rank's traceback, else the end of the log.

    torchrun's own closing summary only says which rank exited; the cause is in the
    ``[rankN]:`` lines above it.
    """
    if not path.exists():
        return ""
    text = [ln for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln]
    ranked = [ln for ln in text if ln.startswith("[rank")]
    if ranked:
        first = ranked[0].split("]", 1)[0]
        ranked = [ln for ln in ranked if ln.startswith(first + "]")]
        return "\n".join(ranked[-lines // 2 :])
    return "\n".join(text[-lines:])


def _rank_error(run_dir: Path) -> RagtuneError | None:
    """The error a rank recorded, lowest rank first, rebuilt as the same RagtuneError class."""
    import ragtune.engine.core.errors as errors

    files = sorted(run_dir.glob("error.rank*.json"), key=lambda p: int(p.stem.split("rank")[1]))
    for path in files:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, OSError):
            continue
        cls = getattr(errors, str(data.get("type", "")), None)
        if not (isinstance(cls, type) and issubclass(cls, RagtuneError)):
            cls = RagtuneError
        err = cls.__new__(cls)
        RagtuneError.__init__(
            err,
            str(data.get("message", "")),
            hint=data.get("hint", ""),
            where=data.get("where", ""),
        )
        return err
    return None


class _GpuRelay:
    """Samples this node's GPUs and labels each with the global rank training on it."""

    def __init__(
        self,
        events: Emitter,
        cfg: RunConfig,
        nproc: int,
        interval: float = 2.0,
        visible: str | None = None,
    ) -> None:
        self.events = events
        self.interval = interval
        self.first_rank = cfg.distributed.node_rank * nproc
        self.nproc = nproc
        if visible is None:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        ids = [v.strip() for v in visible.split(",") if v.strip()]
        self.visible = [int(v) for v in ids] if ids and all(v.isdigit() for v in ids) else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def rank_of(self, index: int) -> int:
        """-1 for a GPU no rank of this node uses."""
        if self.visible is None:
            local = index
        elif index in self.visible:
            local = self.visible.index(index)
        else:
            return -1
        return self.first_rank + local if local < self.nproc else -1

    def __enter__(self) -> _GpuRelay:
        from ragtune.engine.core.gpu import read_gpus

        if read_gpus():
            self._thread = threading.Thread(target=self._loop, daemon=True, name="gpu-relay")
            self._thread.start()
        return self

    def _loop(self) -> None:
        from ragtune.engine.core.gpu import read_gpus

        while not self._stop.wait(self.interval):
            for sample in read_gpus():
                sample.rank = self.rank_of(sample.index)
                if sample.rank >= 0:
                    self.events.emit(sample)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 1)


def launch_training(
    cfg: RunConfig,
    ws: Workspace,
    events: Emitter,
    which: str,
    cancel: threading.Event | None = None,
    *,
    grace: float = 300.0,
    poll: float = 0.3,
) -> dict[str, Any]:
    """Train ``which`` ("embedder" or "reranker") on ``cfg.distributed`` processes.

    Returns the summary the single-process stage would return. A cancel request lets every
    rank finish its step and checkpoint together; after ``grace`` seconds the group is
    terminated instead.
    """
    if which not in WHICH:
        raise ValueError(f"which must be one of {WHICH}, not {which!r}")
    device = training_device(cfg, which)
    backend = choose_backend(cfg.distributed.backend, device)
    check_distributed(cfg, device)
    if not ws.config_path.exists():
        cfg.for_workspace(ws.root).save(ws.config_path)
    d = cfg.distributed
    nproc = processes_per_node(cfg, device)
    pinned = pinned_gpu(device, nproc, _gpu_count(), os.environ.get("CUDA_VISIBLE_DEVICES"))
    if d.node_rank == 0:
        # Before the ranks exist, so none of them waits in a collective while it runs; the
        # other nodes' ranks wait in the rendezvous, whose timeout is the same setting.
        with named_oom(STAGE_OF[which], cfg):
            run_prework(cfg, ws, events, which)

    run_dir = ws.state_dir / f"launch_{which}"
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in (*run_dir.glob("error.rank*.json"), run_dir / "summary.json", run_dir / "cancel"):
        stale.unlink(missing_ok=True)
    events_file = run_dir / "events.jsonl"
    events_file.write_text("")
    log_path = run_dir / "torchrun.log"
    cmd = torchrun_command(
        cfg, ws.config_path, which, backend, run_dir, nproc=nproc, device="cuda" if pinned else ""
    )
    if pinned is not None:
        events.info(
            f"{which}: one process on GPU {pinned} of the {_gpu_count()} visible "
            f"(CUDA_VISIBLE_DEVICES={pinned}), not DataParallel over all of them; to train on "
            f'every GPU set distributed.nproc_per_node = "auto" and {which}.device = "auto"',
            where=str(log_path),
        )
    else:
        events.info(
            f"{which}: {nproc * d.nnodes} processes ({d.nnodes} node(s) × {nproc}), "
            f"backend {backend}",
            where=str(log_path),
        )

    tail = EventTail(events_file)

    def relay() -> None:
        for event in tail.read_new():
            events.emit(event)

    cancel_sent: float | None = None
    terminated = False
    relay_visible = pinned if pinned is not None else os.environ.get("CUDA_VISIBLE_DEVICES", "")
    with log_path.open("ab") as log, _GpuRelay(events, cfg, nproc, visible=relay_visible):
        log.write(f"$ {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_worker_env(pinned),
            cwd=str(ws.root),
            start_new_session=True,
        )
        try:
            while proc.poll() is None:
                relay()
                if cancel is not None and cancel.is_set() and cancel_sent is None:
                    (run_dir / "cancel").write_text(str(time.time()))
                    cancel_sent = time.monotonic()
                    events.info(f"{which}: stopping every rank within 10 steps, at the same step")
                if cancel_sent is not None and time.monotonic() - cancel_sent > grace:
                    terminated = True
                    _stop(proc)
                    break
                time.sleep(poll)
        except BaseException:
            _stop(proc)
            relay()
            raise
        relay()
    return _result(proc.returncode, run_dir, log_path, cancel_sent is not None or terminated)


def _result(code: int, run_dir: Path, log_path: Path, cancelled: bool) -> dict[str, Any]:
    summary_path = run_dir / "summary.json"
    if code == 0 and summary_path.exists():
        return json.loads(summary_path.read_text(encoding="utf-8"))
    if cancelled:
        raise Cancelled(
            "training stopped; the last checkpoint is kept and `ragtune run` resumes it"
        )
    err = _rank_error(run_dir)
    if err is not None:
        raise err
    if code == 0:
        raise RagtuneError(
            "training finished but rank 0's summary is not visible on this node",
            where=str(summary_path),
            hint="on several nodes the workspace must be on a filesystem every node shares",
        )
    raise RagtuneError(
        f"training processes failed (torchrun exit {code}); last lines of the log:\n"
        + log_tail(log_path),
        where=str(log_path),
        hint=f"read {log_path} for every rank's output",
    )
