"""Reranker training end to end on a tiny workspace, and the evaluation tables it reports."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import numpy as np
import pytest
from reranker_workspace import build_workspace, one_torch_thread, tiny_config

from ragtune.engine.core.errors import Cancelled
from ragtune.engine.core.events import EvalRow, Message, Progress, TrainLog
from ragtune.engine.core.workspace import Workspace
from ragtune.engine.reranker.evaluate import (
    Candidates,
    choose_weight,
    fuse,
    metrics_for,
    ranking_metrics,
)
from ragtune.engine.reranker.train import SETTINGS_FILE, has_classifier_head, run_reranker_stage

_threads = pytest.fixture(scope="module", autouse=True)(one_torch_thread)


def test_ranking_metrics_by_hand() -> None:
    ranked = [["a", "x", "b", "y"], ["y", "x"]]
    relevant = [{"a", "b"}, {"z"}]
    m = ranking_metrics(ranked, relevant)
    ndcg_q1 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert m["ndcg@10"] == pytest.approx(ndcg_q1 / 2)
    assert m["mrr@10"] == pytest.approx(0.5)
    assert m["map@100"] == pytest.approx((1 + 2 / 3) / 2 / 2)


def test_ranking_metrics_match_cross_encoder_evaluator() -> None:
    """Our ndcg@10/mrr@10 agree with sentence-transformers' reranking evaluator on one list."""
    from sentence_transformers.cross_encoder.evaluation import CrossEncoderRerankingEvaluator

    rng = np.random.default_rng(0)
    ids = [f"d{i}" for i in range(20)]
    rel = {"d3", "d11", "d17"}
    scores = rng.normal(size=20)
    ours = ranking_metrics([[ids[i] for i in np.argsort(-scores)]], [rel])
    is_rel = [int(d in rel) for d in ids]
    mrr, ndcg, _ = CrossEncoderRerankingEvaluator(samples=[], at_k=10).compute_metrics(
        is_rel, scores
    )
    assert ours["ndcg@10"] == pytest.approx(ndcg, abs=1e-6)
    assert ours["mrr@10"] == pytest.approx(mrr, abs=1e-6)


def test_fusion_weight_zero_keeps_retriever_order() -> None:
    cands = Candidates(
        queries=["q1", "q2"],
        ids=[["a", "b", "c"], ["d", "e", "f"]],
        scores=[np.array([0.9, 0.8, 0.7]), np.array([0.6, 0.5, 0.4])],
        relevant=[{"a"}, {"d"}],
    )
    # A reranker that reverses everything: the best weight must be 0.
    bad = [np.array([0.0, 1.0, 2.0]), np.array([0.0, 1.0, 2.0])]
    w, curve = choose_weight(cands, bad)
    assert w == 0.0 and curve[1.0] < curve[0.0]
    assert metrics_for(
        cands, [fuse(r, s, 0.0) for r, s in zip(cands.scores, bad, strict=True)]
    ) == (metrics_for(cands, cands.scores))
    # A reranker that fixes a wrong order is taken.
    cands.relevant = [{"c"}, {"f"}]
    w, curve = choose_weight(cands, bad)
    assert w > 0
    # A gain smaller than min_gain is treated as noise: the retriever's order is kept.
    gain = max(curve.values()) - curve[0.0]
    assert choose_weight(cands, bad, min_gain=gain + 1e-6)[0] == 0.0


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path):
    ws = build_workspace(tmp_path_factory.mktemp("rrws"))
    cfg = tiny_config(ws, tiny_bert, tiny_bert, epochs=1.0)
    events: list = []
    from ragtune.engine.core.events import Emitter

    summary = run_reranker_stage(cfg, ws, Emitter(events.append, stage="rerank"))
    return ws, cfg, summary, events


def test_stage_trains_saves_and_reports(trained, tiny_bert: Path) -> None:
    ws, cfg, summary, events = trained
    assert (ws.reranker_dir / "config.json").exists()
    assert has_classifier_head(str(ws.reranker_dir))
    assert not has_classifier_head(str(tiny_bert))
    settings = json.loads((ws.reranker_dir / SETTINGS_FILE).read_text())
    assert 0.0 <= settings["fusion_weight"] <= 1.0
    assert settings["fresh_head"] is True
    card = (ws.reranker_dir / "README.md").read_text()
    assert cfg.reranker.base_model in card and "mined" in card and "ndcg@10" in card

    negs = summary["negatives"]
    assert negs["mined"] > 0 and negs["random"] > 0 and negs["llm_passage"] > 0
    assert summary["training"]["steps"] > 0
    assert summary["pos_weight"] == pytest.approx(negs["negatives"] / negs["positives"], abs=1e-3)

    metrics = json.loads(ws.metrics_path.read_text())
    rows = metrics["reranker"]["evaluation"]["rows"]
    assert set(rows) == {"retrieved top-k", "positives included"}
    for systems in rows.values():
        assert "retriever" in systems and "fine-tuned reranker" in systems
        assert any(k.startswith("base reranker") for k in systems)
        for m in systems.values():
            assert set(m) == {"ndcg@10", "mrr@10", "map@100"}
    # With every positive among the candidates nothing can rank below the top-k recall.
    inc = rows["positives included"]["fine-tuned reranker"]["mrr@10"]
    assert inc >= rows["retrieved top-k"]["fine-tuned reranker"]["mrr@10"] - 1e-9

    report = summary["report"]
    assert "| retrieved top-k | retriever |" in report
    assert "| positives included | fine-tuned reranker |" in report
    assert any(isinstance(e, TrainLog) and e.model == "reranker" for e in events)
    eval_rows = [e for e in events if isinstance(e, EvalRow)]
    assert {e.model for e in eval_rows} >= {"retriever", "fine-tuned reranker"}


def test_fused_row_never_below_retriever_when_weight_zero(trained) -> None:
    _, _, summary, events = trained
    top = summary["evaluation"]["rows"]["retrieved top-k"]
    fused = next(v for k, v in top.items() if k.startswith("fine-tuned fused"))
    if summary["fusion_weight"] == 0:
        assert fused == top["retriever"]
        assert any(isinstance(e, Message) and e.level == "warning" for e in events)


def test_cancel_keeps_checkpoint_and_resumes(tmp_path: Path, tiny_bert: Path) -> None:
    from ragtune.engine.core.events import Emitter

    ws = build_workspace(tmp_path / "ws", n=24, llm_negatives=False)
    cfg = tiny_config(ws, tiny_bert, tiny_bert, eval_strategy="no")
    cancel = threading.Event()

    def stop_after_first_step(event: object) -> None:
        if isinstance(event, Progress) and event.unit == "steps" and event.done >= 1:
            cancel.set()

    with pytest.raises(Cancelled):
        run_reranker_stage(cfg, ws, Emitter(stop_after_first_step), cancel=cancel)
    ckpts = list((ws.checkpoints_dir / "reranker").glob("checkpoint-*"))
    assert ckpts, "a cancelled run leaves a checkpoint to resume from"
    events: list = []
    summary = run_reranker_stage(cfg, Workspace(ws.root), Emitter(events.append))
    assert summary["training"]["resumed_from"] == ckpts[0].name
    assert summary["training"]["steps"] > int(ckpts[0].name.split("-")[1])


@pytest.mark.parametrize("loss", ["lambda", "mnrl"])
def test_listwise_and_in_batch_losses_train(tmp_path: Path, tiny_bert: Path, loss: str) -> None:
    from ragtune.engine.core.events import Emitter

    ws = build_workspace(tmp_path / "ws", n=24, llm_negatives=False)
    cfg = tiny_config(ws, tiny_bert, tiny_bert, loss=loss, eval_strategy="no", fusion_weight=0.5)
    summary = run_reranker_stage(cfg, ws, Emitter())
    assert summary["training"]["steps"] > 0
    assert summary["fusion_weight"] == 0.5
    assert json.loads((ws.reranker_dir / SETTINGS_FILE).read_text())["loss"] == loss


def test_the_stage_reads_the_passage_vectors_evaluate_saved(
    trained, tmp_path: Path, tiny_bert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retriever's top-k comes from the vectors evaluate saved for this model and these
    passages, not a second encode of the corpus, and equals the encoded one."""
    from ragtune.engine.core.events import Emitter
    from ragtune.engine.core.models import load_embedder
    from ragtune.engine.data.prepare import load_prepared
    from ragtune.engine.embedder.train import attach_prompts
    from ragtune.engine.evaluate.saved import save_corpus
    from ragtune.engine.reranker import evaluate as reranker_evaluate

    ws = build_workspace(tmp_path / "ws")
    cfg = tiny_config(ws, tiny_bert, tiny_bert, epochs=1.0)
    corpus = load_prepared(ws).corpus
    embedder = attach_prompts(load_embedder(str(tiny_bert), device="cpu"), cfg.embedder)
    ids = sorted(corpus)
    vectors = embedder.encode_document([corpus[i] for i in ids], convert_to_numpy=True)
    save_corpus(ws, "base", embedder, str(tiny_bert), corpus, vectors, None)

    def encode_again(*args: object, **kwargs: object) -> None:
        raise AssertionError("the corpus was encoded again")

    monkeypatch.setattr(reranker_evaluate, "encode_corpus", encode_again)
    events: list = []
    run_reranker_stage(cfg, ws, Emitter(events.append, stage="rerank"))
    assert any(isinstance(e, Message) and "saved by evaluate are reused" in e.text for e in events)
    reused = json.loads(ws.metrics_path.read_text())["reranker"]["evaluation"]["rows"]
    encoded = json.loads(trained[0].metrics_path.read_text())["reranker"]["evaluation"]["rows"]
    for metric, value in encoded["retrieved top-k"]["retriever"].items():
        assert reused["retrieved top-k"]["retriever"][metric] == pytest.approx(value, abs=1e-6)
