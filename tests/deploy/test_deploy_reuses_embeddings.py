"""The evaluate stage saves each suite's embeddings per model; the deploy stage's torch rows,
a rerun of evaluate and ``ask`` read them instead of encoding the corpus again, and a changed
model or corpus is encoded afresh. Encodes are counted by wrapping ``SentenceTransformer.encode``.

The "tuned" model here is the tiny base saved where training saves its model (no training
step: what is tested is who encodes what, not what training learns)."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import pytest

from ragtune.engine.config import RunConfig
from ragtune.engine.core.events import Emitter
from ragtune.engine.core.workspace import Workspace
from ragtune.engine.evaluate.beir import IRData


@pytest.fixture(scope="module")
def prepared_ws(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path):
    from sentence_transformers import SentenceTransformer

    from ragtune.engine.api import run_pipeline
    from tests.test_pipeline import tiny_config

    cfg = tiny_config(tmp_path_factory.mktemp("reuse"), tiny_bert)
    cfg.deploy.throughput_texts = 8
    ws = run_pipeline(cfg, stages=["ingest", "index", "generate", "prepare"])
    SentenceTransformer(str(tiny_bert), device="cpu").save(str(ws.embedder_dir))
    return cfg, ws


class Encodes:
    """``SentenceTransformer.encode`` calls: (backend, task, number of texts)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from sentence_transformers import SentenceTransformer

        self.calls: list[tuple[str, str, int]] = []
        real = SentenceTransformer.encode

        def counted(model, inputs, *args, **kwargs):
            task = kwargs.get("task") or "query/plain"
            self.calls.append((str(model.backend), task, len(inputs)))
            return real(model, inputs, *args, **kwargs)

        monkeypatch.setattr(SentenceTransformer, "encode", counted)

    def corpus_passes(self, corpus_size: int) -> Counter:
        """Per backend, the encodes of a whole corpus (the speed probe's few texts excluded)."""
        return Counter(b for b, task, n in self.calls if task == "document" and n == corpus_size)


def _corpus_size(ws: Workspace) -> int:
    from ragtune.engine.data.prepare import load_prepared

    return len(load_prepared(ws).corpus)


def evaluated_alone(name: str, cfg: RunConfig, data: IRData, batch_size: int) -> dict[str, float]:
    """The model at ``name`` scored on ``data`` by encoding the suite itself, with the run's
    prompts, sizes and k-values: what the evaluate stage must reproduce from saved vectors."""
    from sentence_transformers import SentenceTransformer

    from ragtune.engine.embedder.train import column_prompts, model_dims
    from ragtune.engine.evaluate.ir import evaluate_retrieval

    model = SentenceTransformer(name, device="cpu")
    prompts = column_prompts(model, cfg.embedder)
    return evaluate_retrieval(
        model,
        data,
        model_dims(model, cfg.embedder),
        k_values=tuple(cfg.eval.k_values),
        batch_size=batch_size,
        query_prompt=prompts.get("anchor"),
        document_prompt=prompts.get("positive"),
    )


def test_cpu_metrics_equal_the_float32_batch_64_evaluation(prepared_ws) -> None:
    """On CPU the stage encodes as before (float32, batch 64): the same numbers exactly."""
    from ragtune.engine.data.prepare import load_prepared
    from ragtune.engine.evaluate.stage import run_evaluate

    cfg, ws = prepared_ws
    shutil.rmtree(ws.root / "embeddings", ignore_errors=True)
    run_evaluate(cfg, ws, Emitter())
    held = json.loads(ws.metrics_path.read_text())["embedder"]["held-out"]

    data = load_prepared(ws).ir_data()
    for label, name in (("base", cfg.embedder.base_model), ("tuned", str(ws.embedder_dir))):
        assert held[label] == evaluated_alone(name, cfg, data, batch_size=64)


def test_deploy_reads_what_evaluate_encoded(prepared_ws, monkeypatch: pytest.MonkeyPatch) -> None:
    from ragtune.engine.deploy.stage import run_deploy
    from ragtune.engine.evaluate.stage import run_evaluate

    cfg, ws = prepared_ws
    n = _corpus_size(ws)
    shutil.rmtree(ws.root / "embeddings", ignore_errors=True)
    encodes = Encodes(monkeypatch)
    run_evaluate(cfg, ws, Emitter())
    # One encode of the corpus per model: base + rotation is mapped from the base's.
    assert encodes.corpus_passes(n) == Counter({"torch": 2})
    saved = sorted(p.name for p in (ws.root / "embeddings").iterdir())
    assert saved == [
        f"held-out-{m}.{part}"
        for m in ("base", "tuned")
        for part in ("corpus.npy", "json", "queries.npy")
    ]

    encodes.calls.clear()
    seen: list = []
    run_deploy(cfg, ws, Emitter(seen.append))
    assert encodes.corpus_passes(n) == Counter()  # the table's torch rows read the saved ones
    assert any("embeddings read from embeddings/" in str(getattr(e, "text", "")) for e in seen)
    deploy = json.loads(ws.metrics_path.read_text())["deploy"]["suites"]["held-out"]["rows"]
    evaluated = json.loads(ws.metrics_path.read_text())["embedder"]["held-out"]["tuned"]
    for row in deploy:
        if row["precision"] == "float32":
            key = f"dim_{row['dim']}_cosine_ndcg@10"
            assert row["ndcg@10"]["mean"] == pytest.approx(evaluated[key], abs=1e-9)

    # A rerun of evaluate (e.g. new k-values) encodes nothing either.
    encodes.calls.clear()
    run_evaluate(cfg, ws, Emitter())
    assert encodes.corpus_passes(n) == Counter()


def test_a_changed_or_missing_model_is_encoded_again(
    prepared_ws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ragtune.engine.deploy.stage import run_deploy
    from ragtune.engine.evaluate.stage import run_evaluate

    cfg, ws = prepared_ws
    n = _corpus_size(ws)
    run_evaluate(cfg, ws, Emitter())
    sidecar = ws.root / "embeddings" / "held-out-tuned.json"
    first = json.loads(sidecar.read_text())["fingerprint"]

    # Retrained (here: its weights file rewritten): stale, so deploy encodes and saves anew.
    weights = next(ws.embedder_dir.glob("*.safetensors"))
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    encodes = Encodes(monkeypatch)
    run_deploy(cfg, ws, Emitter())
    assert encodes.corpus_passes(n) == Counter({"torch": 1})
    assert json.loads(sidecar.read_text())["fingerprint"] != first

    # Missing: encoded again, and written back for the next reader.
    shutil.rmtree(ws.root / "embeddings")
    encodes.calls.clear()
    run_deploy(cfg, ws, Emitter())
    assert encodes.corpus_passes(n) == Counter({"torch": 1}) and sidecar.is_file()


def test_the_fingerprint_follows_the_texts_and_the_dtype(tiny_bert: Path, tmp_path: Path) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    from ragtune.engine.evaluate.beir import IRData
    from ragtune.engine.evaluate.saved import load_saved, saved_or_encoded, suite_fingerprint

    ws = Workspace.create(tmp_path / "ws")
    data = IRData(
        queries={"q1": "what is a cat", "q2": "where do dogs sleep"},
        corpus={"d1": "cats are small felines", "d2": "dogs sleep in kennels", "d3": "fish swim"},
        relevant={"q1": {"d1"}, "q2": {"d2"}},
    )
    model = SentenceTransformer(str(tiny_bert), device="cpu")
    args = {"batch_size": 2, "query_prompt": None, "document_prompt": None}
    emb = saved_or_encoded(ws, "s", "m", model, str(tiny_bert), data, **args)
    fp = suite_fingerprint(model, str(tiny_bert), data, None, None)
    again = load_saved(ws, "s", "m", fp, data)
    assert again is not None and torch.equal(again.corpus, emb.corpus.cpu())
    assert again.query_ids == emb.query_ids and again.corpus_ids == ["d1", "d2", "d3"]

    edited = IRData(data.queries, {**data.corpus, "d3": "fish swim upstream"}, data.relevant)
    assert suite_fingerprint(model, str(tiny_bert), edited, None, None) != fp
    assert suite_fingerprint(model, str(tiny_bert), data, None, "passage: ") != fp
    model.to(torch.bfloat16)  # what for_inference does on a bf16 GPU
    assert suite_fingerprint(model, str(tiny_bert), data, None, None) != fp
    # A damaged sidecar is a miss, not an error.
    (ws.root / "embeddings" / "s-m.json").write_text("{", encoding="utf-8")
    assert load_saved(ws, "s", "m", fp, data) is None


def test_ask_searches_the_corpus_evaluate_encoded(
    prepared_ws, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    from ragtune.engine.evaluate.stage import run_evaluate
    from ragtune.engine.reranker.evaluate import encode_corpus
    from ragtune.engine.serve.ask import Searcher

    cfg, ws = prepared_ws
    n = _corpus_size(ws)
    run_evaluate(cfg, ws, Emitter())
    for cached in (ws.root / "index").glob("corpus-*.npy"):
        cached.unlink()
    encodes = Encodes(monkeypatch)
    searcher = Searcher(ws, str(ws.embedder_dir), embedder_cfg=cfg.embedder)
    assert encodes.corpus_passes(n) == Counter()
    fresh = encode_corpus(searcher.embedder, [c.text for c in searcher.chunks])
    assert searcher.corpus_emb.shape == fresh.shape
    assert np.abs(searcher.corpus_emb - fresh).max() < 1e-5  # chunk order, unit length
    hits = searcher.search("leave policy", top_k=3)
    assert len(hits) == 3

    # The base model's searcher (ask's comparison side) reads the base model's saved corpus.
    encodes.calls.clear()
    base = Searcher(ws, cfg.embedder.base_model, embedder_cfg=cfg.embedder)
    assert encodes.corpus_passes(n) == Counter()
    assert base.corpus_emb is not None


def test_the_model_identity_is_its_modules_files(tiny_bert: Path, tmp_path: Path) -> None:
    """A moved copy (mtimes kept) is the same model, and so is one that export put the BM25
    index and retrieval.json beside; a rewritten weights file is not."""
    from ragtune.engine.evaluate.saved import model_identity

    first = model_identity(str(tiny_bert))
    moved = tmp_path / "moved"
    shutil.copytree(tiny_bert, moved)
    assert model_identity(str(moved)) == first
    (moved / "retrieval.json").write_text("{}", encoding="utf-8")
    (moved / "bm25").mkdir()
    (moved / "bm25" / "params.index.json").write_text("{}", encoding="utf-8")
    assert model_identity(str(moved)) == first
    config = next(moved.glob("*_Pooling")) / "config.json"
    config.write_text(config.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    assert model_identity(str(moved)) != first  # a module's config is part of the model
    assert model_identity("org/hub-model") == "org/hub-model"
