"""The [retrieval] settings: defaults, validation naming the key, and the settings each stage reads."""

from __future__ import annotations

import pytest

from ragtune.engine.config import RunConfig
from ragtune.engine.core.errors import ConfigError
from ragtune.engine.retrieval.fusion import DEFAULT_WEIGHT
from ragtune.engine.retrieval.settings import bm25_settings, fusion_settings
from ragtune.engine.stages import PIPELINE


def test_defaults_are_the_documented_fusion() -> None:
    cfg = RunConfig()
    fusion = fusion_settings(cfg.retrieval)
    assert (fusion.method, fusion.weight, fusion.rrf_k, fusion.depth) == (
        "zscore",
        DEFAULT_WEIGHT,
        60,
        100,
    )
    bm25 = bm25_settings(cfg.retrieval)
    assert (bm25.k1, bm25.b, bm25.stemmer, bm25.stopwords) == (1.5, 0.75, "english", "en")
    # -1 (choose) falls back to the default until a weight is chosen
    cfg = RunConfig.from_dict({"retrieval": {"weight": -1}})
    assert fusion_settings(cfg.retrieval).weight == DEFAULT_WEIGHT
    assert fusion_settings(cfg.retrieval, 0.5).weight == 0.5


@pytest.mark.parametrize(
    "key,value",
    [("weight", -0.5), ("weight", 1.5), ("fusion", "max"), ("stemmer", "klingon"), ("depth", 3)],
)
def test_bad_values_name_the_setting(key: str, value: object) -> None:
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict({"retrieval": {key: value}})
    assert f"retrieval.{key}" in str(err.value)


def test_the_index_reads_bm25_settings_and_evaluation_reads_the_fusion() -> None:
    SPECS = {stage.name: stage for stage in PIPELINE}
    assert set(SPECS["index"].settings) == {
        "retrieval.k1",
        "retrieval.b",
        "retrieval.stemmer",
        "retrieval.stopwords",
    }
    assert SPECS["index"].upstream == ("ingest",)
    assert "retrieval" in SPECS["evaluate"].settings and "index" in SPECS["evaluate"].upstream
    # rrf_k only matters to RRF, so changing it under z-score re-runs nothing
    assert "rrf_k" not in RunConfig().retrieval.result_settings()
    rrf = RunConfig.from_dict({"retrieval": {"fusion": "rrf"}})
    assert "rrf_k" in rrf.retrieval.result_settings()
