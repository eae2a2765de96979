"""Fusion on constructed rankings: the numbers are worked out by hand here."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ragtune.engine.retrieval import FusionSettings, fuse, fuse_many, normalize, rrf, score_fusion

DENSE = [("a", 0.9), ("b", 0.8), ("c", 0.5)]
BM25 = [("c", 12.0), ("d", 6.0), ("a", 3.0)]


def test_normalize_zscore_and_minmax() -> None:
    z = normalize(np.array([1.0, 2.0, 3.0]), "zscore")
    np.testing.assert_allclose(z, [-math.sqrt(1.5), 0.0, math.sqrt(1.5)])
    np.testing.assert_allclose(normalize(np.array([2.0, 4.0, 3.0]), "minmax"), [0, 1, 0.5])
    # a list with no spread carries no order
    assert normalize(np.array([5.0, 5.0]), "zscore").tolist() == [0.0, 0.0]
    assert normalize(np.array([5.0, 5.0]), "minmax").tolist() == [0.0, 0.0]
    with pytest.raises(ValueError):
        normalize(np.array([1.0]), "l2")


def test_rrf_sums_reciprocal_ranks() -> None:
    out = dict(rrf([DENSE, BM25], k=60))
    assert out["a"] == pytest.approx(1 / 61 + 1 / 63)
    assert out["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert out["b"] == pytest.approx(1 / 62)
    assert out["d"] == pytest.approx(1 / 62)
    # ties keep first-seen order: a (dense first) before c, b before d
    assert [d for d, _ in rrf([DENSE, BM25], k=60)] == ["a", "c", "b", "d"]
    weighted = dict(rrf([DENSE, BM25], k=0, weights=[0.7, 0.3]))
    assert weighted["d"] == pytest.approx(0.3 / 2)
    assert weighted["a"] == pytest.approx(0.7 / 1 + 0.3 / 3)


def test_minmax_fusion_with_the_floor_for_missing_documents() -> None:
    # dense min-max: a 1, b 0.75, c 0; bm25: c 1, d 1/3, a 0; missing = the list's floor (0)
    out = dict(score_fusion([DENSE, BM25], [0.7, 0.3], "minmax"))
    assert out["a"] == pytest.approx(0.7 * 1 + 0.3 * 0)
    assert out["b"] == pytest.approx(0.7 * 0.75 + 0.3 * 0)
    assert out["c"] == pytest.approx(0.7 * 0 + 0.3 * 1)
    assert out["d"] == pytest.approx(0.7 * 0 + 0.3 * (1 / 3))


def test_zscore_fusion_matches_a_hand_computation() -> None:
    dense = np.array([0.9, 0.8, 0.5])
    bm25 = np.array([12.0, 6.0, 3.0])
    zd = (dense - dense.mean()) / dense.std()
    zb = (bm25 - bm25.mean()) / bm25.std()
    out = dict(score_fusion([DENSE, BM25], [0.7, 0.3], "zscore"))
    assert out["a"] == pytest.approx(0.7 * zd[0] + 0.3 * zb[2])
    assert out["b"] == pytest.approx(0.7 * zd[1] + 0.3 * zb.min())  # b missing from BM25
    assert out["c"] == pytest.approx(0.7 * zd[2] + 0.3 * zb[0])
    assert out["d"] == pytest.approx(0.7 * zd.min() + 0.3 * zb[1])


def test_fuse_keeps_provenance_and_the_weight_ends() -> None:
    hits = fuse(DENSE, BM25, FusionSettings(method="zscore", weight=0.3))
    by_id = {h.doc_id: h for h in hits}
    assert (by_id["c"].dense_rank, by_id["c"].bm25_rank) == (3, 1)
    assert by_id["b"].bm25_rank is None and by_id["b"].bm25_score is None
    assert by_id["d"].dense_rank is None and by_id["d"].bm25_score == 6.0
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # weight 0 is the dense ranking, 1 the BM25 ranking (documents missing from it after)
    assert [h.doc_id for h in fuse(DENSE, BM25, FusionSettings(weight=0.0))][:3] == ["a", "b", "c"]
    assert [h.doc_id for h in fuse(DENSE, BM25, FusionSettings(weight=1.0))][:3] == ["c", "d", "a"]


def test_depth_cuts_each_list_before_fusing() -> None:
    hits = fuse(DENSE, BM25, FusionSettings(depth=1))
    assert {h.doc_id for h in hits} == {"a", "c"}


def test_an_empty_bm25_list_leaves_the_dense_order() -> None:
    assert [h.doc_id for h in fuse(DENSE, [], FusionSettings())] == ["a", "b", "c"]
    assert [h.doc_id for h in fuse(DENSE, [], FusionSettings(method="rrf"))] == ["a", "b", "c"]


def test_bad_settings_and_unpaired_batches_are_refused() -> None:
    with pytest.raises(ValueError, match="method"):
        FusionSettings(method="max")
    with pytest.raises(ValueError, match="weight"):
        FusionSettings(weight=1.5)
    with pytest.raises(ValueError, match="2 dense rankings but 1"):
        fuse_many([DENSE, DENSE], [BM25])
    assert FusionSettings().describe() == "z-score fusion, BM25 weight 0.3, top 100 of each"
