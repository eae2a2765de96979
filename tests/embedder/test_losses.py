"""Matryoshka self-distillation: zero distillation at the start, gradients flow to the student only."""

from __future__ import annotations

from pathlib import Path

import torch

from engine.embedder.losses import MatryoshkaDistillLoss


def test_distill_starts_at_zero_for_the_full_size_and_trains_the_student(tiny_bert: Path) -> None:
    from sentence_transformers import SentenceTransformer

    student = SentenceTransformer(str(tiny_bert), device="cpu")
    teacher = SentenceTransformer(str(tiny_bert), device="cpu")
    texts_a = ["forklift battery change", "annual leave request", "reefer pre-cooling"]
    texts_b = [
        "batteries are changed in bay 7",
        "leave needs four weeks notice",
        "cool to set point",
    ]
    feats = [student.tokenize(texts_a), student.tokenize(texts_b)]

    only_full = MatryoshkaDistillLoss(student, teacher, [64], contrastive_weight=0.0)
    assert only_full([dict(f) for f in feats]).item() < 1e-6

    loss = MatryoshkaDistillLoss(student, teacher, [64, 32, 16])
    value = loss([dict(f) for f in feats])
    assert value.item() > 0
    value.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert all(p.grad is None for p in teacher.parameters())
    assert loss.get_config_dict()["dims"] == [64, 32, 16]
    assert torch.isfinite(value)
