"""Matryoshka self-distillation: zero distillation at the start, gradients flow to the student only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ragtune.engine.embedder.losses import MatryoshkaDistillLoss


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


ANCHORS = ["forklift battery change", "annual leave request", "reefer pre-cooling", "dock doors"]
POSITIVES = [
    "batteries are changed in bay 7",
    "leave needs four weeks notice",
    "cool to set point",
    "doors are booked a day ahead",
]


def _loss_on(model_path: str, anchors: list[str], positives: list[str], gather: bool) -> tuple:
    from sentence_transformers import SentenceTransformer

    student = SentenceTransformer(model_path, device="cpu").eval()
    teacher = SentenceTransformer(model_path, device="cpu")
    loss = MatryoshkaDistillLoss(student, teacher, [64, 16], gather_across_devices=gather)
    value = loss([dict(student.tokenize(anchors)), dict(student.tokenize(positives))])
    return value.item(), loss.last_candidates


def _rank(rank: int, world: int, model_path: str, port: int, out: str) -> None:
    import json
    import os

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        per = len(ANCHORS) // world
        part = slice(rank * per, (rank + 1) * per)
        value, candidates = _loss_on(model_path, ANCHORS[part], POSITIVES[part], gather=True)
        Path(out, f"rank{rank}.json").write_text(json.dumps([value, candidates]))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_gathering_across_two_ranks_is_the_loss_of_the_whole_batch(
    tiny_bert: Path, tmp_path: Path
) -> None:
    """Each rank scores its queries against every rank's passages with its own offset into
    them, so the ranks' mean loss (what DDP's averaged gradient follows) is the one-process
    loss of the global batch."""
    import json
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank, args=(2, str(tiny_bert), port, str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [c for _, c in ranks] == [len(ANCHORS), len(ANCHORS)]
    whole, candidates = _loss_on(str(tiny_bert), ANCHORS, POSITIVES, gather=False)
    assert candidates == len(ANCHORS)
    assert sum(v for v, _ in ranks) / 2 == pytest.approx(whole, rel=1e-5, abs=1e-6)
