"""Negative mining and mixing for the reranker, on a tiny workspace of made-up facts."""

from __future__ import annotations

from pathlib import Path

import pytest
from reranker_workspace import build_workspace, one_torch_thread

from ragtune.engine.config.reranker import RerankerConfig
from ragtune.engine.core.errors import ConfigError
from ragtune.engine.core.models import load_embedder
from ragtune.engine.data.prepare import load_prepared
from ragtune.engine.generate.rows import read_rows
from ragtune.engine.reranker.negatives import collect_negatives

_threads = pytest.fixture(scope="module", autouse=True)(one_torch_thread)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory):
    ws = build_workspace(tmp_path_factory.mktemp("negws"))
    return ws, load_prepared(ws)


@pytest.fixture(scope="module")
def minilm(minilm_path: Path):
    return load_embedder(str(minilm_path), device="cpu")


def test_mined_negatives_exclude_positive_and_eval_chunks(prepared, minilm) -> None:
    _, data = prepared
    cfg = RerankerConfig(
        num_negatives=3, random_negatives=0, llm_negatives=False, range_min=0, range_max=10
    )
    result = collect_negatives(
        data.train, data.corpus, cfg, embedder=minilm, exclude_chunks=data.eval_chunks
    )
    eval_texts = {data.corpus[c] for c in data.eval_chunks}
    assert result.counts["queries"] == len(set(data.train["anchor"]))
    assert result.counts["mined"] > 0
    assert result.counts["mined"] == sum(
        1 for g in result.groups for _, s in g.negatives if s == "mined"
    )
    for g in result.groups:
        texts = [p for p, _ in g.negatives]
        assert data.corpus[g.chunk_id] not in texts
        assert g.positive not in texts
        assert not eval_texts & set(texts)
        assert len(texts) == len(set(texts)) <= 3
    # The embedder finds near misses: most mined negatives share the query's creature.
    same_topic = sum(
        1
        for g in result.groups
        for p, _ in g.negatives
        if g.query.split()[-1].rstrip("?").lower() in p.lower()
    )
    assert same_topic > result.counts["mined"] * 0.2


def test_mixing_counts_each_source_and_pos_weight(prepared, minilm) -> None:
    ws, data = prepared
    cfg = RerankerConfig(num_negatives=2, random_negatives=2, range_min=0, range_max=8)
    rows = read_rows(ws.generated_path)
    result = collect_negatives(
        data.train,
        data.corpus,
        cfg,
        embedder=minilm,
        exclude_chunks=data.eval_chunks,
        llm_rows=rows,
    )
    by_source: dict[str, int] = {}
    for g in result.groups:
        for _, source in g.negatives:
            by_source[source] = by_source.get(source, 0) + 1
    by_source["llm_query"] = len(result.extra_negatives)
    for source in ("mined", "llm_passage", "llm_query", "random"):
        assert result.counts[source] == by_source.get(source, 0)
    assert result.counts["llm_passage"] > 0 and result.counts["llm_query"] > 0
    assert result.counts["random"] == 2 * len(result.groups)

    pairs = result.pairs()
    labels = pairs["label"]
    assert labels.count(1.0) == result.positives == len(result.groups)
    assert labels.count(0.0) == result.negatives == result.counts["negatives"]
    assert result.pos_weight == pytest.approx(result.negatives / result.positives)
    assert result.pos_weight > 1
    # Listwise and in-batch layouts come from the same groups.
    lists = result.lists()
    assert all(lab[0] == 1.0 and sum(lab) == 1.0 for lab in lists["labels"])
    tuples = result.tuples()
    assert {"query", "positive", "negative_1"} <= set(tuples.column_names)


def test_no_embedder_gives_random_only(prepared) -> None:
    _, data = prepared
    cfg = RerankerConfig(num_negatives=4, random_negatives=1, llm_negatives=False)
    result = collect_negatives(data.train, data.corpus, cfg, embedder=None)
    assert result.counts["mined"] == 0
    assert result.counts["random"] == len(result.groups)


def test_config_rejects_bad_window() -> None:
    with pytest.raises(ConfigError) as exc:
        RerankerConfig(range_min=50, range_max=50)
    assert exc.value.key == "reranker.range_min"
    with pytest.raises(ConfigError):
        RerankerConfig(fusion_weight=-0.5)
