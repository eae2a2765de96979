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


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu")
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.slow
def test_a_retrain_reads_the_saved_teacher_and_trains_the_same_weights(
    tmp_path: Path, tiny_bert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A changed learning rate retrains without encoding the training rows with the base
    model again, and the weights equal those of a workspace that encoded them."""
    from ragtune.engine.api import run_pipeline
    from ragtune.engine.core.events import Emitter, Message
    from ragtune.engine.embedder import teacher
    from tests.test_pipeline import tiny_config

    stages = ["ingest", "generate", "prepare", "train"]
    cfg = tiny_config(tmp_path / "ws", tiny_bert)
    assert cfg.embedder.loss == "distill"
    ws = run_pipeline(cfg, stages=stages)
    saved = ws.root / "embeddings" / f"{teacher.TEACHER_SET}.npy"
    assert saved.exists()

    fresh = tiny_config(tmp_path / "fresh", tiny_bert, learning_rate=3e-4)
    expected = _weights(run_pipeline(fresh, stages=stages).embedder_dir)

    def encode_again(*args: object, **kwargs: object) -> None:
        raise AssertionError("the teacher encoded the rows again")

    monkeypatch.setattr(teacher, "teacher_embeddings", encode_again)
    cfg.embedder.learning_rate = 3e-4
    seen: list = []
    run_pipeline(cfg, events=Emitter(seen.append), stages=stages)
    assert any(isinstance(e, Message) and "are reused" in e.text for e in seen)
    got = _weights(ws.embedder_dir)
    assert max((got[k] - expected[k]).abs().max().item() for k in expected) < 1e-6


def test_the_fingerprint_follows_texts_length_and_model(tmp_path: Path, tiny_bert: Path) -> None:
    import numpy as np
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer

    from ragtune.engine.embedder.teacher import save_teacher, saved_teacher, teacher_fingerprint

    model = SentenceTransformer(str(tiny_bert), device="cpu")
    rows = Dataset.from_dict(ROWS)

    def fp(**kw: object) -> str:
        return teacher_fingerprint(model, str(tiny_bert), kw.pop("rows", rows), PROMPTS, **kw)

    first = fp()
    assert fp() == first
    edited = dict(ROWS, positive=["cool to set point first", *ROWS["positive"][1:]])
    assert fp(rows=Dataset.from_dict(edited)) != first
    assert fp(attention_dropout=0.1) != first
    model.max_seq_length = 8
    assert fp() != first

    folder = tmp_path / "embeddings"
    array = np.random.default_rng(0).standard_normal((4, 3, 64)).astype(np.float32)
    assert saved_teacher(folder, first, (4, 3)) is None
    save_teacher(folder, first, array)
    assert np.array_equal(saved_teacher(folder, first, (4, 3)), array)
    assert saved_teacher(folder, fp(), (4, 3)) is None  # another fingerprint
    assert saved_teacher(folder, first, (5, 3)) is None  # another number of rows
    (folder / "teacher-embedder.npy").write_bytes(b"damaged")
    assert saved_teacher(folder, first, (4, 3)) is None
