"""Activation checkpointing: switched on in the encoder, it recomputes layers and trains both models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ragtune.engine.core.events import Emitter, StageFinished
from ragtune.engine.training import checkpointing
from ragtune.engine.training.checkpointing import enable_checkpointing, is_checkpointing


def _layer_calls(model: Any, train_step: Any) -> int:
    """Forward calls inside the first encoder layer during one forward + backward (a child's:
    transformers 5 checkpoints the layer's ``forward``, so the layer's own hooks run once)."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    layer = next(m for m in model.modules() if isinstance(m, GradientCheckpointingLayer))
    calls = []
    handle = next(layer.children()).register_forward_hook(lambda *a: calls.append(1))
    try:
        train_step()
    finally:
        handle.remove()
    return len(calls)


def test_a_checkpointed_layer_runs_again_in_the_backward_pass(tiny_bert: Path) -> None:
    """The recompute is what frees the activations: with it on, each layer's forward runs
    twice per training step, once without it."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_bert), device="cpu")
    model.train()

    def step() -> None:
        tokenize = getattr(model, "preprocess", None) or model.tokenize
        features = tokenize(["forklift battery changes", "annual leave requests"])
        model(features)["sentence_embedding"].pow(2).sum().backward()

    assert not is_checkpointing(model)
    assert _layer_calls(model, step) == 1
    # One transformers model inside ("0.model" in sentence-transformers 6, "0.auto_model" in 5).
    assert len(enable_checkpointing(model, "embedder.gradient_checkpointing")) == 1
    assert is_checkpointing(model)
    assert _layer_calls(model, step) == 2


def test_the_cross_encoder_is_checkpointed_too(tiny_cross_encoder: Path) -> None:
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(tiny_cross_encoder), device="cpu")
    model.train()
    enable_checkpointing(model, "reranker.gradient_checkpointing")
    assert is_checkpointing(model)

    def step() -> None:
        features = model.tokenizer(
            [["dock door scheduling", "doors open at six"]], return_tensors="pt", padding=True
        )
        model.model(**features).logits.sum().backward()

    assert _layer_calls(model, step) == 2


def test_a_model_without_support_is_a_config_error_naming_the_setting() -> None:
    import torch

    from ragtune.engine.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"embedder\.gradient_checkpointing"):
        enable_checkpointing(torch.nn.Linear(2, 2), "embedder.gradient_checkpointing")


def _spy(monkeypatch: pytest.MonkeyPatch, module: Any) -> list[Any]:
    """Records the models the stage checkpoints, calling the real function."""
    seen: list[Any] = []

    def recording(model: Any, key: str) -> list[str]:
        seen.append(model)
        return checkpointing.enable_checkpointing(model, key)

    monkeypatch.setattr(module, "enable_checkpointing", recording)
    return seen


@pytest.mark.slow
def test_the_embedder_trains_with_checkpointing_on(
    tmp_path: Path, tiny_bert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ragtune.engine.embedder.train as train_module
    from ragtune.engine.api import run_pipeline
    from tests.test_pipeline import tiny_config

    seen = _spy(monkeypatch, train_module)
    cfg = tiny_config(tmp_path, tiny_bert, gradient_checkpointing=True, corpus_rotation=False)
    cfg.distributed.nproc_per_node = "auto"
    events: list = []
    ws = run_pipeline(
        cfg, events=Emitter(events.append), stages=["ingest", "generate", "prepare", "train"]
    )
    done = [e for e in events if isinstance(e, StageFinished) and e.stage == "train"]
    assert done and done[0].summary["steps"] > 0
    assert len(seen) == 1 and is_checkpointing(seen[0])
    from sentence_transformers import SentenceTransformer

    saved = SentenceTransformer(str(ws.embedder_dir), device="cpu")
    assert saved.encode(["pallet probe checks"]).shape == (1, 64)


@pytest.mark.slow
def test_the_reranker_trains_with_checkpointing_on(
    tmp_path: Path, tiny_bert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ragtune.engine.reranker.train as train_module
    from ragtune.engine.reranker.train import run_reranker_stage
    from tests.reranker_workspace import build_workspace
    from tests.reranker_workspace import tiny_config as reranker_config

    seen = _spy(monkeypatch, train_module)
    ws = build_workspace(tmp_path / "ws", n=24, llm_negatives=False)
    cfg = reranker_config(ws, tiny_bert, tiny_bert, gradient_checkpointing=True, eval_strategy="no")
    summary = run_reranker_stage(cfg, ws, Emitter())
    assert summary["training"]["steps"] > 0
    assert len(seen) == 1 and is_checkpointing(seen[0])
    assert (ws.reranker_dir / "config.json").exists()


@pytest.mark.slow
def test_checkpointing_changes_no_result(tmp_path: Path, tiny_bert: Path) -> None:
    """It is marked as a speed setting (not in the stage's fingerprint) and the bundled example
    turns it on to save memory: the trained weights must be those of a run without it (the
    recomputed forward replays the same dropout masks)."""
    import torch
    from sentence_transformers import SentenceTransformer

    from ragtune.engine.api import run_pipeline
    from tests.test_pipeline import tiny_config

    weights = []
    for on in (False, True):
        cfg = tiny_config(tmp_path / str(on), tiny_bert, gradient_checkpointing=on)
        ws = run_pipeline(cfg, stages=["ingest", "generate", "prepare", "train"])
        model = SentenceTransformer(str(ws.embedder_dir), device="cpu")
        weights.append({k: v.clone() for k, v in model.state_dict().items()})
    plain, checkpointed = weights
    assert plain.keys() == checkpointed.keys()
    moved = max((plain[k] - checkpointed[k]).abs().max().item() for k in plain)
    assert moved < 1e-5, f"weights differ by {moved}"
    base = SentenceTransformer(str(tiny_bert), device="cpu").state_dict()
    assert any(not torch.equal(base[k], plain[k]) for k in base if k in plain)  # it trained
