"""The recommendation on constructed per-query scores: best mean wins, intervals and caveats
say how sure it is, pseudo-queries never crown BM25."""

from __future__ import annotations

import numpy as np
import pytest

from ragtune.engine.evaluate.recommend import (
    BENCHMARK,
    LLM_QUERIES,
    PSEUDO_QUERIES,
    can_judge_fusion,
    judging_suite,
    query_source,
    recommend,
)
from ragtune.engine.evaluate.results import parse_results

RNG = np.random.default_rng(0)
BASE = RNG.uniform(0.2, 0.8, size=60)


def scores(**shifts: float) -> dict[str, np.ndarray]:
    return {name: np.clip(BASE + shift, 0, 1) for name, shift in shifts.items()}


def test_the_best_mean_wins_with_its_intervals() -> None:
    per_query = scores(base=0.0, tuned=0.02, hybrid_base=0.05, hybrid_tuned=0.08, bm25=-0.1)
    rec = recommend(per_query, dim=384, suite="benchmark", source=BENCHMARK, fusion="z")
    assert rec["retriever"] == "hybrid_tuned" and rec["runner_up"] == "hybrid_base"
    assert rec["ndcg"] == pytest.approx(per_query["hybrid_tuned"].mean())
    g = rec["vs_base"]
    assert g["mean"] == pytest.approx((per_query["hybrid_tuned"] - per_query["base"]).mean())
    assert g["low"] <= g["mean"] <= g["high"] and g["low"] > 0  # a constant shift: sure
    assert "gain" in rec["reason"] and "60 labelled benchmark" in rec["reason"]
    assert rec["caveats"] == []
    # the typed reader gives the same back
    typed = parse_results({"embedder": {"recommendation": rec}}).recommendation
    assert typed.label == "hybrid fine-tuned" and typed.hybrid and typed.fine_tuned
    assert typed.vs_base.mean == pytest.approx(g["mean"])
    assert typed.vs_runner_up.against == "hybrid base"


def test_a_lead_within_noise_is_said_to_be_one() -> None:
    noisy = {"base": BASE, "tuned": np.clip(BASE + RNG.normal(0.002, 0.1, size=60), 0, 1)}
    rec = recommend(noisy, dim=64, suite="benchmark", source=BENCHMARK, fusion="z")
    other = "base" if rec["retriever"] == "tuned" else "tuned"
    assert rec["runner_up"] == other
    assert any("within the queries' noise" in c for c in rec["caveats"])


def test_bm25_is_never_recommended_on_pseudo_queries() -> None:
    per_query = scores(base=0.0, tuned=0.01, hybrid_tuned=0.1, bm25=0.2)
    rec = recommend(per_query, dim=64, suite="held-out", source=PSEUDO_QUERIES, fusion="z")
    assert rec["retriever"] == "hybrid_tuned"
    assert any("flatter" in c for c in rec["caveats"])
    assert any("no fusion weight is tuned on them" in c for c in rec["caveats"])
    # on real questions the same numbers crown BM25
    real = recommend(per_query, dim=64, suite="benchmark", source=BENCHMARK, fusion="z")
    assert real["retriever"] == "bm25"


def test_an_exact_tie_goes_to_the_simpler_retriever() -> None:
    per_query = scores(base=0.0, tuned=0.03, hybrid_tuned=0.03)
    rec = recommend(per_query, dim=64, suite="benchmark", source=BENCHMARK, fusion="z")
    assert rec["retriever"] == "tuned"


def test_base_rotated_is_not_a_candidate() -> None:
    per_query = scores(base=0.0, base_rotated=0.2, tuned=0.01)
    rec = recommend(per_query, dim=64, suite="benchmark", source=BENCHMARK, fusion="z")
    assert rec["retriever"] == "tuned"


def test_which_queries_can_judge() -> None:
    assert query_source("benchmark", "llm-free") == BENCHMARK
    assert query_source("held-out", "litellm") == LLM_QUERIES
    assert query_source("held-out", "llm-free") == PSEUDO_QUERIES
    assert can_judge_fusion(BENCHMARK) and can_judge_fusion(LLM_QUERIES)
    assert not can_judge_fusion(PSEUDO_QUERIES)
    assert judging_suite(["held-out", "benchmark"]) == "benchmark"
    assert judging_suite(["held-out"]) == "held-out"
