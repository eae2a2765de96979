"""Config: defaults, validation naming the key, TOML round-trip, overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.engine.config import RunConfig, load_config, to_toml
from ragtune.engine.config.training import EmbedderConfig
from ragtune.engine.core.errors import ConfigError


def test_default_config_round_trips_through_toml(tmp_path: Path) -> None:
    cfg = RunConfig()
    path = cfg.save(tmp_path / "c.toml")
    again = load_config(path)
    assert again.to_dict() == cfg.to_dict()
    assert again.base_dir == tmp_path.resolve()


def test_toml_documents_every_setting() -> None:
    text = to_toml(RunConfig())
    assert "# peak learning rate" in text
    assert "[generation.llm]" in text and "[generation.llm_free]" in text
    for section in ("run", "sources", "chunking", "data", "embedder", "reranker", "eval"):
        assert f"[{section}]" in text


def test_bad_value_names_key_value_and_allowed(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[embedder]\nprecision = "fp8"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert err.key == "embedder.precision"
    assert err.value == "fp8"
    assert "'bf16'" in err.allowed
    assert str(path) in str(err)


def test_unknown_key_suggests_the_close_one(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[embedder]\nlearning_rat = 1e-5\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == "embedder.learning_rat"
    assert "learning_rate" in info.value.allowed


def test_range_and_type_checks() -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        RunConfig.from_dict({"embedder": {"batch_size": 1}})
    with pytest.raises(ConfigError, match="a number"):
        EmbedderConfig.from_dict({"learning_rate": "fast"})
    with pytest.raises(ConfigError, match="decreasing"):
        EmbedderConfig(matryoshka_dims=[64, 128])
    with pytest.raises(ConfigError, match="overlap"):
        RunConfig.from_dict({"chunking": {"max_tokens": 64, "overlap_tokens": 40}})


def test_int_accepted_for_float_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[embedder]\nepochs = 2\n")
    cfg = load_config(path, ["embedder.learning_rate=3e-5", "run.name=x", "sources.paths=['a']"])
    assert cfg.embedder.epochs == 2.0 and isinstance(cfg.embedder.epochs, float)
    assert cfg.embedder.learning_rate == 3e-5
    assert cfg.run.name == "x"
    assert cfg.workspace_dir == (tmp_path / "runs" / "x").resolve()
    assert cfg.resolve("a") == (tmp_path / "a").resolve()


def test_generator_auto_picks_litellm_only_with_a_model() -> None:
    assert RunConfig().generation.resolved == "llm-free"
    cfg = RunConfig.from_dict({"generation": {"llm": {"model": "openai/gpt-4o-mini"}}})
    assert cfg.generation.resolved == "litellm"


def test_example_config_is_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    cfg = load_config(root / "examples" / "quickstart.toml")
    assert cfg.sources.paths == ["handbook"]
    assert cfg.resolve("handbook").is_dir()


def test_init_writes_a_config_that_runs_from_where_it_lies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, minilm_path: Path
) -> None:
    """Sources typed relative to the shell's folder are stored so the config's folder reads
    the same files, and with no Hub the base models are ones this machine has."""
    from ragtune.engine.cli import main
    from ragtune.engine.ingest import discover_files

    (tmp_path / "team" / "docs").mkdir(parents=True)
    (tmp_path / "team" / "docs" / "a.md").write_text("# A\n\ntext")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "b.md").write_text("# B\n\ntext")
    monkeypatch.chdir(tmp_path)
    assert main(["init", "team/my.toml", "--sources", "team/docs", "elsewhere/b.md"]) == 0
    cfg = load_config(tmp_path / "team" / "my.toml")
    assert cfg.sources.paths == ["docs", str(tmp_path / "elsewhere" / "b.md")]
    assert sorted(p.name for p in discover_files(cfg.sources, cfg.base_dir)) == ["a.md", "b.md"]
    assert cfg.embedder.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert main(["init", "x.toml", "--sources", "missing"]) == 3
