"""Does the trained reranker help on real queries? Retriever alone vs reranked ndcg@10 on BEIR sets.

Training data comes from the corpus alone (LLM-free pseudo-queries); the real queries and
judgments are only read for the final evaluation.

    python bench/bench_reranker.py --embedder PATH                  # reranker stage only
    python bench/bench_reranker.py --mode pipeline                  # the whole default pipeline
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent

from ragtune.engine.config import RunConfig  # noqa: E402
from ragtune.engine.core.events import Emitter, Message  # noqa: E402
from ragtune.engine.core.models import load_cross_encoder, load_embedder, resolve_model  # noqa: E402
from ragtune.engine.core.workspace import Workspace  # noqa: E402
from ragtune.engine.evaluate.beir import document_text, load_beir  # noqa: E402

DATA = REPO.parent / "shared" / "bench-data"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def printer(event: object) -> None:
    if isinstance(event, Message):
        print(f"  [{event.level}] {event.text}", flush=True)


def corpus_chunks(folder: Path) -> list:
    from ragtune.engine.core.records import Chunk, chunk_id_for

    chunks = []
    with (folder / "corpus.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            text = document_text(row.get("title", ""), row["text"]).strip()
            if text:
                source = f"{folder.name}/{row['_id']}"
                chunks.append(
                    Chunk(
                        chunk_id=chunk_id_for(source, text),
                        doc_id=str(row["_id"]),
                        text=text,
                        source=source,
                        title=row.get("title", ""),
                    )
                )
    return chunks


def reranker_config(args: argparse.Namespace, ws: Path, embedder: str) -> RunConfig:
    return RunConfig.from_dict(
        {
            "run": {"name": ws.name, "workspace": str(ws), "seed": args.seed},
            "sources": {
                "dataset": str(DATA / args.collection / "corpus.jsonl"),
                "text_column": "text",
                "id_column": "_id",
                "title_column": "title",
            },
            "embedder": {"base_model": embedder},
            "data": {"eval_fraction": 0.1, "max_eval_queries": args.eval_queries},
            "reranker": {
                "base_model": args.reranker_base,
                "epochs": args.epochs,
                "max_length": args.max_length,
                "batch_size": args.batch_size,
                "top_k": args.top_k,
                "learning_rate": args.lr,
                "num_negatives": args.num_negatives,
                "fusion_weight": args.fusion_weight,
                # The stage declines a fresh head on this little data; the bench measures why.
                "min_queries_fresh_head": 0,
                "device": "cpu",
            },
        }
    )


def stage_only(args: argparse.Namespace, ws_dir: Path) -> tuple[Workspace, dict]:
    """Pseudo-queries with the LLM-free generator, then the reranker stage on ``--embedder``."""
    from ragtune.engine.core.records import write_chunks
    from ragtune.engine.data.prepare import run_prepare
    from ragtune.engine.generate.llm_free import LlmFreeGenerator
    from ragtune.engine.generate.rows import read_rows
    from ragtune.engine.reranker.train import run_reranker_stage

    ws = Workspace.create(ws_dir)
    cfg = reranker_config(args, ws_dir, args.embedder)
    cfg.save(ws.config_path)
    chunks = corpus_chunks(DATA / args.collection)
    write_chunks(ws.chunks_path, chunks)
    events = Emitter(printer)
    summary = LlmFreeGenerator(cfg.generation.llm_free).generate(chunks, ws, events)
    rows = read_rows(ws.generated_path, summary.keys)
    if args.max_queries and len(rows) > args.max_queries:
        rows = random.Random(args.seed).sample(rows, args.max_queries)
    print(f"  {len(chunks)} chunks, {len(rows)} pseudo-queries", flush=True)
    run_prepare(cfg.data, ws, rows, chunks, events)
    return ws, run_reranker_stage(cfg, ws, events)


def full_pipeline(args: argparse.Namespace, ws_dir: Path) -> tuple[Workspace, dict]:
    from ragtune.engine.api import run_pipeline
    from ragtune.engine.core.metrics_file import MetricsFile

    cfg = reranker_config(args, ws_dir, MINILM)
    ws = run_pipeline(cfg, events=Emitter(printer))
    return ws, MetricsFile(ws.metrics_path).section("reranker") or {}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--collections", nargs="+", default=["medline", "cisi"])
    p.add_argument("--mode", choices=("stage", "pipeline"), default="stage")
    p.add_argument("--embedder", default=MINILM, help="retriever folder (stage mode)")
    p.add_argument("--reranker-base", default=resolve_model(MINILM))
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--top-k", type=int, default=30)
    p.add_argument("--num-negatives", type=int, default=4)
    p.add_argument("--fusion-weight", type=float, default=-1.0)
    p.add_argument("--max-queries", type=int, default=1500, help="cap on pseudo-queries (stage)")
    p.add_argument("--eval-queries", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "reranker.json")
    p.add_argument("--work", type=Path, default=Path("/tmp/ragtune-bench-reranker"))
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from ragtune.engine.reranker.evaluate import evaluate_reranking_on_beir

    results: dict[str, dict] = {}
    for name in args.collections:
        args.collection = name
        started = time.monotonic()
        print(f"== {name} ({args.mode})", flush=True)
        ws, stage = (stage_only if args.mode == "stage" else full_pipeline)(
            args, args.work / f"{name}-{args.mode}"
        )
        weight = float(stage["fusion_weight"])
        data = load_beir(DATA / name)
        emb_name = stage.get("embedder") or args.embedder
        embedder = load_embedder(emb_name, device="cpu")
        reranker = load_cross_encoder(str(ws.reranker_dir), device="cpu")
        real = evaluate_reranking_on_beir(embedder, reranker, data, args.top_k, weight=weight)
        retr, fused = real["retriever"]["ndcg@10"], real["fused"]["ndcg@10"]
        results[name] = {
            "mode": args.mode,
            "embedder": emb_name,
            "reranker_base": args.reranker_base,
            "seconds": round(time.monotonic() - started, 1),
            "fusion_weight": weight,
            "real_queries": real,
            "heldout_pseudo_queries": stage.get("evaluation"),
            "negatives": stage.get("negatives"),
            "training": stage.get("training"),
        }
        from ragtune.engine.evaluate.stats import Interval

        iv = {k: Interval(**v) for k, v in real["intervals"].items()}
        print(
            f"  real queries ndcg@10 (95% bootstrap intervals over {real['queries']} queries)\n"
            f"  | system | ndcg@10 | vs retriever |\n  |---|---|---|\n"
            f"  | retriever | {iv['retriever']} | |\n"
            f"  | reranker alone | {iv['reranker']} | {iv['reranker_vs_retriever']} |\n"
            f"  | fused, w={weight} (shipped) | {iv['fused']} | {iv['fused_vs_retriever']} |\n"
            f"  shipped: {'yes' if weight > 0 else 'no (search keeps the retriever order)'} | "
            f"curve {real['curve']} | {retr:.4f} -> {fused:.4f}",
            flush=True,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
