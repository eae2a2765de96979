"""The index stage in a real tiny run: BM25 beside the dense rows, what reruns when its
settings or the chunking change, and the recommendation in metrics.json."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragtune.engine.core.workspace import Workspace
from ragtune.engine.evaluate.results import read_results
from ragtune.engine.retrieval import Bm25Index
from ragtune.engine.retrieval.stage import index_dir
from ragtune.engine.stages import STAGES
from tests.core.test_reruns import Run, changed
from tests.test_pipeline import tiny_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> Path:
    folder = tmp_path_factory.mktemp("hybrid")
    run = Run(tiny_config(folder, tiny_bert))
    assert run.started == [s for s in STAGES if s != "rerank"]
    return run.ws.root


@pytest.fixture
def copy(finished: Path, tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "ws"
    shutil.copytree(finished, root)
    yield root


def _index_files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(index_dir(root).iterdir())}


def test_a_run_builds_the_index_and_evaluates_every_retriever(finished: Path) -> None:
    from ragtune.engine.core.records import read_chunks

    index = Bm25Index.load(index_dir(finished))
    assert sorted(index.ids) == sorted(c.chunk_id for c in read_chunks(finished / "chunks.parquet"))
    results = read_results(finished / "metrics.json")
    held = results.suites["held-out"]
    rows = {r.retriever: r for r in held.retriever_rows()}
    assert set(rows) == {"bm25", "base", "base_rotated", "tuned", "hybrid_base", "hybrid_tuned"}
    for key, row in rows.items():
        assert set(row.values) == {64, 32, 16}
        # every change against the dense base carries its interval; the base has none
        assert (set(row.changes) == {64, 32, 16}) == (key != "base")
        for g in row.changes.values():
            assert g.low <= g.mean <= g.high and g.against == "dense base"
    # BM25 has no size: the same number in every column
    assert len(set(rows["bm25"].values.values())) == 1
    rec = results.recommendation
    assert rec is not None and rec.dim == 64 and rec.suite == "held-out"
    assert rec.query_source == "LLM-free pseudo-queries"
    assert rec.retriever != "bm25" and any("pseudo-queries" in c for c in rec.caveats)
    assert "BM25 weight 0.3" in rec.fusion and "documented default" in rec.fusion
    best = max(("tuned", "base", "hybrid_tuned", "hybrid_base"), key=lambda k: rows[k].values[64])
    assert rows[rec.retriever].values[64] == pytest.approx(rows[best].values[64])
    report = (finished / "report.md").read_text()
    assert "Recommended retriever" in report and "| hybrid fine-tuned |" in report


def test_export_ships_the_index_and_the_fusion_beside_the_model(finished: Path) -> None:
    import json

    model = finished / "models" / "embedder"
    shipped = Bm25Index.load(model / "bm25")
    assert shipped.search(["forklift battery"], 3) == Bm25Index.load(index_dir(finished)).search(
        ["forklift battery"], 3
    )
    info = json.loads((model / "retrieval.json").read_text())
    rec = read_results(finished / "metrics.json").recommendation
    assert info["recommended"] == rec.retriever and info["bm25_index"] == "bm25"
    if rec.hybrid:
        assert info["fusion"] == {"method": "zscore", "bm25_weight": 0.3, "rrf_k": 60, "depth": 100}
    card = (model / "README.md").read_text()
    assert f"**Recommended retriever: {rec.label}.**" in card
    assert "| BM25 |" in card and "| hybrid base |" in card


def test_a_fusion_setting_reruns_only_evaluation_and_export(copy: Path) -> None:
    before = _index_files(copy)
    run = Run(changed(copy, retrieval__weight=0.6))
    assert run.started == ["evaluate", "export"]
    assert _index_files(copy) == before
    assert "BM25 weight 0.6" in read_results(copy / "metrics.json").recommendation.fusion


def test_a_bm25_setting_rebuilds_the_index_and_reevaluates(copy: Path) -> None:
    run = Run(changed(copy, retrieval__k1=0.9))
    assert run.started == ["index", "evaluate", "export"]
    assert Bm25Index.load(index_dir(copy)).settings.k1 == 0.9


def test_a_chunking_setting_rebuilds_the_index(copy: Path) -> None:
    before = Bm25Index.load(index_dir(copy)).ids
    cfg = changed(copy, chunking__max_tokens=32)
    run = Run(cfg)
    assert run.started[:2] == ["ingest", "index"]
    after = Bm25Index.load(index_dir(copy)).ids
    assert len(after) > len(before)


def test_ask_searches_with_the_recommended_retriever_and_shows_provenance(copy: Path) -> None:
    import json

    from ragtune.engine.serve.ask import ask, clear_cache

    metrics = json.loads((copy / "metrics.json").read_text())
    clear_cache()
    for retriever in ("hybrid_tuned", "tuned", "bm25"):
        # as if evaluation had recommended each in turn
        metrics["embedder"]["recommendation"]["retriever"] = retriever
        (copy / "metrics.json").write_text(json.dumps(metrics))
        clear_cache()
        result = ask(Workspace(copy), "forklift battery charging", top_k=3, rerank=False)
        assert len(result.hits) == 3
        label = {"hybrid_tuned": "hybrid fine-tuned", "tuned": "dense fine-tuned", "bm25": "BM25"}
        assert any(f"recommended retriever, {label[retriever]}" in n for n in result.notes)
        hit = result.hits[0]
        if retriever == "hybrid_tuned":
            assert result.retriever.startswith("hybrid: z-score fusion, BM25 weight 0.3")
            assert hit.fused_score is not None and hit.fused_score == pytest.approx(hit.score)
            assert hit.dense_rank is not None or hit.bm25_rank is not None
            assert [h.score for h in result.hits] == sorted(
                (h.score for h in result.hits), reverse=True
            )
        elif retriever == "tuned":
            assert hit.fused_score is None and hit.bm25_rank is None
        else:
            assert result.retriever == "BM25" and hit.bm25_rank == 1 and hit.dense_rank is None
    clear_cache()


def test_the_cli_prints_the_retrievers_and_the_recommendation(
    finished: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ragtune.engine.cli import _print_results

    _print_results(Workspace(finished), as_json=False)
    out = capsys.readouterr().out
    assert "held-out queries: retrievers" in out
    assert "hybrid fine-tuned" in out and "BM25" in out
    assert "recommended retriever:" in out


def test_choosing_the_weight_uses_labelled_questions_never_pseudo_queries(copy: Path) -> None:
    import json

    from ragtune.engine.core.records import read_chunks
    from tests.test_pipeline import TOPICS

    run = Run(changed(copy, retrieval__weight=-1.0))
    assert run.started == ["evaluate", "export"]
    fusion = read_results(copy / "metrics.json").recommendation.fusion
    assert "BM25 weight 0.3" in fusion and "pseudo-queries cannot judge" in fusion

    # A labelled benchmark over the same chunks: the weight is chosen on it, and said so.
    bench = copy.parent / "bench"
    bench.mkdir()
    chunks = read_chunks(copy / "chunks.parquet")
    with (bench / "corpus.jsonl").open("w") as fh:
        for c in chunks:
            fh.write(json.dumps({"_id": c.chunk_id, "title": "", "text": c.text}) + "\n")
    with (bench / "queries.jsonl").open("w") as fh:
        for i, topic in enumerate(TOPICS):
            fh.write(json.dumps({"_id": f"q{i}", "text": f"who confirms the {topic} entry"}) + "\n")
    lines = ["query-id\tcorpus-id\tscore"] + [
        f"q{i}\t{c.chunk_id}\t1"
        for i, topic in enumerate(TOPICS)
        for c in chunks
        if topic.title() in c.heading
    ]
    (bench / "qrels.tsv").write_text("\n".join(lines) + "\n")
    cfg = changed(copy, retrieval__weight=-1.0)
    cfg.eval.benchmark = str(bench)
    run = Run(cfg)
    assert run.started == [
        "evaluate",
        "deploy",
        "export",
    ]  # the deploy table scores the benchmark too
    results = read_results(copy / "metrics.json")
    rec = results.recommendation
    assert rec.suite == "benchmark" and rec.query_source == "labelled benchmark queries"
    assert f"chosen on the {len(TOPICS)} labelled benchmark queries from 7 weights" in rec.fusion
    assert results.fusion is not None and 0.1 <= results.fusion.weight <= 0.7
    assert set(results.suites) == {"held-out", "benchmark"}
    assert results.suites["benchmark"].others["hybrid_tuned"]


def test_a_deleted_or_damaged_index_is_rebuilt_and_nothing_after_it(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.core.test_reruns import status

    shutil.rmtree(index_dir(copy))
    assert status(copy, capsys)["index"].startswith("to do")
    run = Run(changed(copy))
    assert run.started == ["index"]
    assert Bm25Index.load(index_dir(copy)).search(["forklift battery"], 1)

    (index_dir(copy) / "ragtune_bm25.json").write_text("{not json")
    assert "cannot be read" in status(copy, capsys)["index"]
    assert Run(changed(copy)).started == ["index"]
