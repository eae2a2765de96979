"""Which retriever to ship: the best on queries that can judge it, with its interval and the caveats.

Candidates are what a user can ship: the dense base or fine-tuned model, BM25, or either
model fused with BM25. The dense base + rotation is not one (export ships the fine-tuned
model; at full size the rotation changes no cosine). The winner is the best mean nDCG@10
at full size; its change against the dense base and against the runner-up carry their 95%
paired-bootstrap intervals, so a reader sees when the lead is within the queries' noise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ragtune.engine.config.generation import GENERATORS
from ragtune.engine.evaluate.results import RETRIEVER_LABELS

# Shippable candidates; on an exact tie the earlier one wins (fewer parts to run).
CANDIDATES = ("tuned", "base", "hybrid_tuned", "hybrid_base", "bm25")
BENCHMARK = "labelled benchmark queries"
LLM_QUERIES = "LLM-written held-out queries"
PSEUDO_QUERIES = "LLM-free pseudo-queries"


def query_source(suite: str, generator: str) -> str:
    """What wrote a suite's queries: a person (the benchmark), an LLM, or the LLM-free generator."""
    if suite == "benchmark":
        return BENCHMARK
    return LLM_QUERIES if GENERATORS[generator].calls_llm else PSEUDO_QUERIES


def can_judge_fusion(source: str) -> bool:
    """Pseudo-queries copy words from their chunk, so they favour BM25: no fusion weight is
    chosen on them."""
    return source != PSEUDO_QUERIES


def judging_suite(suites: list[str]) -> str:
    """The user's labelled questions when there are any, else the held-out queries."""
    return "benchmark" if "benchmark" in suites else suites[0]


def recommend(
    per_query: dict[str, np.ndarray],
    *,
    dim: int,
    suite: str,
    source: str,
    fusion: str,
) -> dict[str, Any]:
    """The recommendation as metrics.json stores it (``results.Recommendation`` reads it).

    ``per_query`` maps each measured retriever to its per-query nDCG@10 at ``dim``, on the
    same queries in the same order.
    """
    from ragtune.engine.evaluate.ir import gain_verdict
    from ragtune.engine.evaluate.stats import paired_gain

    caveats: list[str] = []
    pool = [c for c in CANDIDATES if c in per_query]
    if source == PSEUDO_QUERIES:
        caveats.append(
            "rests on LLM-free pseudo-queries, which copy words from their chunk and so favour "
            "BM25; no fusion weight is tuned on them; label a few dozen real questions "
            "(eval.benchmark) to judge it"
        )
        if len(pool) > 1 and "bm25" in pool:
            pool.remove("bm25")
            caveats.append("BM25 alone is not recommended on pseudo-queries, which flatter it")
    if not pool:
        raise ValueError("no shippable retriever was measured")
    means = {c: float(np.mean(per_query[c])) for c in pool}
    best = max(pool, key=lambda c: (means[c], -pool.index(c)))
    others = [c for c in pool if c != best]
    runner_up = max(others, key=lambda c: means[c]) if others else ""
    n = len(per_query[best])

    def gain(against: str) -> dict[str, float] | None:
        if against not in per_query or against == best:
            return None
        g = paired_gain(per_query[best], per_query[against])
        return {"mean": g.mean, "low": g.low, "high": g.high, "queries": n}

    vs_base, vs_runner = gain("base"), gain(runner_up) if runner_up else None
    label = RETRIEVER_LABELS[best]
    parts = [f"{label} has the best nDCG@10 at {dim} dims ({means[best]:.4f}) on {n} {source}"]
    for name, g in (("dense base", vs_base), (RETRIEVER_LABELS.get(runner_up, ""), vs_runner)):
        if g is not None and not (name == "dense base" and runner_up == "base"):
            parts.append(
                f"{g['mean']:+.4f} [{g['low']:+.4f}, {g['high']:+.4f}] over {name} "
                f"({gain_verdict(g)})"
            )
    if vs_runner is not None and gain_verdict(vs_runner) == "within noise":
        caveats.append(
            f"its lead over {RETRIEVER_LABELS[runner_up]} is within the queries' noise: "
            "either is a sound choice"
        )
    return {
        "retriever": best,
        "dim": dim,
        "suite": suite,
        "queries": n,
        "query_source": source,
        "ndcg": means[best],
        "vs_base": vs_base,
        "runner_up": runner_up,
        "vs_runner_up": vs_runner,
        "fusion": fusion,
        "reason": "; ".join(parts),
        "caveats": caveats,
    }
