"""Quality bench: the default LLM-free pipeline on real IR collections, base vs fine-tuned per dim.

Trains only on pseudo-queries generated from ``corpus.jsonl``; the real queries and
judgments are used for evaluation alone (``eval.benchmark``). Prints nDCG@10 per
Matryoshka dim and the change, and exits non-zero if the default recipe loses
nDCG@10 at the full dim or fails to raise it at the smallest dim.

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
    rows = {
        d: (bench["base"][f"dim_{d}_cosine_ndcg@10"], bench["tuned"][f"dim_{d}_cosine_ndcg@10"])
        for d in emb["dims"]
    }
    return {"dims": emb["dims"], "ndcg@10": rows, "seconds": seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collections", default="medline,cisi")
    parser.add_argument("--set", action="append", default=[], help="config override KEY=VALUE")
    parser.add_argument("--workdir", default="", help="keep workspaces here (default: a temp dir)")
    args = parser.parse_args()
    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="ragtune-quality-"))
    ok = True
    for name in args.collections.split(","):
        res = run_collection(name, args.set, root)
        print(f"\n{name}: {res['seconds']:.0f}s end to end")
        print("| dim | base ndcg@10 | fine-tuned | change |")
        print("|---|---|---|---|")
        for d, (b, t) in res["ndcg@10"].items():
            print(f"| {d} | {b:.4f} | {t:.4f} | {t - b:+.4f} ({(t - b) / b * 100:+.1f}%) |")
        dims = res["dims"]
        full, small = res["ndcg@10"][dims[0]], res["ndcg@10"][dims[-1]]
        if full[1] < full[0] - 1e-4:
            ok = False
            print(f"FAIL {name}: lost ndcg@10 at {dims[0]} dims")
        if small[1] <= small[0]:
            ok = False
            print(f"FAIL {name}: no gain at {dims[-1]} dims")
    print("\nquality bar:", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
