"""The loss registry: every ``embedder.loss`` choice has a builder, and each builds its loss."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.engine.config.training import LOSSES as CHOICES
from ragtune.engine.config.training import EmbedderConfig
from ragtune.engine.embedder.losses import (
    LOSSES,
    MatryoshkaDistillLoss,
    MatryoshkaMarginMSELoss,
)
from ragtune.engine.embedder.train import build_loss


def test_every_choice_has_a_builder_and_no_other_exists() -> None:
    assert list(LOSSES) == list(CHOICES)
    field = EmbedderConfig.__dataclass_fields__["loss"]
    assert field.metadata["choices"] == tuple(CHOICES)
    assert all(f"{name} = " in field.metadata["help"] for name in CHOICES)


def test_a_loss_owns_its_settings_and_they_read_as_unused_under_another() -> None:
    gpl = EmbedderConfig(loss="gpl", hard_negatives=1).inactive()
    assert "pseudo_label_model" not in gpl and {"listwise_weight", "mini_batch_size"} <= gpl
    cached = EmbedderConfig(loss="cached_mnrl").inactive()
    assert "mini_batch_size" not in cached and "gpl_score_scale" in cached
    owned = {s for c in CHOICES.values() for s in c.settings}
    assert owned <= set(EmbedderConfig.__dataclass_fields__)
    assert owned <= EmbedderConfig(loss="mnrl").inactive()


@pytest.mark.parametrize(
    ("loss", "built", "inner"),
    [
        ("mnrl", "MatryoshkaLoss", "MultipleNegativesRankingLoss"),
        ("cached_mnrl", "MatryoshkaLoss", "CachedMultipleNegativesRankingLoss"),
        ("gist", "MatryoshkaLoss", "GISTEmbedLoss"),
        ("distill", MatryoshkaDistillLoss.__name__, None),
        ("hybrid_distill", MatryoshkaDistillLoss.__name__, None),
        ("gpl", MatryoshkaMarginMSELoss.__name__, None),
    ],
)
def test_each_name_builds_its_loss_with_its_settings(
    tiny_bert: Path, loss: str, built: str, inner: str | None
) -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_bert), device="cpu")
    cfg = EmbedderConfig(
        base_model=str(tiny_bert),
        loss=loss,
        hard_negatives=1 if loss == "gpl" else 0,
        mini_batch_size=3,
        listwise_weight=0.5,
        gpl_score_scale=7.0,
    )
    out = build_loss(model, cfg, [64, 32])
    assert type(out).__name__ == built
    if inner:
        assert type(out.loss).__name__ == inner and list(out.matryoshka_dims) == [64, 32]
    if loss == "cached_mnrl":
        assert out.loss.mini_batch_size == 3
    if loss == "hybrid_distill":
        assert out.listwise_weight == 0.5
    if loss == "gpl":
        assert out.scale == 7.0
