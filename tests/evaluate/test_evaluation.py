"""Retrieval evaluation: chunked search, metric definitions, and exact agreement with sentence-transformers."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, TEST_DATA

from ragtune.engine.core.errors import ConfigError
from ragtune.engine.core.events import Emitter, EvalRow, Event, Progress
from ragtune.engine.core.search import topk_search, truncate_normalize
from ragtune.engine.evaluate.beir import IRData, load_beir
from ragtune.engine.evaluate.ir import (
    compare,
    evaluate_retrieval,
    ir_metrics,
    metrics_by_dim,
    primary_metric_key,
    render_markdown,
)

ST_KS = [1, 3, 5, 10, 100]


def _st_reference(model, data: IRData, dims: list[int], **prompts) -> dict[str, float]:
    from sentence_transformers.sentence_transformer.evaluation import (
        InformationRetrievalEvaluator,
        SequentialEvaluator,
    )

    evaluators = [
        InformationRetrievalEvaluator(
            data.queries,
            data.corpus,
            data.relevant,
            accuracy_at_k=ST_KS,
            precision_recall_at_k=ST_KS,
            truncate_dim=d,
            name=f"dim_{d}",
            batch_size=16,
            **prompts,
        )
        for d in dims
    ]
    out = SequentialEvaluator(evaluators)(model)
    out.pop("sequential_score")
    return out


def _assert_same(ours: dict[str, float], reference: dict[str, float]) -> None:
    assert list(ours) == list(reference)
    worst = max(abs(ours[k] - reference[k]) for k in reference)
    assert worst < 1e-4, worst


# --- search -----------------------------------------------------------------------------------


def _unit(rows: int, dim: int, seed: int) -> np.ndarray:
    emb = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)


def test_truncate_normalize_slices_and_renormalises() -> None:
    emb = np.random.default_rng(0).standard_normal((5, 16)).astype(np.float32) * 3
    out = truncate_normalize(emb, 4)
    assert isinstance(out, np.ndarray) and out.shape == (5, 4)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    expected = emb[:, :4] / np.linalg.norm(emb[:, :4], axis=1, keepdims=True)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    as_tensor = truncate_normalize(torch.from_numpy(emb), 4)
    assert isinstance(as_tensor, torch.Tensor)
    np.testing.assert_allclose(as_tensor.numpy(), expected, atol=1e-6)
    with pytest.raises(ValueError):
        truncate_normalize(emb, 17)


def test_chunked_search_equals_full_search() -> None:
    queries, corpus = _unit(37, 24, 1), _unit(503, 24, 2)
    full = queries @ corpus.T
    expected_idx = np.argsort(-full, axis=1, kind="stable")[:, :20]
    expected_scores = np.take_along_axis(full, expected_idx, axis=1)
    for q_chunk, c_chunk in [(1024, 50_000), (5, 7), (16, 100), (37, 503)]:
        scores, idx = topk_search(queries, corpus, 20, query_chunk=q_chunk, corpus_chunk=c_chunk)
        assert idx.shape == (37, 20) and idx.dtype == np.int64
        np.testing.assert_array_equal(idx, expected_idx)
        np.testing.assert_allclose(scores, expected_scores, atol=1e-5)


def test_search_k_above_corpus_and_torch_input() -> None:
    queries, corpus = _unit(3, 8, 3), _unit(4, 8, 4)
    scores, idx = topk_search(
        torch.from_numpy(queries), torch.from_numpy(corpus), 10, corpus_chunk=3
    )
    assert idx.shape == (3, 4)
    assert all(sorted(row) == [0, 1, 2, 3] for row in idx.tolist())
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_chunk_merge_keeps_lower_index_on_ties() -> None:
    corpus = np.tile(_unit(1, 8, 5), (6, 1))
    _, idx = topk_search(corpus[:1], corpus, 3, corpus_chunk=2)
    assert idx.tolist() == [[0, 1, 2]]


# --- metric definitions ------------------------------------------------------------------------


def test_ir_metrics_follow_the_definitions() -> None:
    # query 0: relevant at ranks 2 and 4 of 4 judged; query 1: nothing found of 1 judged.
    hits = np.array([[0, 1, 0, 1, 0], [0, 0, 0, 0, 0]], dtype=bool)
    out = ir_metrics(
        hits, np.array([4, 1]), k_values=[1, 3, 5], mrr_at_k=[3], ndcg_at_k=[5], map_at_k=[5]
    )
    assert out["accuracy@1"] == 0 and out["accuracy@3"] == 0.5
    assert out["precision@3"] == pytest.approx((1 / 3) / 2)
    assert out["recall@5"] == pytest.approx((2 / 4) / 2)
    assert out["mrr@3"] == pytest.approx(0.5 / 2)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = sum(1 / math.log2(i + 2) for i in range(4))
    assert out["ndcg@5"] == pytest.approx(dcg / idcg / 2)
    assert out["map@5"] == pytest.approx(((1 / 2 + 2 / 4) / 4) / 2)


# --- agreement with sentence-transformers -------------------------------------------------------


@pytest.fixture(scope="module")
def medline_slice() -> IRData:
    """100 real MEDLARS abstracts and 5 of its queries with their human judgments."""
    return load_beir(TEST_DATA / "medline_slice")


def test_matches_sentence_transformers_on_minilm(minilm_path: Path, medline_slice: IRData) -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_path), device="cpu")
    model.max_seq_length = 48  # the same for both sides; keeps the five encodes quick on CPU
    dims = [384, 256, 128, 64]
    ours = evaluate_retrieval(model, medline_slice, dims, batch_size=16)
    reference = _st_reference(model, medline_slice, dims)
    _assert_same(ours, reference)
    # The slice is a real retrieval task: MiniLM must rank well above chance.
    assert ours["dim_384_cosine_ndcg@10"] > 0.5


def test_matches_sentence_transformers_on_tiny_model_with_prompts(
    tiny_bert: Path, medline_slice: IRData
) -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_bert), device="cpu")
    dims = [64, 32, 16]
    prompts = {"query_prompt": "query: ", "document_prompt": "passage: "}
    ours = evaluate_retrieval(model, medline_slice, dims, batch_size=16, prefix="bench_", **prompts)
    reference = _st_reference(
        model, medline_slice, dims, query_prompt="query: ", corpus_prompt="passage: "
    )
    _assert_same(ours, {f"bench_{k}": v for k, v in reference.items()})
    without = evaluate_retrieval(model, medline_slice, [64], batch_size=16)
    assert without["dim_64_cosine_map@100"] != ours["bench_dim_64_cosine_map@100"]


# --- evaluator, events, and reports -------------------------------------------------------------


def test_trainer_evaluator_events_and_primary_metric(
    tiny_bert: Path, medline_slice: IRData
) -> None:
    from sentence_transformers import SentenceTransformer

    from ragtune.engine.evaluate.ir import MatryoshkaIREvaluator

    model = SentenceTransformer(str(tiny_bert), device="cpu")
    seen: list[Event] = []
    evaluator = MatryoshkaIREvaluator(
        medline_slice, [64, 32], name="bench", events=Emitter(seen.append), label="tuned"
    )
    assert evaluator.primary_metric == "bench_dim_32_cosine_ndcg@10"
    metrics = evaluator(model)
    assert evaluator.primary_metric in metrics
    assert metrics == evaluate_retrieval(model, medline_slice, [64, 32], prefix="bench_")

    rows = [e for e in seen if isinstance(e, EvalRow)]
    assert [(r.model, r.dim) for r in rows] == [("tuned", 64), ("tuned", 32)]
    assert rows[1].metrics["ndcg@10"] == metrics["bench_dim_32_cosine_ndcg@10"]
    progress = [e for e in seen if isinstance(e, Progress)]
    total = len(medline_slice.queries) + len(medline_slice.corpus)
    assert progress and progress[-1].done == total and progress[-1].total == total


def test_trainer_reports_all_dims(tiny_bert: Path, medline_slice: IRData, tmp_path: Path) -> None:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from ragtune.engine.evaluate.ir import MatryoshkaIREvaluator

    model = SentenceTransformer(str(tiny_bert), device="cpu")
    train = Dataset.from_dict({"anchor": ["a b", "c d"], "positive": ["a", "c"]})
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path), report_to="none", use_cpu=True, per_device_eval_batch_size=16
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=train,
        loss=MultipleNegativesRankingLoss(model),
        evaluator=MatryoshkaIREvaluator(medline_slice, [64, 16]),
    )
    out = trainer.evaluate()
    assert {"eval_dim_64_cosine_ndcg@10", "eval_dim_16_cosine_map@100"} <= set(out)


def test_dims_larger_than_the_model_are_a_config_error(
    tiny_bert: Path, medline_slice: IRData
) -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_bert), device="cpu")
    with pytest.raises(ConfigError, match="matryoshka_dims"):
        evaluate_retrieval(model, medline_slice, [128, 64])


def test_compare_render_and_group_by_dim() -> None:
    base = {"dim_64_cosine_ndcg@10": 0.5, "dim_64_cosine_mrr@10": 0.0, "eval_loss": 1.0}
    tuned = {"dim_64_cosine_ndcg@10": 0.55, "dim_64_cosine_mrr@10": 0.25}
    rows = compare(base, tuned, [64], metrics=("ndcg@10", "mrr@10", "map@100"))
    assert [(r["dim"], r["metric"]) for r in rows] == [(64, "ndcg@10"), (64, "mrr@10")]
    assert rows[0]["abs_change"] == pytest.approx(0.05)
    assert rows[0]["rel_change"] == pytest.approx(0.1)
    assert rows[1]["rel_change"] is None
    table = render_markdown(rows).splitlines()
    assert table[0] == "| dim | metric | base | fine-tuned | vs base |"
    assert table[2] == "| 64 | ndcg@10 | 0.5000 | 0.5500 | +10.0% |"
    assert table[3] == "| 64 | mrr@10 | 0.0000 | 0.2500 | +0.2500 |"

    rotated = {"dim_64_cosine_ndcg@10": 0.54, "dim_64_cosine_mrr@10": 0.2}
    rows = compare(base, tuned, [64], metrics=("ndcg@10",), rotated=rotated)
    assert rows[0]["base_rotated"] == pytest.approx(0.54)
    assert rows[0]["rel_change_vs_rotated"] == pytest.approx(0.01 / 0.54)
    table = render_markdown(rows).splitlines()
    assert table[0].endswith("| base + rotation | fine-tuned | vs base | vs base + rotation |")
    assert table[2] == "| 64 | ndcg@10 | 0.5000 | 0.5400 | 0.5500 | +10.0% | +1.9% |"

    grouped = metrics_by_dim(
        {"eval_dim_8_cosine_ndcg@10": 0.1, "eval_dim_16_cosine_mrr@10": 0.2, "eval_loss": 3.0},
        prefix="eval_",
    )
    assert grouped == {16: {"mrr@10": 0.2}, 8: {"ndcg@10": 0.1}}
    assert primary_metric_key([384, 256, 128, 64]) == "dim_128_cosine_ndcg@10"
    assert primary_metric_key([768, 512], prefix="eval_") == "eval_dim_512_cosine_ndcg@10"


def test_import_does_not_load_torch() -> None:
    code = "import sys, engine.evaluate.ir, engine.evaluate.beir, engine.core.search; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_training_gains_tell_a_real_change_from_noise() -> None:
    from ragtune.engine.evaluate.ir import gain_verdict, training_gains

    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.8, 60)
    key = "dim_64_cosine_ndcg@10"
    steady = training_gains({key: base + 0.05}, {key: base}, [64])["64"]
    assert steady["mean"] == pytest.approx(0.05) and gain_verdict(steady) == "gain"
    noisy = training_gains({key: base + rng.normal(0, 0.2, 60)}, {key: base}, [64])["64"]
    assert noisy["low"] < 0 < noisy["high"] and gain_verdict(noisy) == "within noise"
    assert gain_verdict(training_gains({key: base - 0.05}, {key: base}, [64])["64"]) == "loss"
