"""The hybrid teacher: candidates from BM25 fused with the base model, its listwise target,
the KL term the loss computes over them, and the real train stage with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ragtune.engine.config import RunConfig
from ragtune.engine.config.training import EmbedderConfig
from ragtune.engine.core.errors import ConfigError
from ragtune.engine.core.events import Emitter
from ragtune.engine.data.prepare import load_prepared
from ragtune.engine.embedder.hybrid_teacher import HybridTeacher, fused_ranking, hybrid_teacher_rows
from ragtune.engine.embedder.teacher import TEACHER_COLUMN
from tests.reranker_workspace import CREATURES, build_workspace, one_torch_thread

single_thread = pytest.fixture(autouse=True)(one_torch_thread)
PROMPTS = {"anchor": "", "positive": ""}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory):
    return build_workspace(tmp_path_factory.mktemp("hybrid") / "ws")


def _pool(prepared) -> dict[str, str]:
    return {c: t for c, t in prepared.corpus.items() if c not in prepared.eval_chunks}


def test_fused_scores_are_the_project_fusion_in_cosine_units() -> None:
    from ragtune.engine.retrieval import FusionSettings, fuse

    cosines = np.array([0.2, 0.4, 0.6, 0.1])
    ids = ["a", "b", "c", "d"]
    lexical = [("a", 9.0), ("c", 3.0)]
    ranked, scores = fused_ranking(cosines, lexical, ids, HybridTeacher(bm25_weight=0.0))
    assert ranked == ["c", "b", "a", "d"]
    assert scores == pytest.approx(dict(zip(ids, cosines, strict=True)))
    teacher = HybridTeacher(bm25_weight=0.3)
    ranked, scores = fused_ranking(cosines, lexical, ids, teacher)
    hits = fuse(
        sorted(zip(ids, cosines, strict=True), key=lambda x: -x[1]),
        lexical,
        FusionSettings("zscore", 0.3),
    )
    assert ranked == [h.doc_id for h in hits]
    expected = {h.doc_id: cosines.mean() + cosines.std() * h.score for h in hits}
    assert scores == pytest.approx(expected)
    # All BM25: its favourite leads although the dense model ranks it third.
    assert fused_ranking(cosines, lexical, ids, HybridTeacher(bm25_weight=1.0))[0][0] == "a"


def test_candidates_and_teacher_come_from_the_fused_ranking(workspace, tiny_bert: Path) -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_bert), device="cpu")
    prepared = load_prepared(workspace)
    pool = _pool(prepared)
    ids = list(pool)

    # BM25 alone: "Where does the X live?" names one rare word, its creature, so the
    # candidates are the creature's other chunks, which the random model cannot find.
    lexical, summary = hybrid_teacher_rows(
        prepared.train, pool, model, HybridTeacher(candidates=2, bm25_weight=1.0), PROMPTS
    )
    assert lexical.column_names == ["anchor", "positive", "candidate_1", "candidate_2", "label"]
    assert summary["queries"] == len(prepared.train) and summary["candidates"] == 2
    named = 0
    for row in lexical:
        creature = next(c for c in CREATURES if c in row["anchor"])
        siblings = [t for t in pool.values() if creature in t and t != row["positive"]]
        if row["anchor"].startswith(("Where", "What")) and len(siblings) >= 2:
            named += 1
            assert creature in row["candidate_1"] and creature in row["candidate_2"], row
        assert row["positive"] not in (row["candidate_1"], row["candidate_2"])
    assert named >= 5

    # The base model alone: candidates are its top-ranked passages other than the query's own
    # chunk, and the teacher's logits are 20 x its cosines of (own chunk, candidates).
    dense, dense_summary = hybrid_teacher_rows(
        prepared.train, pool, model, HybridTeacher(candidates=2, bm25_weight=0.0), PROMPTS
    )
    docs = model.encode([pool[c] for c in ids], normalize_embeddings=True)
    queries = model.encode(list(prepared.train["anchor"]), normalize_embeddings=True)
    labels = np.asarray(dense.with_format("numpy")[TEACHER_COLUMN])
    assert labels.shape == (len(prepared.train), 3, 64)
    for q, (row, chunk_id) in enumerate(zip(dense, prepared.train["chunk_id"], strict=True)):
        cos = docs @ queries[q]
        own = ids.index(chunk_id)
        ranked = [int(i) for i in np.argsort(-cos) if i != own][:2]
        assert [row["candidate_1"], row["candidate_2"]] == [pool[ids[i]] for i in ranked]
        assert np.allclose(labels[q, 2, :3], 20 * cos[[own, *ranked]], atol=1e-3)
        assert np.allclose(labels[q, 2, 3:], 0)
        assert np.allclose(labels[q, 0], queries[q], atol=1e-5)
    # The default mix: each row's candidates are the top of the project's fused ranking.
    mixed, _ = hybrid_teacher_rows(
        prepared.train, pool, model, HybridTeacher(candidates=2, bm25_weight=0.3), PROMPTS
    )
    from ragtune.engine.retrieval import Bm25Index

    index = Bm25Index.build(pool.items())
    for q, (row, chunk_id) in enumerate(zip(mixed, prepared.train["chunk_id"], strict=True)):
        hits = index.search([row["anchor"]], 100)[0]
        ranked, _ = fused_ranking(docs @ queries[q], hits, ids, HybridTeacher(bm25_weight=0.3))
        top = [pool[d] for d in ranked if d != chunk_id][:2]
        assert [row["candidate_1"], row["candidate_2"]] == top
    # With BM25 in the mix the teacher prefers the query's own chunk more often than the
    # random base model does: the distribution carries the lexical signal.
    assert summary["own_chunk_first"] > dense_summary["own_chunk_first"] + 0.2
    assert summary["mean_own_chunk_probability"] > dense_summary["mean_own_chunk_probability"]
    lexical_labels = np.asarray(lexical.with_format("numpy")[TEACHER_COLUMN])[:, 2, :3]
    assert not np.allclose(lexical_labels, labels[:, 2, :3])


def test_the_listwise_term_is_the_kl_over_each_querys_own_candidates(
    workspace, tiny_bert: Path
) -> None:
    import torch.nn.functional as F
    from sentence_transformers import SentenceTransformer

    from ragtune.engine.embedder.losses import MatryoshkaDistillLoss

    torch.manual_seed(0)
    model = SentenceTransformer(str(tiny_bert), device="cpu")
    prepared = load_prepared(workspace)
    rows, _ = hybrid_teacher_rows(
        prepared.train, _pool(prepared), model, HybridTeacher(candidates=2), PROMPTS
    )
    batch = rows.select(range(6))
    columns = ["anchor", "positive", "candidate_1", "candidate_2"]
    features = [dict(model.preprocess(list(batch[c]))) for c in columns]
    labels = torch.tensor(np.asarray(batch.with_format("numpy")[TEACHER_COLUMN]))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    model.eval()
    only_listwise = MatryoshkaDistillLoss(
        model, None, [64, 16], distill_weight=0.0, contrastive_weight=0.0, listwise_weight=1.0
    )
    got = only_listwise([dict(f) for f in features], labels)

    with torch.no_grad():
        emb = [model(dict(f))["sentence_embedding"] for f in features]
    expected = 0.0
    teacher = F.log_softmax(labels[:, 2, :3], dim=1)
    for dim in (64, 16):
        a, *passages = (F.normalize(e[:, :dim], dim=-1) for e in emb)
        scores = torch.stack([(a * p).sum(-1) for p in passages], dim=1) * 20
        expected += F.kl_div(
            F.log_softmax(scores, 1), teacher, log_target=True, reduction="batchmean"
        )
    assert got.item() == pytest.approx(expected.item(), rel=1e-4)
    assert got.item() > 0
    # Another query's candidates give another value: the term reads each row's own list.
    swapped = [dict(f) for f in features]
    rolled = list(batch["candidate_1"])
    swapped[2] = dict(model.preprocess([*rolled[1:], rolled[0]]))
    assert only_listwise(swapped, labels).item() != pytest.approx(got.item(), rel=1e-3)


def test_hybrid_distill_settings_are_checked() -> None:
    with pytest.raises(ConfigError) as err:
        EmbedderConfig(loss="hybrid_distill", hard_negatives=1).check()
    assert err.value.key == "embedder.hard_negatives"
    assert "teacher_candidates" in EmbedderConfig(loss="distill").inactive()
    assert "teacher_candidates" not in EmbedderConfig(loss="hybrid_distill").inactive()
    with pytest.raises(ConfigError):
        RunConfig.from_dict({"embedder": {"loss": "hybrid_distill", "teacher_bm25_weight": 2.0}})


def test_hybrid_distill_trains_through_the_stage(
    workspace, tiny_bert: Path, tmp_path: Path
) -> None:
    from sentence_transformers import SentenceTransformer

    from ragtune.engine.embedder.train import train_embedder

    cfg = RunConfig.from_dict(
        {
            "run": {"workspace": str(workspace.root)},
            "embedder": {
                "base_model": str(tiny_bert),
                "loss": "hybrid_distill",
                "teacher_candidates": 2,
                "batch_size": 8,
                "epochs": 1.0,
                "eval_strategy": "no",
                "corpus_rotation": False,
                "matryoshka_dims": [64, 16],
                "metric_for_best_model": "eval_dim_16_cosine_ndcg@10",
            },
            "reranker": {"enabled": False},
        }
    )
    cfg.save(workspace.config_path)
    events: list = []
    before = SentenceTransformer(str(tiny_bert), device="cpu").encode(["glimmerfox diet"])
    summary = train_embedder(cfg, workspace, Emitter(events.append))
    texts = [ev.to_dict().get("text", "") for ev in events]
    assert any("hybrid teacher: 2 candidates" in t for t in texts), texts
    assert summary["hybrid_teacher"]["queries"] == summary["train_pairs"]
    assert summary["steps"] > 0
    after = SentenceTransformer(str(workspace.embedder_dir), device="cpu").encode(
        ["glimmerfox diet"]
    )
    assert after.shape == (1, 64) and not np.allclose(before, after)
