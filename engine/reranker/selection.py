"""Whether a reranker ships: three disjoint query splits and a paired bootstrap on the last.

Choosing the checkpoint and the fusion weight on the same queries that then report the
gain is how a reranker that does not help gets switched on (medline: w=0.1 won by 0.0008
on pseudo-queries and cost 0.0004 on real ones). So the held-out queries are split three
ways: one picks the checkpoint (during training), one picks the fusion weight, and the
third, which no choice saw, decides. The reranker ships only when the fused ranking beats
the retriever there with a paired-bootstrap interval that excludes zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ragtune.engine.evaluate.stats import CONFIDENCE, Interval, paired_gain

# Fewer queries than this per split cannot show a reranker's gain over the retriever.
MIN_SPLIT_QUERIES = 10


def three_splits(n: int, seed: int = 0) -> tuple[list[int], list[int], list[int]] | None:
    """Checkpoint / weight / decision indices, disjoint; None when a split would be too small."""
    if n < 3 * MIN_SPLIT_QUERIES:
        return None
    perm = np.random.default_rng(seed).permutation(n)
    a, b = n // 3, 2 * n // 3
    return sorted(perm[:a].tolist()), sorted(perm[a:b].tolist()), sorted(perm[b:].tolist())


def per_query_ndcg(ranked: Sequence[Sequence[str]], relevant: Sequence[set[str]]) -> np.ndarray:
    """ndcg@10 of each judged query (binary relevance, as ``ranking_metrics``)."""
    out = []
    for ids, rel in zip(ranked, relevant, strict=True):
        if not rel:
            continue
        dcg = sum(1.0 / math.log2(i + 2) for i, d in enumerate(ids[:10]) if d in rel)
        idcg = sum(1.0 / math.log2(i + 2) for i in range(min(len(rel), 10)))
        out.append(dcg / idcg)
    return np.asarray(out, dtype=np.float64)


@dataclass(frozen=True)
class ShipDecision:
    """The fusion weight search will use, and why, in words a user can check."""

    weight: float
    gain: Interval | None
    reason: str


def decide(
    chosen_weight: float,
    fused: np.ndarray,
    retriever: np.ndarray,
    *,
    seed: int = 0,
) -> ShipDecision:
    """Ship ``chosen_weight`` (picked on another split) only when, on these unseen queries,
    the fused ranking's gain over the retriever has an interval entirely above zero."""
    if chosen_weight <= 0:
        return ShipDecision(0.0, None, "the weight split found no fusion weight that helps")
    gain = paired_gain(fused, retriever, seed=seed)
    if gain.low > 0:
        return ShipDecision(
            chosen_weight,
            gain,
            f"on {fused.size} queries no choice saw, fused ndcg@10 beats the retriever by "
            f"{gain.mean:+.4f} ({CONFIDENCE:.0%} interval {gain.low:+.4f} to {gain.high:+.4f})",
        )
    return ShipDecision(
        0.0,
        gain,
        f"w={chosen_weight:.1f} won on the weight split, but on {fused.size} queries no "
        f"choice saw the gain is {gain.mean:+.4f} ({CONFIDENCE:.0%} interval {gain.low:+.4f} "
        f"to {gain.high:+.4f}), not reliably above zero: search keeps the retriever's order",
    )
