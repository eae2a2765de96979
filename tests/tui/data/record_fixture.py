"""Writes ``run_events.jsonl`` and ``metrics.json``: a realistic 3-epoch run as the engine logs it.

Kept so the fixture can be re-recorded when the event schema grows; the
numbers follow the shape of a real MiniLM run on the handbook example
(noisy decreasing loss, warmup + cosine lr, eval each epoch, base < tuned).
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

from ragtune.engine.core.events import (
    EvalRow,
    GpuSample,
    Message,
    Progress,
    RunFinished,
    StageFinished,
    StageSkipped,
    StageStarted,
    TrainLog,
)

HERE = Path(__file__).parent
DIMS = (384, 256, 128, 64)
T0 = 1_750_000_000.0


def base_metrics(dim: int, lift: float) -> dict[str, float]:
    shrink = {384: 1.0, 256: 0.985, 128: 0.95, 64: 0.87}[dim]
    ndcg = (0.52 + lift) * shrink
    out = {
        "ndcg@10": ndcg,
        "mrr@10": ndcg - 0.04,
        "map@100": ndcg - 0.035,
        "accuracy@1": ndcg - 0.13,
        "accuracy@10": min(0.99, ndcg + 0.21),
        "recall@10": min(0.99, ndcg + 0.21),
    }
    return {f"dim_{dim}_cosine_{k}": round(v, 4) for k, v in out.items()}


def main() -> None:
    rng = random.Random(7)
    t = T0
    events = []

    def add(ev):
        events.append(ev)

    add(StageStarted(stage="ingest", time=t, detail="2 files"))
    add(
        Message(
            stage="ingest",
            time=t + 0.2,
            level="warning",
            text="skipped: encrypted PDF",
            where="handbook/scan.pdf",
            hint="decrypt it or remove it from sources",
        )
    )
    add(Progress(stage="ingest", time=t + 0.5, done=2, total=2, unit="files"))
    add(StageFinished(stage="ingest", time=t + 0.6, seconds=0.6, summary={"chunks": 212}))
    t += 1
    add(StageStarted(stage="generate", time=t, detail="llm-free"))
    for i in range(1, 5):
        add(
            Progress(
                stage="generate",
                time=t + i * 0.3,
                done=53 * i,
                total=212,
                unit="chunks",
                extra={"rows": 160 * i, "rows_per_s": 530.0, "failures": {}},
            )
        )
    add(StageFinished(stage="generate", time=t + 1.5, seconds=1.5, summary={"rows": 640}))
    t += 2
    add(StageSkipped(stage="prepare", time=t, reason="dataset is current"))
    t += 1
    add(
        StageStarted(
            stage="train", time=t, detail="embedder sentence-transformers/all-MiniLM-L6-v2"
        )
    )
    max_steps, epochs = 120, 3
    for step in range(2, max_steps + 1, 2):
        t += 1.5
        warm = 12
        lr = 2e-5 * (
            step / warm
            if step < warm
            else 0.5 * (1 + math.cos(math.pi * (step - warm) / (max_steps - warm)))
        )
        loss = 2.4 * math.exp(-step / 45) + 0.35 + rng.uniform(-0.08, 0.08)
        add(
            TrainLog(
                stage="train",
                time=t,
                model="embedder",
                split="train",
                step=step,
                max_steps=max_steps,
                epoch=round(step / max_steps * epochs, 3),
                loss=round(loss, 4),
                learning_rate=lr,
            )
        )
        if step % 8 == 0:
            add(
                GpuSample(
                    stage="train",
                    time=t,
                    index=0,
                    name="NVIDIA A10G",
                    utilization=80 + rng.uniform(-15, 15),
                    memory_used_mb=14_500 + step * 10,
                    memory_total_mb=23_028,
                    temperature_c=58 + step / 12,
                )
            )
        if step % 40 == 0:
            add(
                TrainLog(
                    stage="train",
                    time=t + 0.5,
                    model="embedder",
                    split="eval",
                    step=step,
                    max_steps=max_steps,
                    epoch=step / 40,
                    loss=round(0.9 * math.exp(-step / 60) + 0.45, 4),
                    values={"eval_dim_128_cosine_ndcg@10": 0.55 + step / 1000},
                )
            )
    add(StageFinished(stage="train", time=t + 1, seconds=190.0))
    t += 2
    add(StageStarted(stage="evaluate", time=t))
    metrics = {"embedder": {"base": {}, "tuned": {}, "dims": list(DIMS)}}
    for dim in DIMS:
        for model, lift in (("base", 0.0), ("tuned", 0.11)):
            flat = base_metrics(dim, lift)
            metrics["embedder"][model].update(flat)
            add(EvalRow(stage="evaluate", time=t, model=model, dim=dim, metrics=flat))
    add(StageFinished(stage="evaluate", time=t + 3, seconds=3.0))
    t += 4
    add(StageStarted(stage="rerank", time=t, detail="cross-encoder/ms-marco-MiniLM-L6-v2"))
    for step in range(5, 51, 5):
        t += 1
        add(
            TrainLog(
                stage="rerank",
                time=t,
                model="reranker",
                split="train",
                step=step,
                max_steps=50,
                epoch=step / 50,
                loss=round(0.69 * math.exp(-step / 30) + 0.2, 4),
                learning_rate=2e-5,
            )
        )
    rerank = {
        "retriever": {"ndcg@10": 0.631, "mrr@10": 0.592, "map": 0.597},
        "base_reranker": {"ndcg@10": 0.648, "mrr@10": 0.611, "map": 0.615},
        "tuned_reranker": {"ndcg@10": 0.689, "mrr@10": 0.655, "map": 0.66},
    }
    for label, values in rerank.items():
        add(EvalRow(stage="rerank", time=t, model=label, dim=0, metrics=values))
    metrics["reranker"] = rerank
    add(StageFinished(stage="rerank", time=t + 1, seconds=12.0))
    add(RunFinished(time=t + 2, workspace="runs/handbook", seconds=t + 2 - T0))
    with (HERE / "run_events.jsonl").open("w", encoding="utf-8") as fh:
        for ev in events:
            fh.write(json.dumps(ev.to_dict()) + "\n")
    (HERE / "metrics.json").write_text(json.dumps(metrics, indent=1))


if __name__ == "__main__":
    main()
