"""The train stage encodes every chunk with the trained model to fit its rotation; evaluate and
``ask`` read that encode instead of making it again, with the numbers a fresh encode gives."""

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

    cfg = tiny_config(tmp_path, tiny_bert)
    assert cfg.embedder.corpus_rotation
    ws = run_pipeline(cfg, stages=["ingest", "index", "generate", "prepare", "train"])
    assert (ws.root / "embeddings" / "corpus-tuned.json").is_file()
    data = load_prepared(ws).ir_data()

    encodes = Encodes(monkeypatch)
    seen: list = []
    run_evaluate(cfg, ws, Emitter(seen.append))
    # The base model's corpus is encoded; the trained model's is read.
    assert encodes.corpus_passes(len(data.corpus)) == Counter({"torch": 1})
    assert any(
        "corpus embeddings read from embeddings/" in str(getattr(e, "text", "")) for e in seen
    )
    read = json.loads(ws.metrics_path.read_text())["embedder"]["held-out"]["tuned"]

    # The saved model (rotation included) encoding the suite itself gives the same numbers.
    fresh = evaluated_alone(str(ws.embedder_dir), cfg, data, cfg.eval.encode_batch("cpu"))
    assert sorted(read) == sorted(fresh)
    assert max(abs(read[k] - fresh[k]) for k in fresh) < 1e-6

    # Without the train stage's file, evaluate encodes the trained model's corpus itself.
    shutil.rmtree(ws.root / "embeddings")
    encodes.calls.clear()
    run_evaluate(cfg, ws, Emitter())
    assert encodes.corpus_passes(len(data.corpus)) == Counter({"torch": 2})
    again = json.loads(ws.metrics_path.read_text())["embedder"]["held-out"]["tuned"]
    assert max(abs(again[k] - read[k]) for k in read) < 1e-6
