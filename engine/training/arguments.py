"""Training arguments and resume rules shared by the embedder and reranker trainers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ragtune.engine.core.errors import RagtuneError
from ragtune.engine.core.models import precision_flags


def common_arguments(
    cfg: Any, output_dir: Path, device: str, *, eval_strategy: str, metric: str
) -> dict[str, Any]:
    """Keyword arguments both trainers take; saving follows evaluation so the best can be kept.

    ``cfg`` is an embedder or reranker section: both carry these field names.
    """
    evaluating = eval_strategy != "no"
    return {
        "output_dir": str(output_dir),
        "num_train_epochs": cfg.epochs,
        "per_device_train_batch_size": cfg.batch_size,
        "per_device_eval_batch_size": cfg.batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "learning_rate": cfg.learning_rate,
        **warmup_argument(cfg.warmup_ratio),
        "weight_decay": cfg.weight_decay,
        "eval_strategy": eval_strategy,
        "eval_steps": cfg.eval_steps or None,
        "save_strategy": eval_strategy if evaluating else "epoch",
        "save_steps": cfg.eval_steps or 500,
        "save_total_limit": cfg.save_total_limit,
        "load_best_model_at_end": cfg.load_best_model_at_end and evaluating,
        "metric_for_best_model": metric if evaluating else None,
        "greater_is_better": True,
        "seed": cfg.seed,
        "report_to": "none",
        "disable_tqdm": True,
        "use_cpu": device == "cpu",
        **precision_flags(cfg.precision, device),
    }


def _transformers_major() -> int:
    import transformers

    return int(transformers.__version__.split(".")[0])


def warmup_argument(ratio: float) -> dict[str, float]:
    """transformers 5 takes the ratio as a float ``warmup_steps``; 4.x only as ``warmup_ratio``."""
    return {"warmup_steps": ratio} if _transformers_major() >= 5 else {"warmup_ratio": ratio}


def reset_stale_checkpoints(folder: Path, fingerprint: str) -> None:
    """Checkpoints made with other settings or data must never be resumed; rank 0 wipes them
    and the other ranks wait, so every rank sees the same folder."""
    import shutil

    from ragtune.engine.core.dist import barrier, is_main_process

    marker = folder / "ragtune_fingerprint"
    if is_main_process():
        if folder.exists() and (not marker.exists() or marker.read_text().strip() != fingerprint):
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        marker.write_text(fingerprint)
    barrier()


def last_checkpoint(folder: Path) -> str | None:
    """The newest complete checkpoint: a kill during a save leaves ``checkpoint-N/`` without
    ``trainer_state.json``, and resuming that one would fail every later run."""
    if not folder.is_dir():
        return None
    complete = [
        (int(p.name.split("-")[1]), p)
        for p in folder.glob("checkpoint-*")
        if p.name.split("-")[1].isdigit() and (p / "trainer_state.json").is_file()
    ]
    return str(max(complete)[1]) if complete else None


def quiet(trainer: Any) -> Any:
    """Trainer logs reach the user as events; the printer would write them to stdout too."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    return trainer


def agreed_checkpoint(folder: Path) -> str | None:
    """The checkpoint every rank resumes: rank 0 chooses it, every rank must see it.

    Ranks that each picked "their" newest checkpoint could resume from different steps when
    nodes do not share a filesystem (the trainer saves on rank 0's node only).
    """
    import torch.distributed as dist

    from ragtune.engine.core.dist import broadcast_from_main, rank

    chosen = broadcast_from_main(last_checkpoint(folder))
    name = Path(chosen).name if chosen else None
    if not (dist.is_available() and dist.is_initialized()):
        return chosen
    here = name is None or (folder / name / "trainer_state.json").is_file()
    seen: list[tuple[int, bool]] = [(0, True)] * dist.get_world_size()
    dist.all_gather_object(seen, (rank(), here))
    missing = sorted(r for r, ok in seen if not ok)
    if missing:
        raise RagtuneError(
            f"rank 0 resumes from {name}, which rank(s) {', '.join(map(str, missing))} cannot see",
            where=str(folder),
            hint="put the workspace on a filesystem every node shares (see docs/scaling.md), "
            "or delete the checkpoints folder to start training afresh",
        )
    return str(folder / name) if name else None


def train_resuming(trainer: Any, output_dir: Path, events: Any, what: str) -> str | None:
    """Run ``trainer`` from the last complete checkpoint in ``output_dir`` that rank 0 chose,
    saying so; the printer callback is removed first since logs reach the user as events."""
    quiet(trainer)
    resume = agreed_checkpoint(output_dir)
    if resume:
        events.info(f"resuming from {Path(resume).name} ({what})")
    trainer.train(resume_from_checkpoint=resume)
    return resume
