"""A corpus-fitted orthogonal rotation that puts the directions your documents vary along first.

Matryoshka truncation keeps the first d coordinates. A general-purpose model spreads
what separates *your* documents over all of them, so its short prefixes lose much.
Rotating by the eigenvectors of the corpus's embedding second-moment matrix (PCA
without centering) sorts coordinates by how much they vary over your corpus. A
rotation preserves every inner product, so full-size scores are exactly unchanged,
while 64-dim nDCG@10 rose by about 0.09–0.10 on both shared benchmark collections.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from sentence_transformers import SentenceTransformer


# More passages than this add little to a 384x384 second-moment matrix.
MAX_TEXTS = 5000


def fit_rotation(
    model: SentenceTransformer,
    texts: Sequence[str],
    *,
    max_texts: int = MAX_TEXTS,
    batch_size: int = 64,
    document_prompt: str | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Rows are eigenvectors by decreasing eigenvalue: ``rotated = R @ embedding``."""

    sample = rotation_sample(texts, max_texts, seed)
    emb = model.encode(
        sample,
        batch_size=batch_size,
        normalize_embeddings=True,
        prompt=document_prompt or None,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return rotation_from_embeddings(emb)


def rotation_from_embeddings(emb: np.ndarray) -> np.ndarray:
    """The rotation from unit-length embeddings of the sampled passages (``fit_rotation``'s
    second half), for a caller that has encoded them already."""
    import numpy as np

    emb = np.asarray(emb, dtype=np.float64)
    eigvals, eigvecs = np.linalg.eigh(emb.T @ emb)
    order = np.argsort(eigvals)[::-1]
    return eigvecs[:, order].T.astype(np.float32)


def rotation_for_corpus(ids: Sequence[str], embeddings: Any, seed: int) -> np.ndarray:
    """The rotation ``fit_rotation`` fits, from embeddings already made of every passage:
    ``ids`` in the corpus's own order (the sample is drawn from it), ``embeddings`` one row
    per id in sorted-id order (a suite's corpus order), a tensor or an array."""
    import numpy as np
    import torch

    row = {cid: i for i, cid in enumerate(sorted(ids))}
    picked = [row[cid] for cid in rotation_sample(list(ids), MAX_TEXTS, seed)]
    sample = torch.nn.functional.normalize(torch.as_tensor(embeddings)[picked].float(), dim=1)
    return rotation_from_embeddings(sample.cpu().numpy().astype(np.float64))


def rotation_sample(ids: Sequence[str], max_texts: int, seed: int) -> list[str]:
    """Which passages ``fit_rotation`` fits on: all, or the same seeded sample of them."""
    sample = list(ids)
    if len(sample) > max_texts:
        sample = random.Random(seed).sample(sample, max_texts)
    return sample


def append_rotation(model: SentenceTransformer, rotation: np.ndarray) -> None:
    """A bias-free identity-activation Dense layer, so plain sentence-transformers loads the result."""
    import torch
    from sentence_transformers.sentence_transformer.modules import Dense

    size = rotation.shape[0]
    layer = Dense(
        size,
        size,
        bias=False,
        activation_function=torch.nn.Identity(),
        init_weight=torch.from_numpy(rotation),
    )
    model.append(layer.to(model.device))


def rotate_for_corpus(
    model: SentenceTransformer,
    texts: Sequence[str],
    *,
    batch_size: int,
    document_prompt: str | None,
    seed: int,
) -> SentenceTransformer:
    """Fit the rotation on the run's passages and append it: the one recipe both the
    fine-tuned model and the untrained base + rotation baseline get."""
    append_rotation(
        model,
        fit_rotation(
            model, list(texts), batch_size=batch_size, document_prompt=document_prompt, seed=seed
        ),
    )
    return model
