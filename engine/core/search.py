"""Exact cosine top-k search over normalised embeddings, chunked so memory follows the batch."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

# Above this many corpus rows a CPU search goes through faiss when it is installed: its
# blocked BLAS kernels and heap merge beat the torch matmul+topk loop on big corpora.
FAISS_MIN_CORPUS = 200_000


def _as_tensor(emb: torch.Tensor | np.ndarray) -> torch.Tensor:
    import torch

    tensor = emb if isinstance(emb, torch.Tensor) else torch.from_numpy(np.asarray(emb))
    if tensor.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (rows, dim), got shape {tuple(tensor.shape)}")
    return tensor if tensor.dtype == torch.float32 else tensor.float()


def truncate_normalize(emb: torch.Tensor | np.ndarray, dim: int) -> torch.Tensor | np.ndarray:
    """First ``dim`` columns at unit length: a Matryoshka size scored by cosine like the full one.

    Returns the same kind of array it was given (float32), so numpy callers stay in numpy.
    """
    import torch

    full = emb.shape[-1]
    if not 0 < dim <= full:
        raise ValueError(f"cannot truncate {full}-dim embeddings to {dim}")
    out = torch.nn.functional.normalize(_as_tensor(emb)[:, :dim], p=2, dim=1)
    return out if isinstance(emb, torch.Tensor) else out.numpy()


def _faiss_usable(corpus: torch.Tensor) -> bool:
    return (
        corpus.device.type == "cpu"
        and corpus.shape[0] >= FAISS_MIN_CORPUS
        and importlib.util.find_spec("faiss") is not None
    )


def _faiss_search(
    queries: torch.Tensor, corpus: torch.Tensor, k: int
) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    index = faiss.IndexFlatIP(corpus.shape[1])
    index.add(np.ascontiguousarray(corpus.numpy()))
    scores, indices = index.search(np.ascontiguousarray(queries.numpy()), k)
    return scores.astype(np.float32), indices.astype(np.int64)


def topk_search(
    query_emb: torch.Tensor | np.ndarray,
    corpus_emb: torch.Tensor | np.ndarray,
    k: int,
    *,
    query_chunk: int = 1024,
    corpus_chunk: int = 50_000,
    use_faiss: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` corpus rows per query by inner product, best first.

    Embeddings must already be L2-normalised (see ``truncate_normalize``), so the inner product
    is the cosine. Only a ``query_chunk`` x ``corpus_chunk`` score block exists at a time, and
    each block's top-k is merged into a running top-k, so peak memory does not grow with
    corpus x queries. Runs on the device the tensors live on. ``use_faiss=None`` picks faiss
    for big CPU corpora when it is installed.

    Returns ``(scores, indices)``, both of shape ``(n_queries, min(k, n_corpus))``.
    """
    import torch

    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if query_chunk < 1 or corpus_chunk < 1:
        raise ValueError("query_chunk and corpus_chunk must be at least 1")
    queries = _as_tensor(query_emb)
    corpus = _as_tensor(corpus_emb)
    if queries.shape[1] != corpus.shape[1]:
        raise ValueError(
            f"query dim {queries.shape[1]} does not match corpus dim {corpus.shape[1]}"
        )
    n_queries, n_corpus = queries.shape[0], corpus.shape[0]
    k = min(k, n_corpus)
    if n_queries == 0 or k == 0:
        return np.zeros((n_queries, k), np.float32), np.zeros((n_queries, k), np.int64)
    queries = queries.to(corpus.device)
    if use_faiss or (use_faiss is None and _faiss_usable(corpus)):
        return _faiss_search(queries.cpu(), corpus.cpu(), k)

    all_scores = np.empty((n_queries, k), np.float32)
    all_indices = np.empty((n_queries, k), np.int64)
    with torch.inference_mode():
        for q_start in range(0, n_queries, query_chunk):
            block = queries[q_start : q_start + query_chunk]
            best_scores: torch.Tensor | None = None
            best_indices: torch.Tensor | None = None
            for c_start in range(0, n_corpus, corpus_chunk):
                sims = block @ corpus[c_start : c_start + corpus_chunk].T
                scores, indices = torch.topk(sims, min(k, sims.shape[1]), dim=1)
                indices += c_start
                if best_scores is None:
                    best_scores, best_indices = scores, indices
                    continue
                # Earlier chunks first, and a stable sort, so equal scores keep the lower index.
                merged_scores = torch.cat([best_scores, scores], dim=1)
                merged_indices = torch.cat([best_indices, indices], dim=1)
                order = torch.sort(merged_scores, dim=1, descending=True, stable=True).indices[
                    :, :k
                ]
                best_scores = merged_scores.gather(1, order)
                best_indices = merged_indices.gather(1, order)
            assert best_scores is not None and best_indices is not None
            end = q_start + block.shape[0]
            all_scores[q_start:end] = best_scores.cpu().numpy()
            all_indices[q_start:end] = best_indices.cpu().numpy()
    return all_scores, all_indices
