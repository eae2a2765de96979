"""Quality bench: the default LLM-free pipeline on real IR collections, every retriever per dim.

Trains only on pseudo-queries generated from ``corpus.jsonl``; the real queries and
judgments are used for evaluation alone (``eval.benchmark``). Prints nDCG@10 per
Matryoshka dim for BM25, the base model, the base model with the corpus rotation (no
training), the fine-tuned model, and BM25 fused with the base and with the fine-tuned model
(changes against the dense base with 95% paired-bootstrap intervals), then the retriever the
run recommends. Exits non-zero unless, on every collection, the recommended retriever is at
least as good as the better of the dense base and the hybrid base, and the fine-tuned dense
model gains at least +3% at the full dim over the dense base (issue 17's bar). Whether
training beats base + rotation at the smallest dim (issue 11's bar) is printed too.

    python bench/bench_quality.py [--collections medline,cisi] [--set embedder.epochs=2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

from benchdata import beir_sources  # bench/, beside this script

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "bench-data"
# Relative nDCG@10 gain training must add (full dim over base; smallest over base + rotation).
BAR = 0.03


def run_collection(name: str, overrides: list[str], root: Path) -> dict:
    from ragtune.engine.api import run_pipeline
    from ragtune.engine.config import RunConfig, apply_override

    folder = DATA / name
    data = {
        "run": {"name": name, "workspace": str(root / name)},
        "sources": beir_sources(folder),
        "embedder": {"base_model": "sentence-transformers/all-MiniLM-L6-v2"},
        "reranker": {"enabled": False},
        "eval": {"benchmark": str(folder)},
    }
    for item in overrides:
        apply_override(data, item)
    cfg = RunConfig.from_dict(data)
    t0 = time.monotonic()
    ws = run_pipeline(cfg, stages=["ingest", "index", "generate", "prepare", "train", "evaluate"])
    seconds = time.monotonic() - t0
    from ragtune.engine.core.metrics_file import MetricsFile
    from ragtune.engine.evaluate.keys import metric_key
    from ragtune.engine.evaluate.results import read_results

    emb = MetricsFile(ws.metrics_path).read()["embedder"]
    bench = emb["benchmark"]
    rotated = bench.get("base_rotated", bench["base"])
    rows = {
        d: tuple(s[metric_key(d, "ndcg@10")] for s in (bench["base"], rotated, bench["tuned"]))
        for d in emb["dims"]
    }
    return {
        "dims": emb["dims"],
        "ndcg@10": rows,
        "seconds": seconds,
        "results": read_results(ws.metrics_path),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collections", default="medline,cisi")
    parser.add_argument("--set", action="append", default=[], help="config override KEY=VALUE")
    parser.add_argument("--workdir", default="", help="keep workspaces here (default: a temp dir)")
    parser.add_argument(
        "--recipe",
        choices=("default", "hybrid-teacher"),
        default="default",
        help="hybrid-teacher = embedder.loss hybrid_distill (bench/bench_ablation.py compares both)",
    )
    args = parser.parse_args()
    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="ragtune-quality-"))
    from ragtune.engine.evaluate.tables import recommendation_markdown, retrievers_markdown

    ok = True
    for name in args.collections.split(","):
        recipe = ["embedder.loss=hybrid_distill"] if args.recipe == "hybrid-teacher" else []
        res = run_collection(name, [*recipe, *args.set], root)
        print(f"\n## {name}: {res['seconds']:.0f}s end to end\n")
        print("| dim | base | base + rotation | fine-tuned | vs base | vs base + rotation |")
        print("|---|---|---|---|---|---|")
        for d, (b, r, t) in res["ndcg@10"].items():
            print(
                f"| {d} | {b:.4f} | {r:.4f} | {t:.4f} | {(t - b) / b * 100:+.1f}% "
                f"| {(t - r) / r * 100:+.1f}% |"
            )
        results = res["results"]
        suite = results.suite("benchmark")
        rec = results.recommendation
        print()
        print(retrievers_markdown(suite))
        print(recommendation_markdown(rec) if rec else "no recommendation")
        dims = res["dims"]
        full, small = res["ndcg@10"][dims[0]], res["ndcg@10"][dims[-1]]
        at_full = {r.retriever: r.values[dims[0]] for r in suite.retriever_rows()}
        bar = max(at_full["base"], at_full["hybrid_base"])
        if rec is None or at_full[rec.retriever] < bar:
            ok = False
            print(f"MISSED {name}: the recommended retriever is below max(dense base, hybrid base)")
        if full[2] < full[0] * (1 + BAR):
            ok = False
            print(
                f"MISSED {name}: fine-tuned dense under +{BAR:.0%} over the base at {dims[0]} dims"
            )
        if small[2] < small[1] * (1 + BAR):
            print(f"(info) {name}: under +{BAR:.0%} over base + rotation at {dims[-1]} dims")
    print("\nquality bar:", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
