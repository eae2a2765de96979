"""Times ragtune's one-pass Matryoshka evaluation against per-size sentence-transformers evaluators.

Usage: python bench/bench_eval.py [--data PATH] [--model NAME] [--batch-size N]

Both sides run in this process after the same warm-up, on the same loaded model, so the ratio
reflects the work done rather than load time; the metric dicts must agree to 1e-4.
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

from engine.core.models import load_embedder  # noqa: E402
from engine.evaluate.beir import load_beir  # noqa: E402
from engine.evaluate.ir import evaluate_retrieval  # noqa: E402

DIMS = [384, 256, 128, 64]
K_VALUES = [1, 3, 5, 10, 100]
TARGET_RATIO = 0.4
TOLERANCE = 1e-4


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "bench-data" / "cisi")
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)

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
        print(f"  dim {dim:>3}: nDCG@10 {ours[f'dim_{dim}_cosine_ndcg@10']:.4f}")
    ok = ratio <= TARGET_RATIO and diff < TOLERANCE and not missing
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
