"""The distill teacher computed once: the same loss as the per-step teacher, and the train stage
uses it without loading a second model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ragtune.engine.embedder.losses import MatryoshkaDistillLoss
from ragtune.engine.embedder.teacher import TEACHER_COLUMN, precompute_teacher

ROWS = {
    "anchor": ["forklift battery change", "annual leave request", "reefer pre-cooling", "dock"],
    "positive": [
        "batteries are changed in bay 7 by the night shift after the last run",
        "leave needs four weeks notice",
        "cool to set point",
        "batteries are changed in bay 7 by the night shift after the last run",
    ],
    "negative_1": [
        "doors are booked a day ahead",
        "the canteen opens at six",
        "cool to set point",
        "pallets are wrapped twice",
    ],
}
PROMPTS = {"anchor": "query: ", "positive": "passage: ", "negative_1": "passage: "}


def _batch(model, rows: dict[str, list[str]], prompts: dict[str, str]) -> list[dict]:
    """Features as the trainer's collator builds them: each column tokenized with its prompt."""
    return [
        dict(model.preprocess(rows[c], prompt=prompts[c]))
        for c in ("anchor", "positive", "negative_1")
    ]


def test_precomputed_teacher_gives_the_per_step_teachers_loss(tiny_bert: Path) -> None:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    student = SentenceTransformer(str(tiny_bert), device="cpu")
    student.max_seq_length = 12  # the teacher must see the student's truncation
    # The student has moved away from the base: the loss is not trivially at its start value.
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    student.eval()
    base = SentenceTransformer(str(tiny_bert), device="cpu")
    base.max_seq_length = 12
    features = _batch(student, ROWS, PROMPTS)

    per_step = MatryoshkaDistillLoss(student, base, [64, 32, 16])
    expected = per_step([dict(f) for f in features]).item()

    rows = precompute_teacher(base, Dataset.from_dict(ROWS), PROMPTS, batch_size=3)
    assert rows.column_names == ["anchor", "positive", "negative_1", TEACHER_COLUMN]
    labels = torch.tensor(rows[TEACHER_COLUMN])
    assert labels.shape == (4, 3, 64)
    assert torch.allclose(labels.norm(dim=-1), torch.ones(4, 3), atol=1e-5)
    once = MatryoshkaDistillLoss(student, None, [64, 32, 16])
    got = once([dict(f) for f in features], labels)
    assert got.item() == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert expected > 0.1
    # Labels from an unrelated model give another loss: the test can fail.
    other = SentenceTransformer(str(tiny_bert), device="cpu")
    with torch.no_grad():
        for p in other.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    wrong = torch.tensor(
        precompute_teacher(other, Dataset.from_dict(ROWS), PROMPTS)[TEACHER_COLUMN]
    )
    assert once([dict(f) for f in features], wrong).item() != pytest.approx(expected, rel=1e-3)
    got.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())


def test_the_loss_without_teacher_or_labels_says_what_it_needs(tiny_bert: Path) -> None:
    from sentence_transformers import SentenceTransformer

    student = SentenceTransformer(str(tiny_bert), device="cpu")
    loss = MatryoshkaDistillLoss(student, None, [64])
    with pytest.raises(ValueError, match="precompute_teacher"):
        loss(_batch(student, ROWS, PROMPTS))
