"""Ablation: today's default recipe against one candidate change, on real IR collections.

Per collection: one ingest / pseudo-query generation / prepare (from ``corpus.jsonl`` only),
then each recipe trains from the same base model on the same pairs, and the base model,
base + corpus rotation and each fine-tuned model are evaluated on the real queries. Prints
nDCG@10 per size and the paired-bootstrap 95% interval of each change (same queries
resampled for both systems): each recipe against base + rotation, and the candidate against
the default. A candidate becomes the default only if it wins at the full size on every
collection without losing at the smallest, or (for a change made for memory or speed) if it
loses nowhere: both verdicts are printed.

    python bench/bench_ablation.py [--candidate embedder.loss=hybrid_distill] \
        [--collections medline,cisi] [--set embedder.max_seq_length=128]

``--set`` applies to both recipes; ``--candidate`` (repeatable) only to the second.
"""

from __future__ import annotations

import argparse
import json
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
RECIPES = ("default", "candidate")


def config(name: str, root: Path, overrides: list[str]):
    from ragtune.engine.config import RunConfig, apply_override

    folder = DATA / name
    data = {
        "run": {"name": name, "workspace": str(root / name)},
        "sources": beir_sources(folder),
        "embedder": {
            "base_model": "sentence-transformers/all-MiniLM-L6-v2",
            # One epoch: the best checkpoint is the last one, so skip the held-out pass.
            "eval_strategy": "no",
        },
        "reranker": {"enabled": False},
        "eval": {"benchmark": str(folder)},
    }
    for item in overrides:
        apply_override(data, item)
    return RunConfig.from_dict(data)


def run_collection(name: str, root: Path, overrides: list[str], candidate: list[str]) -> dict:
    from ragtune.engine.api import run_pipeline
    from ragtune.engine.core.events import Emitter
    from ragtune.engine.core.models import load_embedder, pick_device
    from ragtune.engine.data.prepare import load_prepared
    from ragtune.engine.embedder.rotation import rotate_for_corpus
    from ragtune.engine.embedder.train import column_prompts, model_dims, train_embedder
    from ragtune.engine.evaluate.ir import evaluate_retrieval
    from ragtune.engine.evaluate.keys import metric_key
    from ragtune.engine.evaluate.stage import load_benchmark

    cfg = config(name, root, overrides)
    ws = run_pipeline(cfg, stages=["ingest", "generate", "prepare"])
    prepared = load_prepared(ws)
    device = pick_device(cfg.embedder.device)
    base = load_embedder(cfg.embedder.base_model, device=device)
    dims = model_dims(base, cfg.embedder)
    prompts = column_prompts(base, cfg.embedder)
    data = load_benchmark(cfg, ws, Emitter())

    def scores(model) -> dict:
        per_query: dict = {}
        evaluate_retrieval(
            model,
            data,
            dims,
            batch_size=cfg.eval.encode_batch(device),
            query_prompt=prompts.get("anchor"),
            document_prompt=prompts.get("positive"),
            per_query=per_query,
        )
        return {d: per_query[metric_key(d, "ndcg@10")] for d in dims}

    systems = {"base": scores(base)}
    if cfg.embedder.corpus_rotation:
        rotated = rotate_for_corpus(
            load_embedder(cfg.embedder.base_model, device=device),
            list(prepared.corpus.values()),
            batch_size=cfg.eval.encode_batch(device),
            document_prompt=prompts.get("positive"),
            seed=cfg.embedder.seed,
        )
        systems["base_rotated"] = scores(rotated)
    seconds = {}
    summaries = {}
    for recipe, extra in zip(RECIPES, ([], candidate), strict=True):
        run_cfg = config(name, root, overrides + extra)
        t0 = time.monotonic()
        summaries[recipe] = train_embedder(run_cfg, ws, Emitter(), prepared=prepared)
        seconds[recipe] = time.monotonic() - t0
        systems[recipe] = scores(load_embedder(str(ws.embedder_dir), device=device))
    return {
        "dims": dims,
        "systems": systems,
        "seconds": seconds,
        "train_pairs": len(prepared.train),
        "hybrid_teacher": summaries["candidate"].get("hybrid_teacher"),
    }


def report(name: str, res: dict) -> tuple[str, bool, bool]:
    from ragtune.engine.evaluate.stats import paired_gain

    systems, dims = res["systems"], res["dims"]
    baseline = "base_rotated" if "base_rotated" in systems else "base"
    shown = "base + rotation" if baseline == "base_rotated" else "base"
    lines = [
        f"\n{name}: {res['train_pairs']} training pairs; training "
        + ", ".join(f"{k} {v:.0f}s" for k, v in res["seconds"].items()),
        *(
            [f"hybrid teacher: {json.dumps(res['hybrid_teacher'])}"]
            if res["hybrid_teacher"]
            else []
        ),
        f"| dim | base | {shown} | default | candidate "
        f"| default − {shown} [95%] | candidate − {shown} [95%] | candidate − default [95%] |",
        "|---|---|---|---|---|---|---|---|",
    ]
    verdict = {}
    for d in dims:
        mean = {k: float(v[d].mean()) for k, v in systems.items()}
        gains = [
            paired_gain(systems["default"][d], systems[baseline][d]),
            paired_gain(systems["candidate"][d], systems[baseline][d]),
            paired_gain(systems["candidate"][d], systems["default"][d]),
        ]
        verdict[d] = gains[2]
        lines.append(
            f"| {d} | {mean['base']:.4f} | {mean[baseline]:.4f} | {mean['default']:.4f} "
            f"| {mean['candidate']:.4f} | "
            + " | ".join(f"{g.mean:+.4f} [{g.low:+.4f}, {g.high:+.4f}]" for g in gains)
            + " |"
        )
    full, small = verdict[dims[0]], verdict[dims[-1]]
    loses = any(v.high < 0 for v in verdict.values())
    return "\n".join(lines), full.low > 0, small.high >= 0, not loses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--candidate",
        action="append",
        default=[],
        help="KEY=VALUE the candidate recipe changes (default: embedder.loss=hybrid_distill)",
    )
    parser.add_argument("--collections", default="medline,cisi")
    parser.add_argument("--set", action="append", default=[], help="config override KEY=VALUE")
    parser.add_argument("--workdir", default="", help="keep workspaces here (default: a temp dir)")
    args = parser.parse_args()
    candidate = args.candidate or ["embedder.loss=hybrid_distill"]
    root = (
        Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="ragtune-ablation-"))
    )
    print(f"candidate: {', '.join(candidate)}; both: {', '.join(args.set) or 'defaults'}")
    wins = harmless = True
    for name in args.collections.split(","):
        text, won_full, kept_small, no_loss = report(
            name, run_collection(name, root, args.set, candidate)
        )
        print(text, flush=True)
        print(
            f"{name}: the candidate {'wins' if won_full else 'does not win'} at the full size "
            f"(interval above 0), {'does not lose' if kept_small else 'loses'} at the smallest, "
            f"and {'loses at no size' if no_loss else 'loses at some size'} (interval below 0)"
        )
        wins = wins and won_full and kept_small
        harmless = harmless and no_loss
    print(
        "\nthe candidate "
        + ("wins on every collection" if wins else "does not win on every collection")
        + ("; it loses nowhere" if harmless else "; it loses somewhere")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
