"""The corpus rotation keeps full-size scores and orders coordinates by corpus variance."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ragtune.engine.embedder.rotation import append_rotation, fit_rotation
from tests.generate.test_llm_free import TEXTS


def test_rotation_preserves_full_scores_and_sorts_variance(tmp_path: Path, tiny_bert: Path) -> None:
    from sentence_transformers import SentenceTransformer

    texts = [t for _, t in TEXTS] + [
        f"record {i} of shipment {i * 7} to dock {i % 5}" for i in range(40)
    ]
    model = SentenceTransformer(str(tiny_bert), device="cpu")
    before = model.encode(texts, normalize_embeddings=True)
    rotation = fit_rotation(model, texts)
    assert np.allclose(rotation @ rotation.T, np.eye(rotation.shape[0]), atol=1e-4)

    append_rotation(model, rotation)
    model.save(str(tmp_path / "rotated"))
    reloaded = SentenceTransformer(str(tmp_path / "rotated"), device="cpu")
    after = reloaded.encode(texts, normalize_embeddings=True)
    assert np.allclose(before @ before.T, after @ after.T, atol=1e-4)

    energy = (after**2).mean(axis=0)
    assert energy[:8].sum() > energy[-8:].sum() * 4
    assert np.all(np.diff(energy[:16]) <= 1e-6)
