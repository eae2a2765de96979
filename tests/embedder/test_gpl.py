"""Mined negatives and GPL pseudo-labels: rows, margins, the MarginMSE loss, and the real train stage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ragtune.engine.config import RunConfig
from ragtune.engine.config.training import EmbedderConfig
from ragtune.engine.core.errors import ConfigError
from ragtune.engine.core.events import Emitter
from ragtune.engine.data.prepare import load_prepared
from tests.reranker_workspace import build_workspace, one_torch_thread

single_thread = pytest.fixture(autouse=True)(one_torch_thread)


def _cfg(ws_root: Path, embedder: Path, **embedder_kw: object) -> RunConfig:
    return RunConfig.from_dict(
        {
            "run": {"workspace": str(ws_root)},
            "embedder": {
                "base_model": str(embedder),
                "batch_size": 8,
                "epochs": 1.0,
                "eval_strategy": "no",
                "corpus_rotation": False,
                "matryoshka_dims": [64, 32],
                "metric_for_best_model": "eval_dim_32_cosine_ndcg@10",
                "negative_range_min": 0,
                "negative_range_max": 10,
                **embedder_kw,
            },
            "reranker": {"enabled": False},
        }
    )


def _mine(prepared, model, cfg: EmbedderConfig):
    from ragtune.engine.embedder.negatives import mined_groups

    return mined_groups(
        prepared.train,
        prepared.corpus,
        model,
        cfg,
        exclude_chunks=prepared.eval_chunks,
        events=Emitter(),
    )


def test_gpl_needs_a_mined_negative() -> None:
    with pytest.raises(ConfigError) as err:
        EmbedderConfig(loss="gpl", hard_negatives=0).check()
    assert err.value.key == "embedder.hard_negatives"
    with pytest.raises(ConfigError) as err:
        EmbedderConfig(negative_range_min=50, negative_range_max=20).check()
    assert err.value.key == "embedder.negative_range_max"


def test_mined_rows_never_use_held_out_or_own_chunks(tmp_path: Path, tiny_bert: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from ragtune.engine.embedder.negatives import negative_columns

    ws = build_workspace(tmp_path / "ws")
    prepared = load_prepared(ws)
    model = SentenceTransformer(str(tiny_bert), device="cpu")
    cfg = EmbedderConfig(hard_negatives=3, negative_range_min=0, negative_range_max=10)
    groups, counts = _mine(prepared, model, cfg)
    assert groups and all(len(g.negatives) == 3 for g in groups)
    assert counts["mined"] > 0 and counts["queries"] == len(groups)
    held_out = {prepared.corpus[c] for c in prepared.eval_chunks}
    for g in groups:
        texts = {p for p, _ in g.negatives}
        assert prepared.corpus[g.chunk_id] not in texts and g.positive not in texts
        assert not texts & held_out
    rows = negative_columns(groups)
    assert rows.column_names == ["anchor", "positive", "negative_1", "negative_2", "negative_3"]


def test_pseudo_labels_are_the_cross_encoders_logit_margins(
    tmp_path: Path, tiny_bert: Path, tiny_cross_encoder: Path
) -> None:
    import torch
    from sentence_transformers import CrossEncoder, SentenceTransformer

    from ragtune.engine.embedder.negatives import pseudo_labelled

    ws = build_workspace(tmp_path / "ws")
    prepared = load_prepared(ws)
    model = SentenceTransformer(str(tiny_bert), device="cpu")
    cfg = EmbedderConfig(loss="gpl", hard_negatives=2, negative_range_min=0, negative_range_max=10)
    groups, _ = _mine(prepared, model, cfg)
    ce = CrossEncoder(str(tiny_cross_encoder), device="cpu")
    rows, stats = pseudo_labelled(groups, ce)
    assert len(rows) == 2 * len(groups) == stats["rows"]
    assert rows.column_names == ["anchor", "positive", "negative", "label"]
    raw = torch.nn.Identity()
    for i in (0, len(rows) - 1):
        q, p, n = rows[i]["anchor"], rows[i]["positive"], rows[i]["negative"]
        pos, neg = ce.predict([(q, p), (q, n)], activation_fn=raw)
        assert rows[i]["label"] == pytest.approx(float(pos - neg), abs=1e-5)
    labels = np.array(rows["label"])
    assert stats["negative_preferred"] == int((labels < 0).sum())


def test_margin_mse_learns_the_margins(tiny_bert: Path) -> None:
    """A few steps on fixed rows bring the embedder's scaled margins towards the labels, at
    every Matryoshka size, and the contrastive term adds to the loss only when weighted."""
    import torch
    from sentence_transformers import SentenceTransformer

    from ragtune.engine.embedder.losses import MatryoshkaMarginMSELoss

    torch.manual_seed(0)
    model = SentenceTransformer(str(tiny_bert), device="cpu")
    queries = ["forklift battery change", "annual leave request", "reefer pre-cooling"]
    positives = ["batteries are changed in bay 7", "leave needs notice", "cool to set point"]
    negatives = ["the canteen opens at 7", "parking is free", "fire drill on Fridays"]
    labels = torch.tensor([6.0, 4.0, 8.0])
    features = [dict(model.tokenize(t)) for t in (queries, positives, negatives)]
    loss = MatryoshkaMarginMSELoss(model, [64, 16], scale=20.0)
    both = MatryoshkaMarginMSELoss(model, [64, 16], scale=20.0, contrastive_weight=1.0)
    with torch.no_grad():
        assert both(features, labels).item() > loss(features, labels).item()
    optim = torch.optim.AdamW(model.parameters(), lr=1e-3)
    first = None
    for _ in range(15):
        optim.zero_grad()
        value = loss(features, labels)
        first = value.item() if first is None else first
        value.backward()
        optim.step()
    assert loss(features, labels).item() < 0.5 * first


def test_gpl_train_stage_end_to_end(
    tmp_path: Path, tiny_bert: Path, tiny_cross_encoder: Path
) -> None:
    """The real train stage with loss = gpl: mines, pseudo-labels with the cross-encoder,
    trains, saves a model that encodes, and says what it labelled."""
    from sentence_transformers import SentenceTransformer

    from ragtune.engine.embedder.train import train_embedder

    ws = build_workspace(tmp_path / "ws")
    cfg = _cfg(
        ws.root,
        tiny_bert,
        loss="gpl",
        hard_negatives=2,
        pseudo_label_model=str(tiny_cross_encoder),
        gpl_contrastive_weight=0.5,
    )
    cfg.save(ws.config_path)
    events: list = []
    summary = train_embedder(cfg, ws, Emitter(events.append))
    texts = [ev.to_dict().get("text", "") for ev in events]
    assert any(t.startswith("pseudo-labels:") for t in texts), texts
    # A random head is no teacher, and the run says so.
    assert any("barely tells positives from mined negatives" in t for t in texts), texts
    assert summary["pseudo_labels"]["rows"] == summary["train_pairs"]
    assert summary["negatives"]["mined"] > 0
    emb = SentenceTransformer(str(ws.embedder_dir), device="cpu").encode(["glimmerfox diet"])
    assert emb.shape == (1, 64)
    from ragtune.engine.export.stage import model_card_text

    card = model_card_text(cfg, ws)
    assert f"GPL: MarginMSE on the score margins of `{tiny_cross_encoder}`" in card
    assert "2 mined negative(s) per query from ranks 0-10" in card


def test_hard_negatives_feed_the_distill_loss(tmp_path: Path, tiny_bert: Path) -> None:
    from ragtune.engine.embedder.train import train_embedder

    ws = build_workspace(tmp_path / "ws")
    cfg = _cfg(ws.root, tiny_bert, loss="distill", hard_negatives=1)
    cfg.save(ws.config_path)
    summary = train_embedder(cfg, ws, Emitter())
    assert summary["negatives"]["queries"] == summary["train_pairs"]
    assert (ws.embedder_dir / "config.json").exists()
