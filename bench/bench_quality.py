"""Quality bench: the default LLM-free pipeline on real IR collections, base vs fine-tuned per dim.

Trains only on pseudo-queries generated from ``corpus.jsonl``; the real queries and
judgments are used for evaluation alone (``eval.benchmark``). Prints nDCG@10 per
Matryoshka dim for the base model, the base model with the corpus rotation (no training),
and the fine-tuned model, and exits non-zero unless training earns at least +3% at the
full dim over the base and at the smallest dim over base + rotation (issue 11's bar).

    python bench/bench_quality.py [--collections medline,cisi] [--set embedder.epochs=2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "bench-data"
# Relative nDCG@10 gain training must add (full dim over base; smallest over base + rotation).
BAR = 0.03


def run_collection(name: str, overrides: list[str], root: Path) -> dict:
    from engine.api import run_pipeline
    from engine.config import RunConfig, apply_override

    folder = DATA / name
    data = {
        "run": {"name": name, "workspace": str(root / name)},
        "sources": {
            "dataset": str(folder / "corpus.jsonl"),
            "text_column": "text",
            "title_column": "title",
            "id_column": "_id",
        },
        "embedder": {"base_model": "sentence-transformers/all-MiniLM-L6-v2"},
        "reranker": {"enabled": False},
        "eval": {"benchmark": str(folder)},
    }
    for item in overrides:
        apply_override(data, item)
    cfg = RunConfig.from_dict(data)
    t0 = time.monotonic()
    ws = run_pipeline(cfg, stages=["ingest", "generate", "prepare", "train", "evaluate"])
    seconds = time.monotonic() - t0
    emb = json.loads(ws.metrics_path.read_text())["embedder"]
    bench = emb["benchmark"]
    rotated = bench.get("base_rotated", bench["base"])
    rows = {
        d: tuple(s[f"dim_{d}_cosine_ndcg@10"] for s in (bench["base"], rotated, bench["tuned"]))
        for d in emb["dims"]
    }
    return {"dims": emb["dims"], "ndcg@10": rows, "seconds": seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collections", default="medline,cisi")
    parser.add_argument("--set", action="append", default=[], help="config override KEY=VALUE")
    parser.add_argument("--workdir", default="", help="keep workspaces here (default: a temp dir)")
    parser.add_argument(
        "--recipe",
        choices=("default", "hybrid-teacher"),
        default="default",
        help="hybrid-teacher = embedder.loss hybrid_distill (bench/bench_teacher.py compares both)",
    )
    args = parser.parse_args()
    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="ragtune-quality-"))
    ok = True
    for name in args.collections.split(","):
        recipe = ["embedder.loss=hybrid_distill"] if args.recipe == "hybrid-teacher" else []
        res = run_collection(name, [*recipe, *args.set], root)
        print(f"\n{name}: {res['seconds']:.0f}s end to end")
        print("| dim | base | base + rotation | fine-tuned | vs base | vs base + rotation |")
        print("|---|---|---|---|---|---|")
        for d, (b, r, t) in res["ndcg@10"].items():
            print(
                f"| {d} | {b:.4f} | {r:.4f} | {t:.4f} | {(t - b) / b * 100:+.1f}% "
                f"| {(t - r) / r * 100:+.1f}% |"
            )
        dims = res["dims"]
        full, small = res["ndcg@10"][dims[0]], res["ndcg@10"][dims[-1]]
        if full[2] < full[0] * (1 + BAR):
            ok = False
            print(f"MISSED {name}: under +{BAR:.0%} over the base at {dims[0]} dims")
        if small[2] < small[1] * (1 + BAR):
            ok = False
            print(f"MISSED {name}: under +{BAR:.0%} over base + rotation at {dims[-1]} dims")
    print("\nquality bar:", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
