"""The train stage encodes every chunk with the base model (the distill teacher's passages) and
with the trained model (to fit its rotation); evaluate and ``ask`` read both encodes instead of
making them again, with the numbers a fresh encode gives."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from ragtune.engine.core.events import Emitter
from tests.deploy.test_deploy_reuses_embeddings import Encodes, evaluated_alone


def test_evaluate_reads_the_corpus_the_train_stage_encoded(
    tmp_path: Path, tiny_bert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ragtune.engine.api import run_pipeline
    from ragtune.engine.data.prepare import load_prepared
    from ragtune.engine.evaluate.stage import run_evaluate
    from tests.test_pipeline import tiny_config

    # no evaluation during training: its encodes of the changing model are not the ones counted
    cfg = tiny_config(tmp_path, tiny_bert, eval_strategy="no")
    assert cfg.embedder.corpus_rotation and cfg.embedder.loss == "distill"
    ws = run_pipeline(cfg, stages=["ingest", "index", "generate", "prepare"])
    data = load_prepared(ws).ir_data()
    encodes = Encodes(monkeypatch)
    run_pipeline(cfg, stages=["train"])
    # One encode of every chunk per model: the base's (teacher) and the trained one's (rotation).
    assert encodes.corpus_passes(len(data.corpus)) == Counter({"torch": 2})
    assert {p.name for p in (ws.root / "embeddings").glob("*.json")} == {
        "corpus-base.json",
        "corpus-tuned.json",
    }

    encodes.calls.clear()
    seen: list = []
    run_evaluate(cfg, ws, Emitter(seen.append))
    # Both models' corpora are read; only the queries are encoded.
    assert encodes.corpus_passes(len(data.corpus)) == Counter()
    said = [str(getattr(e, "text", "")) for e in seen]
    assert sum("corpus embeddings read from embeddings/" in t for t in said) == 2, said
    read = json.loads(ws.metrics_path.read_text())["embedder"]["held-out"]

    # Each model encoding the suite itself gives the same numbers (the saved model with its
    # rotation; the base model from its own files).
    batch = cfg.eval.encode_batch("cpu")
    for label, name in (("tuned", str(ws.embedder_dir)), ("base", cfg.embedder.base_model)):
        fresh = evaluated_alone(name, cfg, data, batch)
        assert sorted(read[label]) == sorted(fresh)
        assert max(abs(read[label][k] - fresh[k]) for k in fresh) < 1e-6, label

    # Without the train stage's files, evaluate encodes both corpora itself.
    shutil.rmtree(ws.root / "embeddings")
    encodes.calls.clear()
    run_evaluate(cfg, ws, Emitter())
    assert encodes.corpus_passes(len(data.corpus)) == Counter({"torch": 2})
    again = json.loads(ws.metrics_path.read_text())["embedder"]["held-out"]
    for label in ("base", "tuned"):
        assert max(abs(again[label][k] - read[label][k]) for k in read[label]) < 1e-6


def test_teacher_reuses_known_passages_with_the_values_it_would_encode(tiny_bert: Path) -> None:
    """The teacher column built from the shared chunk encode equals the one it encodes alone."""
    import numpy as np
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer

    from ragtune.engine.embedder.teacher import TEACHER_COLUMN, precompute_teacher
    from ragtune.engine.evaluate.ir import encode_documents

    model = SentenceTransformer(str(tiny_bert), device="cpu")
    passages = [f"passage {i} about topic {i % 3} with some words" * (1 + i % 4) for i in range(12)]
    rows = Dataset.from_dict({"anchor": [f"question {i}" for i in range(12)], "positive": passages})
    prompts = {"anchor": "query: ", "positive": "passage: "}

    def column(ds: Dataset) -> np.ndarray:
        return np.asarray(ds.with_format("numpy")[TEACHER_COLUMN])

    alone = column(precompute_teacher(model, rows, prompts))
    corpus = encode_documents(model, passages[:8], prompt="passage: ", batch_size=4)
    known = {"passage: ": dict(zip(passages[:8], corpus.numpy(), strict=True))}
    shared = column(precompute_teacher(model, rows, prompts, known=known))
    np.testing.assert_allclose(shared, alone, atol=1e-5)
    # a prompt the shared encode did not use is encoded, not looked up
    other = column(precompute_teacher(model, rows, {"positive": "doc: "}, known=known))
    assert not np.allclose(other[:, 1], alone[:, 1])
