"""Base + rotation scored from the base model's embeddings equals the rotated model encoding again."""

from __future__ import annotations

from pathlib import Path

from conftest import TEST_DATA

from ragtune.engine.config import RunConfig
from ragtune.engine.data.prepare import Prepared
from ragtune.engine.evaluate.beir import load_beir
from ragtune.engine.evaluate.ir import encode_suite, evaluate_retrieval


def test_rotation_applied_to_base_embeddings_matches_the_rotated_model(minilm_path: Path) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    from ragtune.engine.embedder.rotation import append_rotation, fit_rotation
    from ragtune.engine.evaluate.stage import corpus_rotation

    data = load_beir(TEST_DATA / "medline_slice")
    base = SentenceTransformer(str(minilm_path), device="cpu")
    base.max_seq_length = 48
    dims = [384, 128, 32]

    cfg = RunConfig()
    cfg.eval.batch_size, cfg.embedder.seed = 16, 7
    prepared = Prepared(
        train=None, eval_queries={}, eval_relevant={}, corpus=data.corpus, eval_chunks=set()
    )

    encoded = encode_suite(base, data, batch_size=16)
    rotation = corpus_rotation(cfg, prepared, encoded.corpus, "cpu", base)
    mapped = evaluate_retrieval(base, data, dims, embeddings=encoded.mapped(rotation))

    fitted = fit_rotation(base, list(data.corpus.values()), batch_size=16, seed=7)
    assert torch.allclose(rotation.abs(), torch.from_numpy(fitted).abs(), atol=1e-4)
    rotated = SentenceTransformer(str(minilm_path), device="cpu")
    rotated.max_seq_length = 48
    append_rotation(rotated, fitted)
    again = evaluate_retrieval(rotated, data, dims, batch_size=16)

    assert list(mapped) == list(again)
    assert max(abs(mapped[k] - again[k]) for k in again) < 1e-4
    # Not the unrotated base: at 32 dims the rotation changes the ranking.
    plain = evaluate_retrieval(base, data, [32], embeddings=encoded)
    assert plain["dim_32_cosine_ndcg@10"] != mapped["dim_32_cosine_ndcg@10"]
