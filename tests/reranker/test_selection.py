"""The shipping rule on constructed scores: a reranker ships only when it wins where no choice looked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ragtune.engine.config.reranker import RerankerConfig
from ragtune.engine.evaluate.stats import paired_gain
from ragtune.engine.reranker.evaluate import Candidates, _choose_and_decide
from ragtune.engine.reranker.selection import decide, three_splits
from ragtune.engine.reranker.train import untrainable_reason


def _candidates(n: int) -> Candidates:
    """Each query: the relevant doc is ranked 3rd by the retriever out of 5."""
    ids = [[f"q{i}d{j}" for j in range(5)] for i in range(n)]
    scores = [np.array([0.9, 0.8, 0.7, 0.6, 0.5], np.float32) for _ in range(n)]
    relevant = [{f"q{i}d2"} for i in range(n)]
    return Candidates([f"q{i}" for i in range(n)], ids, scores, relevant)


def _reranker(n: int, good: set[int]) -> list[np.ndarray]:
    """Puts the relevant doc first on the ``good`` queries, last on the others."""
    out = []
    for i in range(n):
        s = np.array([0.5, 0.4, 0.1, 0.3, 0.2], np.float32)
        if i in good:
            s[2] = 1.0
        out.append(s)
    return out


def test_splits_are_disjoint_and_cover_every_query() -> None:
    a, b, c = three_splits(60)
    assert not (set(a) & set(b) or set(b) & set(c) or set(a) & set(c))
    assert sorted(a + b + c) == list(range(60))
    assert three_splits(29) is None


def test_a_reranker_better_on_the_weight_split_only_is_not_shipped() -> None:
    n = 60
    cands = _candidates(n)
    _, weight_idx, _ = three_splits(n)
    weight, reason, rows, unseen = _choose_and_decide(
        cands, _reranker(n, good=set(weight_idx)), None
    )
    assert weight == 0.0
    assert "not reliably above zero" in reason
    assert unseen == 20 and rows["retriever"].mean > rows["fine-tuned reranker"].mean


def test_a_reranker_better_everywhere_is_shipped() -> None:
    n = 60
    weight, reason, rows, _ = _choose_and_decide(_candidates(n), _reranker(n, set(range(n))), None)
    assert weight > 0
    assert "beats the retriever" in reason
    fused = next(v for k, v in rows.items() if k.startswith("fused"))
    assert fused.low > rows["retriever"].high


def test_too_few_queries_keep_the_retriever_and_a_fixed_weight_is_respected() -> None:
    cands = _candidates(12)
    scores = _reranker(12, set(range(12)))
    assert _choose_and_decide(cands, scores, None)[0] == 0.0
    assert _choose_and_decide(cands, scores, 0.3)[0] == 0.3


def test_paired_gain_interval_excludes_zero_only_for_a_consistent_gain() -> None:
    base = np.linspace(0.2, 0.8, 30)
    assert paired_gain(base + 0.05, base).low > 0
    noisy = base + np.where(np.arange(30) % 2 == 0, 0.05, -0.05)
    assert paired_gain(noisy, base).low < 0 < paired_gain(noisy, base).high
    assert decide(0.5, noisy, base).weight == 0.0


def test_a_fresh_head_with_few_queries_is_not_trained(tiny_bert) -> None:
    rc = RerankerConfig(base_model=str(tiny_bert))
    assert "no trained reranking head" in untrainable_reason(rc, 300)
    assert (
        untrainable_reason(RerankerConfig(base_model=str(tiny_bert), min_queries_fresh_head=0), 300)
        == ""
    )


def test_beir_report_has_intervals_and_weight_zero_is_the_retriever(
    tiny_bert: Path, tiny_cross_encoder: Path
) -> None:
    """What bench_reranker prints: each system with its bootstrap interval, and the paired
    gain over the retriever, which is exactly zero for the fused ranking at w = 0."""
    from sentence_transformers import CrossEncoder, SentenceTransformer

    from ragtune.engine.evaluate.beir import IRData
    from ragtune.engine.reranker.evaluate import evaluate_reranking_on_beir
    from tests.reranker_workspace import fact_chunks

    items = fact_chunks(40)
    corpus = {c.chunk_id: c.text for c, _ in items}
    queries = {f"q{i}": qs[0] for i, (_, qs) in enumerate(items)}
    relevant = {f"q{i}": {c.chunk_id} for i, (c, _) in enumerate(items)}
    embedder = SentenceTransformer(str(tiny_bert), device="cpu")
    reranker = CrossEncoder(str(tiny_cross_encoder), device="cpu")
    out = evaluate_reranking_on_beir(
        embedder, reranker, IRData(queries, corpus, relevant), top_k=10, weight=0.0
    )
    iv = out["intervals"]
    assert set(iv) == {
        "retriever",
        "reranker",
        "fused",
        "reranker_vs_retriever",
        "fused_vs_retriever",
    }
    for name in ("retriever", "reranker", "fused"):
        assert iv[name]["low"] <= iv[name]["mean"] <= iv[name]["high"]
        assert iv[name]["mean"] == pytest.approx(out[name]["ndcg@10"], abs=1e-4)
    assert iv["fused_vs_retriever"] == {"mean": 0.0, "low": 0.0, "high": 0.0}
