"""The measurements behind bench/gpu_check.sh, on the pairs of a finished quickstart workspace.

    python bench/gpu_check.py ratio  --workspace WS --device cuda --precision bf16
    python bench/gpu_check.py memory --workspace WS --device cuda --precision bf16
    python bench/gpu_check.py ddp    --workspace WS

Each prints one line for a person and, last, one JSON line for the script's summary.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def pairs(workspace: Path, limit: int) -> tuple[list[str], list[str]]:
    from ragtune.engine.core.workspace import Workspace
    from ragtune.engine.data.prepare import load_prepared

    train = load_prepared(Workspace(workspace)).train
    n = min(limit, len(train))
    return list(train["anchor"][:n]), list(train["positive"][:n])


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def plain(anchors: list[str], positives: list[str], out: Path, a: argparse.Namespace) -> float:
    """What a user would write with sentence-transformers alone: MNRL in MatryoshkaLoss."""
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer import losses

    from ragtune.engine.core.models import derive_dims, precision_flags, resolve_model
    from ragtune.engine.embedder.train import embedding_dim

    t0 = time.perf_counter()
    model = SentenceTransformer(resolve_model(a.model), device=a.device)
    model.max_seq_length = a.seq
    dims = derive_dims(embedding_dim(model))
    loss = losses.MatryoshkaLoss(model, losses.MultipleNegativesRankingLoss(model), dims)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out),
        num_train_epochs=1,
        per_device_train_batch_size=a.batch,
        learning_rate=2e-5,
        warmup_steps=0.1,
        lr_scheduler_type="cosine",
        weight_decay=0.01,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="no",
        report_to="none",
        seed=42,
        use_cpu=a.device == "cpu",
        disable_tqdm=True,
        **precision_flags(a.precision, a.device),
    )
    ds = Dataset.from_dict({"anchor": anchors, "positive": positives})
    SentenceTransformerTrainer(model=model, args=args, train_dataset=ds, loss=loss).train()
    _sync(a.device)
    model.save(str(out / "model"))
    return time.perf_counter() - t0


def ragtune(
    anchors: list[str], positives: list[str], root: Path, a: argparse.Namespace, **embedder: Any
) -> float:
    from datasets import Dataset

    from ragtune.engine.config import RunConfig
    from ragtune.engine.core.events import Emitter
    from ragtune.engine.core.workspace import Workspace
    from ragtune.engine.data.prepare import Prepared
    from ragtune.engine.embedder.train import train_embedder

    settings = {
        "base_model": a.model,
        "loss": "mnrl",
        "corpus_rotation": False,
        "max_seq_length": a.seq,
        "batch_size": a.batch,
        "eval_strategy": "no",
        # Not evaluated; 64 is a trained size of every model the ladder derives.
        "metric_for_best_model": "eval_dim_64_cosine_ndcg@10",
        "device": a.device,
        "precision": a.precision,
        **embedder,
    }
    cfg = RunConfig.from_dict({"embedder": settings, "run": {"workspace": str(root)}})
    prepared = Prepared(
        train=Dataset.from_dict({"anchor": anchors, "positive": positives}),
        eval_queries={},
        eval_relevant={},
        corpus={},
    )
    t0 = time.perf_counter()
    train_embedder(cfg, Workspace.create(root), Emitter(), prepared=prepared)
    _sync(a.device)
    return time.perf_counter() - t0


def cmd_ratio(a: argparse.Namespace) -> dict[str, Any]:
    anchors, positives = pairs(a.workspace, a.pairs)
    base = Path(tempfile.mkdtemp(prefix="ragtune-gpu-check-"))
    plain(anchors[: a.batch * 2], positives[: a.batch * 2], base / "warm-plain", a)
    ragtune(anchors[: a.batch * 2], positives[: a.batch * 2], base / "warm-ragtune", a)
    times: dict[str, list[float]] = {"plain": [], "mnrl": [], "distill": []}
    for r in range(a.rounds):
        times["plain"].append(plain(anchors, positives, base / f"plain{r}", a))
        times["mnrl"].append(ragtune(anchors, positives, base / f"mnrl{r}", a))
        times["distill"].append(
            ragtune(anchors, positives, base / f"distill{r}", a, loss="distill")
        )
    p = statistics.median(times["plain"])
    m = statistics.median(times["mnrl"])
    d = statistics.median(times["distill"])
    print(
        f"{len(anchors)} pairs, batch {a.batch}, {a.precision} on {a.device}: plain "
        f"sentence-transformers {p:.1f}s, ragtune mnrl {m:.1f}s (ratio {m / p:.3f}), "
        f"ragtune distill {d:.1f}s (ratio {d / p:.3f})"
    )
    return {
        "pairs": len(anchors),
        "plain_s": round(p, 2),
        "mnrl_s": round(m, 2),
        "distill_s": round(d, 2),
        "mnrl_ratio": round(m / p, 3),
        "distill_ratio": round(d / p, 3),
    }


def cmd_memory(a: argparse.Namespace) -> dict[str, Any]:
    """Peak GPU memory of the same steps with and without activation checkpointing."""
    import torch

    from ragtune.engine.config.training import EmbedderConfig
    from ragtune.engine.core.gpu import propose_batch_size

    anchors, positives = pairs(a.workspace, a.batch * a.steps)
    base = Path(tempfile.mkdtemp(prefix="ragtune-gpu-mem-"))
    cuda = a.device.startswith("cuda")
    out: dict[str, Any] = {"batch": a.batch, "seq": a.seq, "pairs": len(anchors)}
    for checkpointing in (False, True):
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        seconds = ragtune(
            anchors,
            positives,
            base / f"gc{int(checkpointing)}",
            a,
            gradient_checkpointing=checkpointing,
        )
        key = "checkpointing" if checkpointing else "plain"
        peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
        out[f"{key}_peak_gib"] = round(peak, 2) if peak is not None else None
        out[f"{key}_s"] = round(seconds, 2)
    if cuda:
        total = torch.cuda.get_device_properties(0).total_memory / 2**30
        proposal = propose_batch_size(
            EmbedderConfig(base_model=a.model, max_seq_length=a.seq, precision=a.precision),
            memory_gib=total,
            gpu=torch.cuda.get_device_name(0),
        )
        out["proposed_batch"] = proposal.batch_size
        out["proposal_reason"] = proposal.reason
        print(
            f"batch {a.batch} × {a.seq} tokens: peak {out['plain_peak_gib']} GiB without "
            f"checkpointing ({out['plain_s']}s), {out['checkpointing_peak_gib']} GiB with it "
            f"({out['checkpointing_s']}s); proposed batch for this GPU: {proposal.batch_size}"
        )
    else:
        print(
            f"batch {a.batch} × {a.seq} tokens on CPU: {out['plain_s']}s without "
            f"checkpointing, {out['checkpointing_s']}s with it (GPU memory: n/a)"
        )
    return out


def cmd_ddp(a: argparse.Namespace) -> dict[str, Any]:
    """Train-stage seconds and candidates per query, as the last runs in events.jsonl say."""
    from ragtune.engine.core.events import StageFinished, read_events

    runs = [
        e
        for e in read_events(a.workspace / "events.jsonl")
        if isinstance(e, StageFinished) and e.stage == "train"
    ]
    one, two = runs[-2], runs[-1]
    out = {
        "one_process_s": round(one.seconds, 1),
        "two_process_s": round(two.seconds, 1),
        "speedup": round(one.seconds / two.seconds, 2) if two.seconds else None,
        "candidates_per_query": two.summary.get("candidates_per_query"),
        "steps": [one.summary.get("steps"), two.summary.get("steps")],
    }
    print(
        f"train stage: 1 process {out['one_process_s']}s, 2 processes {out['two_process_s']}s "
        f"(speedup {out['speedup']}), candidates per query with 2: "
        f"{out['candidates_per_query']}, steps {out['steps']}"
    )
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("ratio", "memory", "ddp"))
    p.add_argument("--workspace", type=Path, required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--precision", default="bf16")
    p.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    p.add_argument("--pairs", type=int, default=512)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--steps", type=int, default=4, help="memory: training steps per setting")
    a = p.parse_args()
    from ragtune.engine.core.quiet import quiet_libraries

    quiet_libraries()
    result = {"ratio": cmd_ratio, "memory": cmd_memory, "ddp": cmd_ddp}[a.what](a)
    print(json.dumps({a.what: result}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
