"""Metric keys: one builder and one parser, and the parser reads what sentence-transformers emits."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.engine.evaluate.keys import TRAINER_PREFIX, metric_key, parse_metric_key
from ragtune.engine.evaluate.results import split_flat


@pytest.mark.parametrize("dim", [8, 64, 128, 1024])
@pytest.mark.parametrize("metric", ["ndcg@10", "mrr@10", "map@100", "accuracy@1", "recall@100"])
@pytest.mark.parametrize("prefix", ["", "eval_", "bench_"])
def test_built_keys_parse_back(dim: int, metric: str, prefix: str) -> None:
    assert parse_metric_key(metric_key(dim, metric, prefix), prefix) == (dim, metric)


def test_keys_have_the_documented_shape_and_other_keys_are_not_metrics() -> None:
    assert metric_key(128, "ndcg@10") == "dim_128_cosine_ndcg@10"
    assert metric_key(64, "map@100", TRAINER_PREFIX) == "eval_dim_64_cosine_map@100"
    # The trainer's eval_ is accepted without asking, since metrics.json and logs both hold them.
    assert parse_metric_key("eval_dim_32_cosine_ndcg@10") == (32, "ndcg@10")
    for other in ("eval_loss", "sequential_score", "dim_x_cosine_ndcg@10", "dim_64_dot_ndcg@10"):
        assert parse_metric_key(other) is None
    assert parse_metric_key("dim_64_cosine_ndcg@10", prefix="bench_") is None


def test_parser_reads_sentence_transformers_own_ir_evaluator(tiny_bert: Path) -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import (
        InformationRetrievalEvaluator,
        SequentialEvaluator,
    )

    model = SentenceTransformer(str(tiny_bert), device="cpu")
    queries = {"q1": "red apples", "q2": "fast cars"}
    corpus = {"d1": "apples are red fruit", "d2": "cars drive fast", "d3": "the sky is blue"}
    relevant = {"q1": {"d1"}, "q2": {"d2"}}
    dims = [64, 16]
    out = SequentialEvaluator(
        [
            InformationRetrievalEvaluator(
                queries, corpus, relevant, truncate_dim=d, name=f"dim_{d}", batch_size=4
            )
            for d in dims
        ]
    )(model)
    parsed = {k: parse_metric_key(k) for k in out}
    assert parsed.pop("sequential_score") is None
    assert set(parsed.values()) >= {(d, "ndcg@10") for d in dims}
    assert all(p is not None and p[0] in dims for p in parsed.values()), out
    # Every parsed key rebuilds to exactly the key ST wrote.
    assert all(metric_key(*p) == k for k, p in parsed.items() if p)
    by_dim = split_flat(out)
    assert sorted(by_dim) == sorted(dims)
    assert by_dim[16]["ndcg@10"] == out["dim_16_cosine_ndcg@10"]


def test_best_checkpoint_metric_at_an_untrained_size_is_refused_with_a_key_that_exists() -> None:
    from ragtune.engine.core.errors import ConfigError
    from ragtune.engine.embedder.train import check_best_metric

    check_best_metric("eval_dim_32_cosine_ndcg@10", [64, 32])
    check_best_metric("eval_loss", [64, 32])
    with pytest.raises(ConfigError) as err:
        check_best_metric("eval_dim_128_cosine_ndcg@10", [64, 32])
    assert err.value.key == "embedder.metric_for_best_model"
    assert err.value.allowed.endswith("e.g. eval_dim_32_cosine_ndcg@10")
