"""Training overhead: ragtune's embedder stage vs a plain sentence-transformers script, same settings.

Both train all-MiniLM-L6-v2 with MultipleNegativesRankingLoss inside MatryoshkaLoss,
NO_DUPLICATES batches, the same pairs, seed, batch, learning rate and schedule, no
evaluation, on the same device, in one process, alternating to share the machine's
noise. Prints both times and the ratio (target <= 1.05).

    python bench/bench_train.py [--pairs 512] [--rounds 2]
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

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "bench-data" / "medline" / "corpus.jsonl"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def make_pairs(n: int) -> tuple[list[str], list[str]]:
    from engine.generate.llm_free import split_sentences

    anchors, positives = [], []
    for line in DATA.read_text().splitlines():
        sents = split_sentences(json.loads(line)["text"])
        if len(sents) >= 3:
            anchors.append(sents[1])
            positives.append(" ".join(sents[:1] + sents[2:]))
        if len(anchors) >= n:
            break
    return anchors, positives


def plain(anchors: list[str], positives: list[str], out: Path, seq: int) -> float:
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer import losses

    from engine.core.models import resolve_model

    t0 = time.perf_counter()
    model = SentenceTransformer(resolve_model(MODEL), device="cpu")
    model.max_seq_length = seq
    loss = losses.MatryoshkaLoss(
        model, losses.MultipleNegativesRankingLoss(model), [384, 256, 128, 64]
    )
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out),
        num_train_epochs=1,
        per_device_train_batch_size=32,
        learning_rate=2e-5,
        warmup_ratio=0.1,
        lr_scheduler_type="cosine",
        weight_decay=0.01,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="no",
        report_to="none",
        seed=42,
        use_cpu=True,
        disable_tqdm=True,
    )
    ds = Dataset.from_dict({"anchor": anchors, "positive": positives})
    SentenceTransformerTrainer(model=model, args=args, train_dataset=ds, loss=loss).train()
    model.save(str(out / "model"))
    return time.perf_counter() - t0


def ragtune(anchors: list[str], positives: list[str], root: Path, seq: int) -> float:
    from datasets import Dataset

    from engine.config import RunConfig
    from engine.core.events import Emitter
    from engine.core.workspace import Workspace
    from engine.data.prepare import Prepared
    from engine.embedder.train import train_embedder

    cfg = RunConfig.from_dict(
        {
            "embedder": {
                "base_model": MODEL,
                "loss": "mnrl",
                "corpus_rotation": False,
                "max_seq_length": seq,
                "eval_strategy": "no",
                "device": "cpu",
            },
            "run": {"workspace": str(root)},
        }
    )
    prepared = Prepared(
        train=Dataset.from_dict({"anchor": anchors, "positive": positives}),
        eval_queries={},
        eval_relevant={},
        corpus={},
    )
    t0 = time.perf_counter()
    train_embedder(cfg, Workspace.create(root), Emitter(), prepared=prepared)
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seq", type=int, default=128)
    args = parser.parse_args()
    anchors, positives = make_pairs(args.pairs)
    base = Path(tempfile.mkdtemp(prefix="ragtune-train-bench-"))
    times: dict[str, list[float]] = {"plain": [], "ragtune": []}
    plain(anchors[:64], positives[:64], base / "warm-plain", args.seq)
    ragtune(anchors[:64], positives[:64], base / "warm-ragtune", args.seq)
    for r in range(args.rounds):
        times["plain"].append(plain(anchors, positives, base / f"plain{r}", args.seq))
        times["ragtune"].append(ragtune(anchors, positives, base / f"ragtune{r}", args.seq))
        print(f"round {r}: plain {times['plain'][-1]:.1f}s, ragtune {times['ragtune'][-1]:.1f}s")
    p, g = statistics.median(times["plain"]), statistics.median(times["ragtune"])
    print(
        f"{len(anchors)} pairs, 1 epoch: plain {p:.1f}s, ragtune {g:.1f}s, ratio {g / p:.3f} (target <= 1.05)"
    )
    return 0 if g / p <= 1.05 else 1


if __name__ == "__main__":
    raise SystemExit(main())
