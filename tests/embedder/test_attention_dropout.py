"""embedder.attention_dropout reaches the attention modules, and only them."""

from __future__ import annotations

import json
from pathlib import Path

from ragtune.engine.config import RunConfig
from ragtune.engine.core.models import attention_dropout_kwargs, load_embedder


def test_zero_turns_off_the_attention_dropout_and_keeps_the_hidden_one(tiny_bert: Path) -> None:
    shipped = load_embedder(str(tiny_bert), device="cpu")[0].auto_model
    kwargs = attention_dropout_kwargs(str(tiny_bert), 0.0)
    assert kwargs == {"config_kwargs": {"attention_probs_dropout_prob": 0.0}}
    model = load_embedder(str(tiny_bert), device="cpu", **kwargs)[0].auto_model
    layer, shipped_layer = model.encoder.layer[0], shipped.encoder.layer[0]
    assert shipped_layer.attention.self.dropout.p > 0
    assert layer.attention.self.dropout.p == 0.0
    assert layer.attention.output.dropout.p == shipped_layer.attention.output.dropout.p > 0


def test_minus_one_leaves_the_model_as_it_ships(tiny_bert: Path) -> None:
    assert RunConfig().embedder.attention_dropout == 0.0  # the default, measured in bench/README
    assert attention_dropout_kwargs(str(tiny_bert), -1.0) == {}


def test_a_model_without_an_attention_dropout_setting_trains_as_it_ships(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5"}))
    assert attention_dropout_kwargs(str(tmp_path), 0.0) == {}


def test_a_run_trained_before_the_setting_existed_is_stale_under_the_new_default() -> None:
    """Such a run trained with the model's own dropout (-1), not the default 0: status must
    not call it done, and setting -1 makes it done again."""
    from ragtune.engine.core.stages import _changed

    recorded = {"embedder.epochs": 1.0}
    key = "embedder.attention_dropout"
    assert _changed(recorded, {**recorded, key: 0.0}) == [key]
    assert _changed(recorded, {**recorded, key: -1.0}) == []
    assert _changed({**recorded, key: 0.0}, {**recorded, key: 0.0}) == []
    assert _changed(recorded, {**recorded, "embedder.soup_alpha": 1.0}) == []  # no `before`
